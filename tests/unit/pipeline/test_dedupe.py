"""The dedupe stage: a copy of the input answered while this one waited is absorbed, not answered again."""

from __future__ import annotations

import pytest

from agents_tables import outcomes
from agents_tables.outcomes import Outcome
from tests.unit.pipeline.conftest import memory_stores
from gateway_app.contract.events import MessageCreated
from gateway_app.contract.internal import MessageRecord, Origin
from gateway_app.pipeline.acker import AckSlot
from gateway_app.pipeline.context import MessageContext, Reservation
from gateway_app.pipeline.stage import Finished
from gateway_app.pipeline.stages.dedupe import Dedupe
from agents_tables.windows import Window


def setup(row: Outcome | None):
    stores, tables = memory_stores()
    if row is not None:
        tables.outcomes["m1"] = outcomes.encode(row)
    services = type("S", (), {"stores": stores, "counters": {"absorbed": 0, "redelivered": 0}, "publisher": None})()
    message = MessageCreated(message_id="m1", agent_id="a", room_id="r", content="hi")
    ctx = MessageContext(MessageRecord(agent_id="a", payload=message,
                                       origin=Origin(topic="in", partition=0, offset=5, received_at_ms=0)),
                         0, AckSlot(None))
    ctx.copy_in_flight = True  # the dispatcher saw a copy in progress when it read this one
    stores.windows.put("a", Window(start_ms=0, requests=1, tokens=70))
    ctx.reservation = Reservation(window_start_ms=0, tokens=70)
    return Dedupe(services), services, ctx


async def test_a_copy_answered_meanwhile_is_absorbed_and_its_reservation_given_back():
    stage, services, ctx = setup(Outcome(b"{}", (), "in/0/5", True))
    with pytest.raises(Finished, match="absorbed"):
        await stage.run(ctx)
    assert services.counters["absorbed"] == 1
    assert services.stores.windows.get("a") == Window(start_ms=0, requests=1, tokens=0)


async def test_no_outcome_or_a_failed_one_from_another_input_runs_on():
    for row in (None, Outcome(b"{}", (), "in/0/1", False)):
        stage, services, ctx = setup(row)
        await stage.run(ctx)  # returns: the message goes on to the provider
        assert services.counters["absorbed"] == 0 and ctx.reservation is not None


async def test_without_a_copy_in_flight_the_table_is_not_read():
    stage, services, ctx = setup(Outcome(b"{}", (), "in/0/5", True))
    ctx.copy_in_flight = False  # the dispatcher found no outcome and no copy when it read this message
    await stage.run(ctx)
    assert services.counters["absorbed"] == 0
