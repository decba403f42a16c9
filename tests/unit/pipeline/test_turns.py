import asyncio

from gateway_app.pipeline.turns import Lane, Lanes


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



def dispatcher(**settings):
    from agents_tables.tables import Stores
    from gateway_app.pipeline.dispatcher import Dispatcher
    from gateway_app.pipeline.stage import Services
    from gateway_app.pipeline.turns import Turns
    from gateway_app.plugins.discovery import Plugins
    from gateway_app.settings import Settings

    class NoTable(dict):
        pass

    stores = Stores.over(type("T", (), {"profiles": NoTable(), "rate_windows": NoTable(), "outcomes": NoTable()})(),
                         10, 100)
    services = Services(Settings(**settings), stores, Turns(), caller=None, publisher=None, prices=None,
                        plugins=Plugins(), counters={})
    return Dispatcher(services)


async def test_reset_drops_tickets_of_tasks_cancelled_before_their_first_step():
    """A message task cancelled before it ever ran never gives its agent-lane ticket back."""
    flow = dispatcher()
    flow.turns.agents.get("agent").take()  # what _start does for a message whose task never runs
    assert flow.backlog("agent") == 1
    flow.reset()
    assert flow.backlog("agent") == 0
    ticket = flow.turns.agents.get("agent").take()
    await asyncio.wait_for(flow.turns.agents.get("agent").wait(ticket), 1)  # the next message gets its turn


async def test_an_event_that_waited_across_a_rebalance_is_dropped_not_started():
    from types import SimpleNamespace

    from gateway_app.contract.events import MessageCreated
    from gateway_app.contract.internal import MessageRecord, Origin, encode_agent_event

    flow = dispatcher(max_pending_messages=1)

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
        await asyncio.sleep(0)  # let it run up to its wait
    assert not waiting.done()
    flow.reset()  # a rebalance: the waiting event belongs to the old assignment
    await asyncio.wait_for(waiting, 1)
    assert flow.acker.pending() == 0 and not flow.in_progress
