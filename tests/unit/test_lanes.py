import asyncio

from gateway_app.flow.lanes import Lane, Lanes


async def test_turns_are_given_in_ticket_order():
    lane = Lane()
    order: list[int] = []
    tickets = [lane.take() for _ in range(4)]

    async def worker(i):
        await lane.wait(tickets[i])
        order.append(i)
        await asyncio.sleep(0.001 * (4 - i))
        lane.release(tickets[i])

    await asyncio.gather(*(worker(i) for i in reversed(range(4))))
    assert order == [0, 1, 2, 3]


async def test_cancelled_waiter_gives_up_its_place():
    lanes = Lanes()
    lane = lanes.get("a")
    first, second, third = lane.take(), lane.take(), lane.take()
    lanes.release("a", second)  # cancelled before its turn
    lanes.release("a", first)
    await asyncio.wait_for(lane.wait(third), 1)
    lanes.release("a", third)
    assert lanes.peek("a") is None


async def test_notify_wakes_the_head_early():
    lane = Lane()
    waiter = asyncio.create_task(lane.wait_changed(5))
    await asyncio.sleep(0)
    lane.notify()
    assert await asyncio.wait_for(waiter, 1) is True
    assert await lane.wait_changed(0.01) is False



async def test_reset_drops_tickets_of_tasks_cancelled_before_their_first_step():
    """A job task cancelled before it ever ran never gives its agent-lane ticket back."""
    from gateway_app.flow.processor import MessageFlow
    from gateway_app.providers.registry import ProviderPool
    from gateway_app.settings import Settings

    flow = MessageFlow(Settings(), tables=None, publisher=None, providers=ProviderPool())
    flow.agent_lanes.get("agent").take()  # what _start does for a message whose task never runs
    assert flow.backlog("agent") == 1
    flow.reset()
    assert flow.backlog("agent") == 0
    ticket = flow.agent_lanes.get("agent").take()
    await asyncio.wait_for(flow.agent_lanes.get("agent").wait(ticket), 1)  # the next message gets its turn


async def test_an_event_that_waited_across_a_rebalance_is_dropped_not_started():
    from types import SimpleNamespace

    from gateway_app.contract.internal import AgentEvent, Origin
    from gateway_app.flow.processor import MessageFlow
    from gateway_app.providers.registry import ProviderPool
    from gateway_app.settings import Settings

    flow = MessageFlow(Settings(max_pending_messages=1), tables=None, publisher=None, providers=ProviderPool())
    class Unfinished:
        task = None

    flow.jobs.add(Unfinished())  # one unfinished message: the next one waits for room
    record = AgentEvent(kind="message", agent_id="a", payload={
        "message_id": "m1", "agent_id": "a", "room_id": "r", "content": "hi"},
        origin=Origin(topic="t", partition=0, offset=1, key_b64=None, value_b64=None, received_at_ms=0))
    event = SimpleNamespace(value=record.model_dump_json().encode(), message=SimpleNamespace(partition=0, offset=7))
    waiting = asyncio.create_task(flow.on_event(event))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    flow.reset()  # a rebalance: the waiting event belongs to the old assignment
    await asyncio.wait_for(waiting, 1)
    assert flow.acker.pending() == 0 and not flow.jobs
