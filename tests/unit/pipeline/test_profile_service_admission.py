"""Admission's side of the profile sync: a message parked for its profile asks the fetcher once, within
its own profile wait, and is released by the dispatcher applying a profile record (the path a fetched
profile takes), like any profile event; without a fetcher, or with no wait at all, nothing is asked."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from gateway_app.contract.events import AgentProfile, ErrorCode, MessageCreated
from gateway_app.contract.internal import MessageRecord, Origin
from gateway_app.errors import Rejected
from gateway_app.pipeline.context import MessageContext
from gateway_app.pipeline.dispatcher import Dispatcher
from gateway_app.pipeline.stage import Services
from gateway_app.pipeline.stages.admission import Admission
from gateway_app.pipeline.turns import Turns
from gateway_app.plugins.discovery import Plugins
from tests.unit.pipeline.conftest import memory_stores


class Asked:
    """The fetcher's surface admission uses: which agents were asked for, with which deadline."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []

    def request(self, agent_id: str, deadline: float) -> None:
        self.calls.append((agent_id, deadline))


def parts(settings_factory, fetcher, **overrides) -> tuple[Admission, Dispatcher]:
    settings = settings_factory(**overrides)
    services = Services(settings, memory_stores(settings)[0], Turns(), caller=None, publisher=None, prices=None,
                        plugins=Plugins(), counters=Counter(), profile_service=fetcher)
    return Admission(services), Dispatcher(services)


def parked(agent_id: str = "a") -> MessageContext:
    message = MessageCreated(message_id="m1", agent_id=agent_id, room_id="r", content="hi")
    origin = Origin(topic="t", partition=0, offset=1, received_at_ms=0)
    return MessageContext(MessageRecord(agent_id=agent_id, payload=message, origin=origin), 0, slot=None)


async def test_a_parked_message_asks_once_and_an_applied_record_releases_it(settings_factory):
    fetcher = Asked()
    admission, flow = parts(settings_factory, fetcher, profile_wait_seconds=5)
    ctx = parked()
    waiting = asyncio.create_task(admission._wait_for_profile(ctx))
    for _ in range(5):
        await asyncio.sleep(0)  # let it park
    assert fetcher.calls == [("a", ctx.arrived + 5)] and not waiting.done()
    flow._apply_profile(AgentProfile(agent_id="a", version=3, provider="echo", model="echo-svc"))
    profile = await asyncio.wait_for(waiting, 1)
    assert (profile.version, ctx.profile.model) == (3, "echo-svc") and len(fetcher.calls) == 1


async def test_no_answer_ends_in_the_usual_unknown_agent(settings_factory):
    fetcher = Asked()
    admission, _ = parts(settings_factory, fetcher, profile_wait_seconds=0.05)
    with pytest.raises(Rejected) as refused:
        await admission._wait_for_profile(parked())
    assert refused.value.code is ErrorCode.AGENT_UNKNOWN and len(fetcher.calls) == 1


async def test_no_wait_asks_nothing(settings_factory):
    fetcher = Asked()
    admission, _ = parts(settings_factory, fetcher, profile_wait_seconds=0)
    with pytest.raises(Rejected):
        await admission._wait_for_profile(parked())
    assert fetcher.calls == []
