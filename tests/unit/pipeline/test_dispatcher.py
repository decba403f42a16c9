import asyncio
from types import SimpleNamespace

from gateway_app.contract.events import MessageCreated
from gateway_app.contract.internal import MessageRecord, Origin, encode_agent_event


async def test_reset_drops_tickets_of_tasks_cancelled_before_their_first_step(dispatcher_factory):
    """A message task cancelled before it ever ran never gives its agent-lane ticket back."""
    flow = dispatcher_factory()
    flow.turns.agents.get("agent").take()  # what _start does for a message whose task never runs
    assert flow.backlog("agent") == 1
    flow.reset()
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
    flow.reset()  # a rebalance: the waiting event belongs to the old assignment
    await asyncio.wait_for(waiting, 1)
    assert flow.acker.pending() == 0 and not flow.in_progress
