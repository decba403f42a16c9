"""Usage through the pipeline, over in-memory tables, with the crashes a kill -9 can leave behind simulated
on the tables: each billing event id counts once in the usage rows, a run that finds its usage counted does
not publish those billing events again, and the report's recomputation from what was published agrees
with the table (see agents_tables.usage for the argument)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

from agents_tables import usage
from gateway_app.contract.events import MessageCreated
from gateway_app.contract.internal import MessageRecord, Origin
from gateway_app.pipeline.acker import AckSlot
from gateway_app.pipeline.context import MessageContext
from gateway_app.usage_report import recompute
from tests.unit.pipeline.test_memory_flow import world

TODAY = datetime.now(timezone.utc).date()
DAYS = ((TODAY - timedelta(days=1)).isoformat(), (TODAY + timedelta(days=1)).isoformat())


async def run(pipeline, profile, message_id: str, offset: int, *, origin: int = 1, content: str = "hello",
              rerun: bool = False) -> dict:
    """The message read at `offset` of the agent's partition (a run after a crash reads the same offset);
    `rerun`: it had failed before, as the dispatcher finds from its outcome row (a replay)."""
    record = MessageRecord(agent_id="a", origin=Origin(topic="in", partition=0, offset=origin, received_at_ms=0),
                           payload=MessageCreated(message_id=message_id, agent_id="a", room_id="r", user_id="u1",
                                                  content=content))
    event = SimpleNamespace(message=SimpleNamespace(partition=0, offset=offset))
    ctx = MessageContext(record, 0, AckSlot(event), profile=profile)
    ctx.rerun = f"in/0/{origin}" if rerun else None
    ctx.agent_turn = pipeline.services.turns.agents.get("a").take()
    await pipeline.run(ctx)
    sent = pipeline.services.publisher.sent
    return json.loads(next(value for kind, value in reversed(sent) if kind == "reply"))


def billing(publisher) -> list[dict]:
    return [json.loads(value) for kind, value in publisher.sent if kind == "billing"]


def table_totals(stores, group_by: str = "agent") -> list[dict]:
    first, last = DAYS
    entries = stores.usage.user_entries("a", first, last) if group_by == "user" else \
        stores.usage.agent_entries("a", first, last)
    return [{k: v for k, v in row.items() if k not in ("errors", "deferrals")} for row in usage.group(entries, group_by)]


def report_totals(publisher, group_by: str = "agent") -> list[dict]:
    return recompute(billing(publisher), *DAYS, group_by)["rows"]


def lose(pipeline, tables, **snapshots) -> None:
    """A kill -9 lost these rows: the outcome row of each message id in `outcomes`, and the usage rows
    given as their state before (None: the row did not exist). The worker comes back with nothing in memory."""
    pipeline.services.stores.forget_local_state()
    for message_id in snapshots.pop("outcomes", ()):
        tables.outcomes.pop(message_id, None)
    for key, before in snapshots.pop("usage", {}).items():
        if before is None:
            tables.usage.pop(key, None)
        else:
            tables.usage[key] = before


async def test_usage_rows_durable_outcome_lost_the_run_again_counts_nothing_and_bills_nothing():
    pipeline, provider, publisher, tables, profile = world()
    await run(pipeline, profile, "m1", offset=7)
    lose(pipeline, tables, outcomes=["m1"])
    reply = await run(pipeline, profile, "m1", offset=7)  # redelivered after the crash: runs again
    assert reply["status"] == "ok" and len(provider.requests) == 2
    assert len(billing(publisher)) == 1  # the first run's copy is the one counted: no second copy
    assert table_totals(pipeline.services.stores)[0]["requests"] == 1
    assert table_totals(pipeline.services.stores) == report_totals(publisher)


async def test_one_usage_row_durable_the_other_lost_the_run_again_completes_it():
    pipeline, _, publisher, tables, profile = world()
    before = dict(tables.usage)
    await run(pipeline, profile, "m1", offset=7)
    user_rows = [key for key in tables.usage if key.startswith("u")]
    lose(pipeline, tables, outcomes=["m1"], usage={key: before.get(key) for key in user_rows})  # the day row survived
    await run(pipeline, profile, "m1", offset=7)
    stores = pipeline.services.stores
    assert len(billing(publisher)) == 1
    assert table_totals(stores)[0]["requests"] == 1 and table_totals(stores, "user")[0]["requests"] == 1
    assert table_totals(stores, "user") == report_totals(publisher, "user")


async def test_only_the_billing_record_durable_the_run_again_counts_its_own_copy():
    pipeline, _, publisher, tables, profile = world()
    before = dict(tables.usage)
    await run(pipeline, profile, "m1", offset=7)
    lose(pipeline, tables, outcomes=["m1"], usage={key: before.get(key) for key in list(tables.usage)})
    await run(pipeline, profile, "m1", offset=7)
    copies = billing(publisher)
    assert len(copies) == 2 and len({c["event_id"] for c in copies}) == 1  # two copies of one event
    assert table_totals(pipeline.services.stores)[0]["requests"] == 1
    assert table_totals(pipeline.services.stores) == report_totals(publisher)  # the report keeps the last copy


async def test_a_message_below_the_floor_counts_though_the_row_forgot_its_offset():
    pipeline, _, publisher, tables, profile = world()
    floor = {0: None}
    pipeline.services.stores.usage.floor_of = lambda partition: floor[partition]
    await run(pipeline, profile, "m1", offset=7)
    floor[0] = 9  # 7 and 8 finished; m2 at 9 is the oldest record in progress when it writes the rows
    await run(pipeline, profile, "m2", offset=9)
    day_row = next(key for key in tables.usage if key.startswith("d"))
    assert usage.decode(tables.usage[day_row]).seen.offsets == [9]
    lose(pipeline, tables, outcomes=["m1"])  # the rows with floor 9 survived, m1's outcome row did not
    await run(pipeline, profile, "m1", offset=7)
    assert table_totals(pipeline.services.stores)[0]["requests"] == 2 and len(billing(publisher)) == 2


async def test_a_replay_of_a_failed_message_bills_its_new_calls_under_ids_of_its_own():
    pipeline, _, publisher, tables, profile = world(response_format={"type": "json"})
    first = await run(pipeline, profile, "m1", offset=7, content="not json")  # answer and repair: 2 calls
    assert first["status"] == "error" and len(billing(publisher)) == 2
    # A DLQ replay: the same message at a new input offset makes two new calls.
    replay = await run(pipeline, profile, "m1", offset=30, origin=99, content="not json", rerun=True)
    bills = billing(publisher)
    assert replay["status"] == "error" and len(bills) == 4 and len({b["event_id"] for b in bills}) == 4
    stores = pipeline.services.stores
    assert table_totals(stores)[0]["requests"] == 4 and table_totals(stores) == report_totals(publisher)
    errors = usage.group(stores.usage.agent_entries("a", *DAYS), "agent")[0]["errors"]
    assert errors == 2  # each failed run is a failure
    # The replay redelivered after a crash (same input offset): the same ids again, counted once.
    lose(pipeline, tables, outcomes=["m1"])
    await run(pipeline, profile, "m1", offset=30, origin=99, content="not json", rerun=True)
    assert len({b["event_id"] for b in billing(publisher)}) == 4 and table_totals(stores)[0]["requests"] == 4


async def test_failures_and_deferrals_count_per_message():
    pipeline, _, publisher, tables, profile = world(rate_limits={"tpm": 10})
    reply = await run(pipeline, profile, "m1", offset=7, content="a question far too long " * 20)
    assert reply["error"]["code"] == "exceeds_tpm" and billing(publisher) == []
    row = usage.group(pipeline.services.stores.usage.agent_entries("a", *DAYS), "model")[0]
    assert (row["model"], row["errors"], row["requests"]) == ("gpt-4o-mini", 1, 0)
    await run(pipeline, profile, "m1", offset=7, content="a question far too long " * 20)  # the same run again
    assert usage.group(pipeline.services.stores.usage.agent_entries("a", *DAYS), "model")[0]["errors"] == 1


async def test_outcome_row_durable_usage_rows_lost_the_absorbed_redelivery_restores_them():
    from gateway_app.contract.internal import MessageRecord as Record
    from gateway_app.pipeline.dispatcher import Dispatcher
    from tests.unit.pipeline.test_dispatcher import FakeEvent

    pipeline, provider, publisher, tables, profile = world()
    tables.profiles["a"] = profile.model_dump(mode="json")
    flow = Dispatcher(pipeline.services)
    record = Record(agent_id="a", origin=Origin(topic="in", partition=0, offset=1, received_at_ms=0),
                    payload=MessageCreated(message_id="m1", agent_id="a", room_id="r", user_id="u1", content="hi"))

    async def deliver(offset: int) -> FakeEvent:
        event = FakeEvent(record, offset=offset)
        await flow.on_event(event)
        for ctx in list(flow.in_progress):
            await ctx.task
        return event

    before = dict(tables.usage)
    await deliver(7)
    assert len(billing(publisher)) == 1 and tables.outcomes["m1"].startswith(b"#in/0/1@7 ")
    lose(pipeline, tables, usage={key: before.get(key) for key in list(tables.usage)})  # the outcome row survived
    event = await deliver(7)  # redelivered after the crash: absorbed by the outcome row
    assert event.acked == 1 and len(provider.requests) == 1 and len(billing(publisher)) == 1
    assert flow.counters["absorbed"] == 1
    stores = pipeline.services.stores
    assert table_totals(stores)[0]["requests"] == 1 and table_totals(stores, "user")[0]["requests"] == 1
    await deliver(12)  # the intake forwarded it a second time: absorbed again, still counted once
    assert table_totals(stores)[0]["requests"] == 1 and table_totals(stores) == report_totals(publisher)
