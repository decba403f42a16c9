"""Usage and budgets through real workers on a real broker, answered by the OpenAI fake with a priced model
(`gpt-4o-mini`), so every call costs something.

- a worker killed (-9) twice while traffic flows: the `agent-usage` table, read cluster-wide and per agent,
  equals `gateway report`'s recomputation from the billing topic, to the last decimal;
- a budget across two workers: exactly the calls the budget pays for run (the last one may cross it),
  the rest are refused with `budget_exceeded` and never reach the provider;
- past the budget, the budget's fallback model answers.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from devtools.workers import REPO, Deployment
from tests.fakes.openai_server import FakeOpenAI, ServerThread
from tests.integration.faults import WorkerLogFigures, say, send_at_rate
from tests.integration.harness import Chat, message, profile, profiles_applied, wait_until
from tests.integration.verifier import Sent

BILLED = ("requests", "input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens", "cost_usd",
          "cache_hits", "saved_input_tokens", "saved_output_tokens", "saved_cost_usd")


class TimedOpenAI(FakeOpenAI):
    """The OpenAI fake, noting how many chat calls were in flight at once."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = 0
        self.peak = 0

    async def answer(self, request, body):
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            return await super().answer(request, body)
        finally:
            self.in_flight -= 1


@pytest.fixture(scope="module")
def fake_openai():
    server = TimedOpenAI()
    with ServerThread(server.app) as thread:
        yield server, thread


def openai_env(thread: ServerThread) -> dict[str, str]:
    return {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": thread.url + "/v1",
            "GATEWAY_RETRY_BASE_DELAY_SECONDS": "0.05"}


def days() -> tuple[str, str]:
    """A range around today (UTC) that a test crossing midnight still covers."""
    today = datetime.now(timezone.utc).date()
    return (today - timedelta(days=1)).isoformat(), (today + timedelta(days=1)).isoformat()


def priced(agent_id: str, **overrides) -> dict:
    return profile(agent_id, **{"provider": "openai", "model": "gpt-4o-mini", "systemPrompt": "be brief",
                                "maxTokens": 64, **overrides})


def report(deployment: Deployment, group_by: str) -> dict:
    """`gateway report` as an operator runs it, pointed at this deployment."""
    first, last = days()
    done = subprocess.run([sys.executable, "-m", "gateway_app.cli", "report", "--from", first, "--to", last,
                           "--group-by", group_by, "--format", "json"], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **deployment.environment()}, timeout=120, check=True)
    return json.loads(done.stdout)


def billed(rows: list[dict], labels: tuple[str, ...]) -> dict[tuple, dict]:
    return {tuple(row[name] for name in labels): {name: row[name] for name in BILLED} for row in rows}


