import asyncio
from types import SimpleNamespace

from agents_tables import outcomes
from agents_tables.outcomes import Outcome
from gateway_app.contract.events import MessageCreated
from gateway_app.contract.internal import MessageRecord, Origin, encode_agent_event


async def test_reset_drops_tickets_of_tasks_cancelled_before_their_first_step(dispatcher_factory):
    """A message task cancelled before it ever ran never gives its agent-lane ticket back."""
    flow = dispatcher_factory()
    flow.turns.agents.get("agent").take()  # what _start does for a message whose task never runs
    assert flow.backlog("agent") == 1
    await flow.reset()
    assert flow.backlog("agent") == 0
    ticket = flow.turns.agents.get("agent").take()
    await asyncio.wait_for(flow.turns.agents.get("agent").wait(ticket), 1)  # the next message gets its turn


async def test_an_event_that_waited_across_a_rebalance_is_dropped_not_started(dispatcher_factory):
    flow = dispatcher_factory(max_pending_messages=1)

    class Unfinished:
        task = None

    flow.in_progress.add(Unfinished())  # one unfinished message: the next one waits for capacity
    record = MessageRecord(agent_id="a", payload=MessageCreated(message_id="m1", agent_id="a", room_id="r",
                                                                content="hi"),
                           origin=Origin(topic="t", partition=0, offset=1, key_b64=None, value_b64=None,
                                         received_at_ms=0))
    event = SimpleNamespace(value=encode_agent_event(record), message=SimpleNamespace(partition=0, offset=7))
    waiting = asyncio.create_task(flow.on_event(event))
    for _ in range(10):
        await asyncio.sleep(0)  # steps of the loop, no time: let it run up to its wait for capacity
    assert not waiting.done()  # a negative check: it is still waiting
    await flow.reset()  # a rebalance: the waiting event belongs to the old assignment
    await asyncio.wait_for(waiting, 1)
    assert flow.acker.pending() == 0 and not flow.in_progress


class FakeEvent:
    def __init__(self, record: MessageRecord, offset: int = 7) -> None:
        self.value, self.message, self.acked = encode_agent_event(record), SimpleNamespace(partition=0, offset=offset), 0

    def ack(self) -> bool:
        self.acked += 1
        return True


class FakePublisher:
    """Records what is sent; deliveries complete at once unless `hold` keeps them pending."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.hold: asyncio.Future | None = None
        self.flushed = 0

    async def _send(self, kind: str, value: bytes) -> asyncio.Future:
        self.sent.append((kind, value))
        if self.hold is not None:
            return self.hold
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def send_reply_bytes(self, room_id: str, value: bytes, headers=None):
        return await self._send("reply", value)

    async def send_billing_bytes(self, agent_id: str, value: bytes, headers=None):
        return await self._send("billing", value)

    async def dead_letter(self, record, headers=None):
        return await self._send("dlq", record.model_dump_json().encode())

    async def flush(self) -> None:
        self.flushed += 1


def message_record(origin_offset: int = 1) -> MessageRecord:
    return MessageRecord(agent_id="a", payload=MessageCreated(message_id="m1", agent_id="a", room_id="r",
                                                              content="hi"),
                         origin=Origin(topic="in", partition=0, offset=origin_offset, received_at_ms=0))


def with_outcome(flow, outcome: Outcome, publisher: FakePublisher):
    flow.stores.outcomes.table["m1"] = outcomes.encode(outcome)
    flow.services = flow.services.__class__(**{**flow.services.__dict__, "publisher": publisher})
    flow.services.counters.update(absorbed=0, redelivered=0)
    return flow


async def settled(flow) -> None:
    for ctx in list(flow.in_progress):
        await ctx.task


async def test_the_same_input_again_is_acked_without_publishing_anything(dispatcher_factory):
    publisher = FakePublisher()
    flow = with_outcome(dispatcher_factory(), Outcome(b'{"r": 1}', (b'{"b": 1}',), "in/0/1", True), publisher)
    event = FakeEvent(message_record(origin_offset=1))
    await flow.on_event(event)
    await settled(flow)
    assert event.acked == 1 and publisher.sent == [] and flow.counters["absorbed"] == 1


async def test_a_replay_of_an_answered_message_gets_the_same_bytes_again(dispatcher_factory):
    publisher = FakePublisher()
    flow = with_outcome(dispatcher_factory(), Outcome(b'{"r": 1}', (b'{"b": 1}',), "in/0/1", True), publisher)
    event = FakeEvent(message_record(origin_offset=99))  # the message produced again to the input topic
    await flow.on_event(event)
    await settled(flow)
    assert publisher.sent == [("reply", b'{"r": 1}'), ("billing", b'{"b": 1}')] and event.acked == 1
    assert flow.counters["redelivered"] == 1


async def test_reset_lets_a_publishing_message_finish_and_cancels_the_others(dispatcher_factory):
    from gateway_app.pipeline.acker import AckSlot
    from gateway_app.pipeline.context import MessageContext

    publisher = FakePublisher()
    flow = with_outcome(dispatcher_factory(), Outcome(b"{}"), publisher)
    publisher.hold = asyncio.get_running_loop().create_future()
    finished: list[str] = []

    async def publishing(ctx):
        ctx.publishing = True
        await publisher.hold  # the broker's acknowledgement, not there yet
        finished.append("published")

    contexts = [MessageContext(message_record(), 0, AckSlot(None)) for _ in range(2)]
    contexts[0].task = asyncio.create_task(publishing(contexts[0]))
    contexts[1].task = asyncio.create_task(asyncio.sleep(3600))  # a provider call in flight
    flow.in_progress.update(contexts)
    await asyncio.sleep(0)
    asyncio.get_running_loop().call_soon(publisher.hold.set_result, None)
    assert await flow.reset(finish_seconds=5) == 1
    assert finished == ["published"] and contexts[1].task.cancelled() and publisher.flushed == 1


async def test_drain_waits_for_messages_past_admission_and_cancels_those_still_admitting(dispatcher_factory):
    from gateway_app.pipeline.acker import AckSlot
    from gateway_app.pipeline.context import MessageContext

    flow = with_outcome(dispatcher_factory(), Outcome(b"{}"), FakePublisher())
    calling, parked = (MessageContext(message_record(), 0, AckSlot(None)) for _ in range(2))
    calling.stage, parked.stage = "provider_call", "admission"
    calling.task = asyncio.create_task(asyncio.sleep(0.05))   # an answer on its way
    parked.task = asyncio.create_task(asyncio.sleep(3600))    # waiting for a rate window
    flow.in_progress.update((calling, parked))
    assert await flow.drain(grace_seconds=5) == (1, 1)
    assert calling.task.done() and not calling.task.cancelled() and parked.task.cancelled()
    assert await flow.on_event(FakeEvent(message_record())) is None and not flow.in_progress  # reads nothing more
