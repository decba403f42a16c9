"""The owner's grants: never more than a window's cap in total, whatever is asked and in what order, a
redelivered ask answered as before, asks for a past window refused, pauses kept."""

from __future__ import annotations

import random

from gateway_app.resilience import capacity
from gateway_app.resilience.capacity import Ask, CapacityRow, Grant, Lease, PauseNotice


def ask(request_id: str, window: int = 10, requests: int = 2, tokens: int = 0, rpm: int | None = 5,
        tpm: int | None = None, worker: str = "w1") -> Ask:
    return Ask(request_id, worker, "openai:gpt@u", window, requests, tokens, rpm, tpm)


def test_grants_stop_at_the_cap_and_a_new_window_starts_from_zero():
    row, grants = CapacityRow(), []
    for n in range(4):
        row, grant = capacity.grant(row, ask(f"a{n}"))
        grants.append(grant.requests)
    assert grants == [2, 2, 1, 0] and row.requests == 5
    row, grant = capacity.grant(row, ask("b", window=11))
    assert grant.requests == 2 and grant.window == 11 and row.requests == 2


def test_an_ask_for_a_window_that_is_over_gets_nothing():
    row, _ = capacity.grant(CapacityRow(), ask("a", window=11))
    row, late = capacity.grant(row, ask("b", window=10))
    assert (late.requests, late.tokens, late.window) == (0, 0, 10) and row.window == 11 and row.requests == 2


def test_a_redelivered_ask_gets_the_same_answer_counted_once():
    row, first = capacity.grant(CapacityRow(), ask("a"))
    row, again = capacity.grant(row, ask("a"))
    assert again == first and row.requests == 2


def test_many_workers_random_asks_never_pass_the_caps():
    rng = random.Random(7)
    row, granted = CapacityRow(), {}
    for n in range(2000):
        window = 100 + n // 200
        wanted = ask(f"a{n}", window=window, requests=rng.randint(1, 9), tokens=rng.randint(1, 900), rpm=40,
                     tpm=5000, worker=f"w{rng.randint(1, 3)}")
        row, grant = capacity.grant(row, wanted)
        requests, tokens = granted.get(window, (0, 0))
        granted[window] = (requests + grant.requests, tokens + grant.tokens)
        if rng.random() < 0.1:  # an owner restart: the row comes back from its changelog bytes
            row = capacity.decode_row(capacity.encode(row))
    assert len(granted) == 10
    assert all(r <= 40 and t <= 5000 for r, t in granted.values()), granted
    assert all(r >= 35 or t >= 4000 for r, t in granted.values()), granted  # and the caps are used, not starved


def test_tokens_one_call_above_the_whole_cap_goes_alone_in_its_window():
    row, big = capacity.grant(CapacityRow(), ask("a", requests=1, tokens=900, rpm=None, tpm=500))
    assert big.tokens == 900
    row, after = capacity.grant(row, ask("b", requests=1, tokens=10, rpm=None, tpm=500))
    assert after.tokens == 0 and after.requests == 0  # half a lease (a request without tokens) is none


def test_pauses_are_kept_and_carried_by_grants():
    row = capacity.pause(CapacityRow(), PauseNotice("w2", "openai:gpt@u", 1000.5))
    row = capacity.pause(row, PauseNotice("w3", "openai:gpt@u", 900.0))  # an earlier end does not shorten it
    _, grant = capacity.grant(row, ask("a"))
    assert grant.paused_until == 1000.5


def test_records_round_trip():
    for record in (ask("a"), PauseNotice("w", "e", 1.5)):
        assert capacity.decode_request(capacity.encode(record)) == record
    grant = Grant("a", "w", "e", 3, 2, 100, 0.0, owner="w-owner")
    assert capacity.decode_answer(capacity.encode(grant)) == grant
    # A grant from a worker of the version before `owner` (a rolling upgrade) still reads, owner unknown.
    before = b'{"request_id":"a","worker":"w","endpoint":"e","window":3,"requests":2,"tokens":100,"paused_until":0.0,"kind":"grant"}'
    assert capacity.decode_answer(before) == Grant("a", "w", "e", 3, 2, 100, 0.0, owner="")


def test_a_lease_spends_settles_and_lapses_with_its_window():
    lease = Lease(window=5, requests=2, tokens=100)
    assert lease.fits(5, 60, True, True) and not lease.fits(6, 1, True, True)
    lease.spend(60)
    assert not lease.fits(5, 60, True, True) and lease.fits(5, 40, True, True)
    lease.settle(5, reserved=60, used=20)  # the call used less than its estimate: the rest is spendable
    assert lease.tokens == 80
    lease.settle(4, reserved=60, used=0)  # an earlier window's call: nothing to give back
    assert lease.tokens == 80
