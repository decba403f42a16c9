"""Budgets: the decision arithmetic, the reservations in flight, and the gate in admission through the
pipeline (exactly the calls the budget pays for, the last one alone; the fallback; budget_exceeded)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from decimal import Decimal

from agents_tables import usage
from gateway_app.pipeline import budgets
from gateway_app.pipeline.budgets import Budgets, Period, Verdict
from gateway_app.pricing.prices import current_table
from tests.unit.pipeline.test_memory_flow import say, world

D = Decimal


def day(limit: str, spent: str) -> Period:
    return Period("day", D(limit), D(spent))


def test_calls_that_fit_run_together_one_that_may_cross_runs_alone():
    assert budgets.decide([day("10", "2")], D("3"), 1, D("5")) is Verdict.ADMIT       # 2 + 3 + 5 <= 10
    assert budgets.decide([day("10", "2")], D("3"), 1, D("6")) is Verdict.WAIT        # would not fit: wait
    assert budgets.decide([day("10", "9")], D("0"), 0, D("6")) is Verdict.ADMIT       # alone, may cross
    assert budgets.decide([day("10", "10")], D("0"), 0, D("0.01")) is Verdict.SPENT
    assert budgets.decide([day("10", "10")], D("1"), 1, D("0.01")) is Verdict.WAIT    # settles may come in lower


def test_every_period_must_have_room():
    periods = [day("10", "1"), Period("month", D("100"), D("100"))]
    assert budgets.decide(periods, D(0), 0, D("1")) is Verdict.SPENT
    assert budgets.exhausted(periods).name == "month"


def test_the_estimate_is_at_the_dearest_target_and_unpriced_models_cost_nothing():
    prices = current_table()
    mini = budgets.estimated_cost(prices, [("openai", "gpt-4o-mini")], 1000, 100)
    both = budgets.estimated_cost(prices, [("openai", "gpt-4o-mini"), ("openai", "gpt-4o")], 1000, 100)
    assert mini == D("0.00021000") and both == D("0.00350000")
    assert budgets.estimated_cost(prices, [("echo", "echo-1")], 1000, 100) == 0


async def test_reservations_are_given_back_once_and_wake_a_waiter():
    book = Budgets()
    hold = book.reserve("a", D("2"))
    book.reserve("a", D("3"))
    assert book.in_flight("a") == (D("5"), 2)
    waiter = asyncio.create_task(book.wait_settled("a", 5))
    await asyncio.sleep(0)
    book.release(hold)
    book.release(hold)  # once only
    await asyncio.wait_for(waiter, 1)
    assert book.in_flight("a") == (D("3"), 1)
    book.reset()
    assert book.in_flight("a") == (D(0), 0)
    book.release(book.reserve("b", D(1)))
    assert book.in_flight("b") == (D(0), 0)


CALL = D("0.00001020")  # the recording provider's answer: 40 input and 7 output tokens of gpt-4o-mini


def spend(pipeline, amount: str) -> None:
    today = datetime.now(timezone.utc).date().isoformat()
    entry = usage.Entry(today, "a", "openai", "gpt-4o-mini", None, usage.Totals(requests=1, cost_usd=D(amount)))
    for key, buckets in usage.rows_of([entry]).items():
        pipeline.services.stores.usage.add(0, None, key, buckets)


async def test_exactly_the_calls_the_budget_pays_for_the_last_one_crossing_it():
    # max_tokens 20: an estimate a little above a call's cost, so two calls fit at once in 3.5 calls' worth
    pipeline, provider, publisher, _, profile = world(max_tokens=20, budget={"usd_per_day": str(CALL * D("3.5"))})
    slow, calls = provider.complete, {"now": 0, "peak": 0}

    async def slower(request):
        calls["now"] += 1
        calls["peak"] = max(calls["peak"], calls["now"])
        await asyncio.sleep(0.01)
        calls["now"] -= 1
        return await slow(request)

    provider.complete = slower
    replies = await asyncio.gather(*(say(pipeline, profile, f"m{i}", "hello", room=f"r{i}") for i in range(10)))
    bills = [json.loads(v) for kind, v in publisher.sent if kind == "billing"]
    statuses = sorted(json.loads(v)["status"] for kind, v in publisher.sent if kind == "reply")
    assert statuses == ["ok"] * 4 + ["rate_limited"] * 6 and len(provider.requests) == 4
    assert sum(D(b["cost_usd"]) for b in bills) == 4 * CALL  # 3.5 calls' worth, and the one that crossed it
    assert calls["peak"] == 2 and pipeline.services.budgets.in_flight("a") == (D(0), 0)
    assert len(replies) == 10


async def test_past_the_budget_without_fallback_no_call_is_made():
    pipeline, provider, publisher, _, profile = world(budget={"usd_per_day": "0.01", "usd_per_month": "1"})
    spend(pipeline, "0.01")
    reply = await say(pipeline, profile, "m1", "hello")
    assert reply["status"] == "rate_limited" and reply["error"]["code"] == "budget_exceeded"
    assert "daily budget of 0.01 USD" in reply["error"]["message"] and provider.requests == []
    assert sorted(kind for kind, _ in publisher.sent) == ["dlq", "reply"]  # no billing: nothing was called


async def test_past_the_budget_the_fallback_answers():
    fallback = {"provider": "local", "model": "llama3.1:8b", "options": {"base_url": "http://gpu:8000/v1"}}
    pipeline, provider, _, _, profile = world(budget={"usd_per_month": "1", "fallback": fallback},
                                              fallbacks=[{"provider": "anthropic", "model": "claude-haiku-4-5"}])
    spend(pipeline, "1.5")
    reply = await say(pipeline, profile, "m1", "hello")
    assert reply["status"] == "ok" and (reply["provider"], reply["model"]) == ("local", "llama3.1:8b")
    assert provider.requests[0].model == "llama3.1:8b" and provider.requests[0].options == fallback["options"]


async def test_a_message_that_does_not_fit_waits_for_the_calls_in_flight():
    pipeline, provider, _, _, profile = world(budget={"usd_per_day": "0.001"})
    held = pipeline.services.budgets.reserve("a", D("0.00099"))  # another message's call in flight
    answering = asyncio.create_task(say(pipeline, profile, "m1", "hello"))
    await asyncio.sleep(0.05)
    assert not answering.done() and provider.requests == []  # a negative check: still waiting
    pipeline.services.budgets.release(held)  # it settled (its usage rows are written)
    reply = await asyncio.wait_for(answering, 1)
    assert reply["status"] == "ok"
    deferrals = usage.group(pipeline.services.stores.usage.agent_entries(
        "a", *[datetime.now(timezone.utc).date().isoformat()] * 2), "day")[0]["deferrals"]
    assert deferrals == 1