async def test_usage_equals_the_report_after_kill_9_mid_traffic(cluster_factory, fake_openai, capsys):
    cluster = cluster_factory(**openai_env(fake_openai[1]))
    workers = [cluster.worker(), cluster.worker()]
    for worker in workers:
        await asyncio.to_thread(worker.wait_ready)
    victim = workers[1]
    team = [f"usage-{uuid.uuid4().hex[:6]}-{i}" for i in range(12)]
    rng = random.Random(5)
    # A third of the calls take 150 ms: messages are in flight at every kill, and run again after it.
    traffic = [message(rng.choice(team), room_id=f"room-{rng.randrange(6)}", userId=f"user-{rng.randrange(4)}",
                       content=f"{'FAULT:slow:150 ' if i % 3 == 0 else ''}message {i} for the usage table")
               for i in range(900)]
    first, last = days()
    async with Chat(cluster.deployment) as chat:
        for agent_id in team:
            await chat.profile(priced(agent_id))
        await wait_until(profiles_applied(workers[0], {a: 1 for a in team}), 60, "the profiles in force")
        sent: list[Sent] = []
        flowing = asyncio.create_task(send_at_rate(chat, traffic, 120, sent))
        for _ in range(2):
            await asyncio.sleep(2.0)  # scenario pacing: a kill every 2 s of traffic (plus the restart)
            victim.kill()
            victim.start()  # same data dir: it recovers its tables and rejoins
            await asyncio.to_thread(victim.wait_ready)
        await flowing
        replies = await chat.wait_replies([m["messageId"] for m in traffic], timeout=120)
        ok = {mid for mid, copies in replies.items() if copies[0]["status"] == "ok"}
        await chat.wait_for(lambda: ok <= {b["message_id"] for _, b in chat.seen["billing"]}, 60, "billing events")
        await asyncio.sleep(3)  # late copies (redeliveries after the kills) are part of what the report reads
        by_agent = report(cluster.deployment, "agent")
        by_user = report(cluster.deployment, "user")
        copies = len(chat.seen["billing"])

        def cluster_usage() -> dict:
            status, body = workers[0].get(f"/usage?from={first}&to={last}&group_by=agent")
            return body if status == 200 else {"partial": True}

        try:
            await wait_until(lambda: not (u := cluster_usage())["partial"] and
                             billed(u["rows"], ("agent_id",)) == billed(by_agent["rows"], ("agent_id",)),
                             60, "the usage table to equal the report")
        finally:
            table = cluster_usage()
            wanted = billed(by_agent["rows"], ("agent_id",))
            have = billed(table.get("rows", []), ("agent_id",))
            if table.get("partial"):
                say(capsys, f"  partial: {({k: v for k, v in table.items() if k not in ('rows', 'totals')})}")
            for key in sorted(set(wanted) | set(have)):
                if wanted.get(key) != have.get(key):
                    say(capsys, f"  {key}: report {wanted.get(key)} table {have.get(key)}")
        logs = WorkerLogFigures.read(workers)
        counted_before = sum(w.log_path.read_text(errors="replace").count("usage.already_counted") for w in workers)
        say(capsys, f"\n[usage after 2 x kill -9] {len(ok)} ok replies, {copies} billing records read, "
                    f"{by_agent['distinct_events']} distinct event ids; table total cost "
                    f"{table['totals']['cost_usd']} USD = report {by_agent['totals']['cost_usd']} USD, "
                    f"requests {table['totals']['requests']} = {by_agent['totals']['requests']}")
        say(capsys, f"  {logs.line()}; {counted_before} runs found their usage counted by an earlier run")
    assert table["totals"]["cost_usd"] == by_agent["totals"]["cost_usd"] and Decimal(table["totals"]["cost_usd"]) > 0
    assert table["totals"]["requests"] == by_agent["distinct_events"] == len(ok)
    # Per agent (asked of any worker: forwarded to the owner), by model and by user.
    users: dict[tuple, dict] = {}
    for agent_id in team[:4]:
        status, body = workers[1].get(f"/agents/{agent_id}/usage?from={first}&to={last}&group_by=model")
        assert status == 200 and body["rows"][0]["model"] == "gpt-4o-mini" and "window" in body
        assert billed([body["totals"]], ()) == billed([r for r in by_agent["rows"] if r["agent_id"] == agent_id], ())
    for agent_id in team:
        status, body = workers[0].get(f"/agents/{agent_id}/usage?from={first}&to={last}&group_by=user")
        assert status == 200
        for row in body["rows"]:
            totals = users.setdefault((row["user_id"],), {name: 0 for name in BILLED})
            for name in BILLED:
                totals[name] += Decimal(row[name]) if name.endswith("usd") else row[name]
    expected = {key: {n: Decimal(v) if n.endswith("usd") else v for n, v in row.items()}
                for key, row in billed(by_user["rows"], ("user_id",)).items()}
    assert users == expected


@pytest.fixture(scope="module")
def budget_cluster(kafka, tmp_path_factory, fake_openai):
    from tests.integration.conftest import make_cluster

    cluster = make_cluster(kafka, tmp_path_factory.mktemp("budgets"), **openai_env(fake_openai[1]))
    for worker in (cluster.worker(), cluster.worker()):
        worker.wait_ready()
    yield cluster
    cluster.stop()


SLOW = "FAULT:slow:300 what does this cost"  # each call takes 0.3 s: calls of one agent overlap


async def one_call_cost(chat: Chat, cluster) -> Decimal:
    """What one call of a `priced` agent answering `SLOW` costs (an agent without a budget)."""
    agent_id = f"meter-{uuid.uuid4().hex[:6]}"
    await chat.profile(priced(agent_id, maxTokens=8))
    await wait_until(profiles_applied(cluster.workers[0], {agent_id: 1}), 60, "the meter's profile")
    msg = message(agent_id, content=SLOW)
    await chat.message(msg)
    await chat.wait_replies([msg["messageId"]])
    await chat.wait_for(lambda: chat.billing_of(msg["messageId"]), 30, "the meter's billing event")
    return Decimal(chat.billing_of(msg["messageId"])[0]["cost_usd"])


