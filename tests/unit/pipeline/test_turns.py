import asyncio

from gateway_app.pipeline.turns import Lane, Lanes


async def test_turns_are_given_in_ticket_order():
    lane = Lane()
    order: list[int] = []
    tickets = [lane.take() for _ in range(4)]

    async def worker(i):
        await lane.wait(tickets[i])
        order.append(i)
        # Scenario, not a wait: holding the turn longer the earlier the ticket, so that without turns
        # the later workers would finish first.
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
    await asyncio.sleep(0)  # one step of the loop: the waiter starts waiting (no time passes)
    lane.notify()
    assert await asyncio.wait_for(waiter, 1) is True
    assert await lane.wait_changed(0.01) is False  # nothing changed: its (real, short) timeout ends the wait
