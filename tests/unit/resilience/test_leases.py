"""A worker's lease client against an owner in memory (the capacity rules, answers delivered as the
grants topic would): calls spend leases, share one ask, wait for full windows and for pauses, and retry
an owner that does not answer."""

from __future__ import annotations

import asyncio

from gateway_app.resilience import capacity
from gateway_app.resilience.capacity import CapacityRow
from gateway_app.resilience.endpoints import Caps
from gateway_app.resilience.leases import LeaseClient

ENDPOINT = "openai:gpt@u"


class Owner:
    """The capacity agent's rules over one row per endpoint; answers every client, like the topic."""

    def __init__(self, answer: bool = True) -> None:
        self.rows: dict[str, CapacityRow] = {}
        self.clients: list[LeaseClient] = []
        self.asks = 0
        self.answer = answer

    async def send(self, endpoint: str, raw: bytes) -> None:
        request = capacity.decode_request(raw)
        row = self.rows.get(endpoint, CapacityRow())
        if isinstance(request, capacity.Ask):
            self.asks += 1
            row, out = capacity.grant(row, request)
        else:
            row = capacity.pause(row, request)
            out = capacity.PauseAnnouncement(endpoint, row.paused_until)
        self.rows[endpoint] = row
        if self.answer:
            for client in self.clients:
                asyncio.get_running_loop().call_soon(client.on_answer, capacity.encode(out))


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def client(owner: Owner, clock: Clock, share: float = 0.2, timeout: float = 0.2) -> LeaseClient:
    leases = LeaseClient(owner.send, window_seconds=10.0, share=share, ask_timeout=timeout, clock=clock)
    leases.listening.set()
    owner.clients.append(leases)
    return leases


async def test_calls_spend_a_lease_and_share_one_ask():
    owner, clock = Owner(), Clock()
    leases = client(owner, clock)
    results = await asyncio.gather(*(leases.reserve(ENDPOINT, Caps(rpm=10), 0) for _ in range(2)))
    assert results == [(0.0, 100), (0.0, 100)] and owner.asks == 1  # a lease of 2 (20% of 10), one ask


async def test_two_workers_never_get_more_than_the_cap_and_then_wait_for_the_next_window():
    owner, clock = Owner(), Clock(1000.0)
    first, second = client(owner, clock), client(owner, clock)
    waits = [await (first if n % 2 else second).reserve(ENDPOINT, Caps(rpm=10), 0) for n in range(14)]
    assert sum(1 for delay, _ in waits if delay == 0) == 10
    assert all(delay == 10.0 for delay, _ in waits if delay)  # the others wait for the window's end, 1010
    clock.now = 1010.0
    assert await first.reserve(ENDPOINT, Caps(rpm=10), 0) == (0.0, 101)


async def test_tokens_are_leased_and_settled():
    owner, clock = Owner(), Clock()
    leases = client(owner, clock, share=0.1)
    assert (await leases.reserve(ENDPOINT, Caps(tpm=1000), 300))[0] == 0  # asks max(300, 100) tokens
    assert leases.leases[ENDPOINT].tokens == 0
    leases.settle(ENDPOINT, 100, reserved=300, used=120)
    assert leases.leases[ENDPOINT].tokens == 180


async def test_a_429_pauses_every_worker():
    owner, clock = Owner(), Clock()
    first, second = client(owner, clock), client(owner, clock)
    await first.pause(ENDPOINT, 5.0)
    await asyncio.sleep(0)
    assert first.paused_for(ENDPOINT) == 5.0 and second.paused_for(ENDPOINT) == 5.0
    assert await second.reserve(ENDPOINT, Caps(rpm=10), 0) == (5.0, None)
    assert await second.reserve("other:m@u", Caps(rpm=10), 0) == (0.0, 100)  # other endpoints go on


async def test_an_owner_that_does_not_answer_makes_calls_wait_never_go_unmetered():
    owner, clock = Owner(answer=False), Clock()
    leases = client(owner, clock, timeout=0.05)
    delay, window = await leases.reserve(ENDPOINT, Caps(rpm=10), 0)
    assert delay > 0 and window is None and ENDPOINT not in leases.leases


async def test_an_answer_for_another_worker_or_too_late_is_not_spent():
    owner, clock = Owner(answer=False), Clock()
    leases = client(owner, clock, timeout=0.05)
    await leases.reserve(ENDPOINT, Caps(rpm=10), 0)  # times out
    late = capacity.Grant("gone", leases.worker, ENDPOINT, 100, 5, 0)
    other = capacity.Grant("x", "another-worker", ENDPOINT, 100, 5, 0)
    leases.on_answer(capacity.encode(late))
    leases.on_answer(capacity.encode(other))
    leases.on_answer(b"not json")
    assert ENDPOINT not in leases.leases


async def test_an_uncapped_endpoint_only_waits_for_pauses():
    owner, clock = Owner(), Clock()
    leases = client(owner, clock)
    assert await leases.reserve(ENDPOINT, Caps(), 50) == (0.0, None) and owner.asks == 0