async def test_a_budget_is_exact_across_two_workers(budget_cluster, fake_openai):
    server = fake_openai[0]
    async with Chat(budget_cluster.deployment) as chat:
        cost = await one_call_cost(chat, budget_cluster)
        limit = cost * Decimal("3.5")  # pays for 3 calls and a half: the 4th is the one that may cross it
        agent_id = f"budget-{uuid.uuid4().hex[:6]}"
        # max_tokens 8 (the fake's answer has 7 words): an estimate just above a call's cost, so two fit at once
        await chat.profile(priced(agent_id, maxTokens=8, budget={"usdPerDay": str(limit)}))
        await wait_until(profiles_applied(budget_cluster.workers[1], {agent_id: 1}), 60, "the budget's profile")
        calls_before, server.peak = len(server.requests), 0
        burst = [message(agent_id, room_id=f"room-{i}", content=SLOW) for i in range(12)]  # rooms: no per-room queue
        await asyncio.gather(*(chat.message(m) for m in burst))
        replies = await chat.wait_replies([m["messageId"] for m in burst], timeout=60)
        first_replies = [replies[m["messageId"]][0] for m in burst]
        statuses = [r["status"] for r in first_replies]
        codes = {r["error"]["code"] for r in first_replies if r["status"] != "ok"}
        ok = [r["message_id"] for r in first_replies if r["status"] == "ok"]
        await chat.wait_for(lambda: all(chat.billing_of(mid) for mid in ok), 30, "billing events")
        spent = sum(Decimal(chat.billing_of(mid)[0]["cost_usd"]) for mid in ok)
        status, usage = budget_cluster.workers[0].get(f"/agents/{agent_id}/usage")
    assert statuses.count("ok") == 4 and statuses.count("rate_limited") == 8 and codes == {"budget_exceeded"}
    assert len(server.requests) - calls_before == 4  # a refused message never reaches the provider
    assert limit < spent <= limit + cost and server.peak >= 2  # calls that fit ran together; one crossed
    assert status == 200 and usage["budget"]["spent_today_usd"] == f"{spent:.8f}"
    assert usage["budget"]["in_flight"] == 0 and usage["totals"]["errors"] == 8


async def test_past_the_budget_the_fallback_model_answers(budget_cluster, fake_openai):
    async with Chat(budget_cluster.deployment) as chat:
        agent_id = f"thrifty-{uuid.uuid4().hex[:6]}"
        budget = {"usdPerDay": "0.00000001", "fallback": {"provider": "echo", "model": "echo-1"}}
        await chat.profile(priced(agent_id, budget=budget))
        await wait_until(profiles_applied(budget_cluster.workers[0], {agent_id: 1}), 60, "the profile")
        first, second = message(agent_id, content="first question"), message(agent_id, content="second question")
        await chat.message(first)
        await chat.wait_replies([first["messageId"]])
        await chat.message(second)
        replies = await chat.wait_replies([second["messageId"]])
    one, two = replies[first["messageId"]][0], replies[second["messageId"]][0]
    assert one["status"] == "ok" and one["provider"] == "openai"  # the budget had something left: it crosses
    assert two["status"] == "ok" and (two["provider"], two["model"]) == ("echo", "echo-1")
    assert two["content"] == "second question"


async def test_past_the_budget_without_fallback_budget_exceeded_and_no_call(budget_cluster, fake_openai):
    server = fake_openai[0]
    async with Chat(budget_cluster.deployment) as chat:
        agent_id = f"capped-{uuid.uuid4().hex[:6]}"
        await chat.profile(priced(agent_id, budget={"usdPerDay": "0.00000001", "usdPerMonth": "10"}))
        await wait_until(profiles_applied(budget_cluster.workers[0], {agent_id: 1}), 60, "the profile")
        first, second = message(agent_id, content="first question"), message(agent_id, content="second question")
        await chat.message(first)
        await chat.wait_replies([first["messageId"]])
        calls = len(server.requests)
        await chat.message(second)
        replies = await chat.wait_replies([second["messageId"]])
        await chat.wait_for(lambda: chat.dlq_of(second["messageId"]), 30, "the DLQ record")
    two = replies[second["messageId"]][0]
    assert replies[first["messageId"]][0]["status"] == "ok"
    assert two["status"] == "rate_limited" and two["error"]["code"] == "budget_exceeded"
    assert "daily budget" in two["error"]["message"] and len(server.requests) == calls
