"""Usage rows: the totals' exact arithmetic, which messages a row counted (offsets above a floor), the
rows a message adds to, grouping, and the spend a budget reads."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agents_tables import usage
from agents_tables.usage import Entry, Seen, Totals, UsageStore


def bill(event_id: str = "e1", *, agent: str = "a", user: str | None = "u1", day: str = "2026-11-26",
         provider: str = "openai", model: str = "gpt-4o-mini", cost: str = "0.00001230", cache_hit: bool = False,
         **extra) -> dict:
    event = {"event_id": event_id, "message_id": "m", "agent_id": agent, "user_id": user, "room_id": "r",
             "provider": provider, "model": model, "input_tokens": 0 if cache_hit else 20,
             "output_tokens": 0 if cache_hit else 5, "cached_input_tokens": 0 if cache_hit else 4,
             "reasoning_tokens": 0 if cache_hit else 1, "cost_usd": "0" if cache_hit else cost,
             "price_version": "v", "created_at": f"{day}T23:59:59.999999+00:00", "cache_hit": cache_hit}
    if cache_hit:
        event.update(saved_input_tokens=20, saved_output_tokens=5, saved_cost_usd=cost)
    return {**event, **extra}


class Table(dict):
    """A table's read/write surface, counting writes."""

    writes = 0

    def __setitem__(self, key, value) -> None:
        self.writes += 1
        super().__setitem__(key, value)


def test_a_call_and_a_cache_hit_add_up_exactly():
    totals = Totals()
    for _ in range(3):
        totals.add(Totals.of_billing(bill()))
    totals.add(Totals.of_billing(bill(cache_hit=True, cost="0.00000007")))
    assert totals.as_json() == {
        "requests": 3, "input_tokens": 60, "output_tokens": 15, "cached_input_tokens": 12, "reasoning_tokens": 3,
        "cost_usd": "0.00003690", "cache_hits": 1, "saved_input_tokens": 20, "saved_output_tokens": 5,
        "saved_cost_usd": "0.00000007", "errors": 0, "deferrals": 0}
    assert Totals.from_row(totals.as_row()) == totals and "errors" not in totals.as_row()


def test_ten_thousand_small_costs_sum_to_the_cent_and_beyond():
    totals = Totals()
    for _ in range(10_000):
        totals.add(Totals.of_billing(bill(cost="0.00000001")))
    assert totals.as_json()["cost_usd"] == "0.00010000"  # a float sum would be 0.00010000000000000938


def test_seen_counts_offsets_above_the_floor_and_everything_below_it():
    seen = Seen()
    assert not seen.counts(5) and not seen.counts(None)
    for offset in (9, 5, 7):
        seen.add(offset)
    assert seen.offsets == [5, 7, 9] and seen.counts(7) and not seen.counts(6)
    seen.raise_floor(8)  # every record below 8 is finished: 5 and 7 may be forgotten, 6 counts too
    assert seen.offsets == [9] and seen.counts(6) and seen.counts(5) and not seen.counts(10)
    seen.raise_floor(3)  # a floor never goes back
    assert seen.floor == 8
    assert Seen.from_row(seen.as_row()) == seen


def test_seen_is_delta_encoded_and_bounded():
    seen = Seen(floor=1_000_000)
    for offset in range(1_000_000, 1_000_100, 3):
        seen.add(offset)
    assert seen.as_row()["seen"][:3] == [0, 3, 3]
    crowded = Seen(offsets=list(range(usage.MAX_SEEN + 10)))
    crowded.raise_floor(None)
    assert len(crowded.offsets) == usage.MAX_SEEN and crowded.offsets[0] == 10


def test_a_message_adds_to_its_agent_day_row_and_its_user_day_row():
    entries = [usage.entry_of_billing(bill("e1")), usage.entry_of_billing(bill("e2", model="gpt-4o", cost="0.001"))]
    rows = usage.rows_of(entries)
    day, user = usage.day_key("2026-11-26", "a"), usage.user_key("a", "2026-11-26", "u1")
    assert set(rows) == {day, user}
    assert set(rows[day]) == {f"openai{usage.SEP}gpt-4o-mini", f"openai{usage.SEP}gpt-4o"}
    assert rows[user][""].requests == 2 and rows[user][""].cost_usd == Decimal("0.00101230")


def test_the_day_is_the_utc_date_of_created_at():
    assert usage.day_of("2026-11-26T23:30:00-02:00") == "2026-11-27"
    assert usage.day_of("2026-11-26T10:00:00Z") == "2026-11-26"


def test_a_failure_and_a_deferral_count_per_message():
    reply = {"agent_id": "a", "user_id": None, "provider": "openai", "model": "m", "created_at": "2026-11-26T01:00:00Z"}
    failed = usage.message_entry({**reply, "status": "rate_limited"}, deferred=True)
    assert (failed.totals.errors, failed.totals.deferrals) == (1, 1)
    assert usage.message_entry({**reply, "status": "ok"}, deferred=False) is None
    assert usage.message_entry({**reply, "status": "blocked"}, deferred=False) is None  # an answer, not an error
    assert usage.message_entry({**reply, "status": "ok"}, deferred=True).totals.deferrals == 1


def test_a_row_adds_a_message_once_and_writes_itself_every_time():
    table = Table()
    store = UsageStore(table)
    store.floor_of = lambda partition: None
    buckets = {"openai\x1fgpt-4o-mini": Totals(requests=1, cost_usd=Decimal("0.5"))}
    store.add(0, 41, "k", buckets)
    store.add(0, 41, "k", buckets)  # the same message again (a run after a crash): counted already
    assert store.row("k").total().requests == 1 and table.writes == 2  # written again all the same
    store.add(0, 42, "k", buckets)
    assert store.row("k").total().cost_usd == Decimal("1.0") and store.row("k").seen.offsets == [41, 42]


def test_decoded_rows_are_kept_until_a_rebalance_and_a_failed_write_is_not_kept():
    table = Table()
    store = UsageStore(table)
    buckets = {"openai\x1fgpt-4o-mini": Totals(requests=1, cost_usd=Decimal("0.5"))}
    store.add(0, 41, "k", buckets)
    table["k"] = usage.encode(usage.UsageRow())  # a restore wrote the row under the cache's feet
    assert store.row("k").total().requests == 1  # the cached row, until the rebalance ends
    store.forget_recent()
    assert store.row("k").total().requests == 0  # read from the table again

    class Failing(Table):
        def __setitem__(self, key, value) -> None:
            raise OSError("disk full")

    failing = UsageStore(Failing())
    with pytest.raises(OSError):
        failing.add(0, 7, "k", buckets)
    assert failing.row("k").total().requests == 0  # not the change that never reached the table


def test_the_cache_holds_a_bounded_number_of_rows_or_none():
    store, off = UsageStore(Table(), cached_rows=3), UsageStore(Table(), cached_rows=0)
    for n in range(10):
        store.row(f"k{n}")
        off.row(f"k{n}")
    assert list(store._rows) == ["k7", "k8", "k9"] and not off._rows


def test_the_floor_forgets_finished_messages_and_still_counts_them():
    store = UsageStore(Table())
    floor = {"value": None}
    store.floor_of = lambda partition: floor["value"]
    one = {"": Totals(requests=1)}
    store.add(0, 10, "k", one)
    floor["value"] = 12  # 10 and 11 finished, 12 is the oldest record in progress
    store.add(0, 15, "k", one)
    row = store.row("k")
    assert row.seen.offsets == [15] and row.seen.floor == 12
    store.add(0, 10, "k", one)  # run again after a crash: below the floor, so counted
    assert store.row("k").total().requests == 2


def test_grouping_and_totals():
    entries = [Entry("2026-11-25", "a", "openai", "gpt-4o-mini", None, Totals(requests=1, cost_usd=Decimal("0.1"))),
               Entry("2026-11-26", "a", "openai", "gpt-4o", None, Totals(requests=2, cost_usd=Decimal("0.2"))),
               Entry("2026-11-26", "b", "anthropic", "claude", None, Totals(requests=4, cost_usd=Decimal("0.4")))]
    by_day = usage.group(entries, "day")
    assert [(r["day"], r["requests"], r["cost_usd"]) for r in by_day] == [
        ("2026-11-25", 1, "0.10000000"), ("2026-11-26", 6, "0.60000000")]
    assert [(r["provider"], r["model"]) for r in usage.group(entries, "model")] == [
        ("anthropic", "claude"), ("openai", "gpt-4o"), ("openai", "gpt-4o-mini")]
    assert [r["provider"] for r in usage.group(entries, "provider")] == ["anthropic", "openai"]
    assert usage.total(by_day)["cost_usd"] == "0.70000000"
    with pytest.raises(ValueError):
        usage.group(entries, "room")


def test_entries_read_back_from_the_table_by_agent_user_and_day():
    store = UsageStore(Table())
    for key, buckets in usage.rows_of([usage.entry_of_billing(bill("e1", day="2026-11-25")),
                                       usage.entry_of_billing(bill("e2", day="2026-11-26", user=None)),
                                       usage.entry_of_billing(bill("e3", agent="b", day="2026-11-26"))]).items():
        store.add(0, None, key, buckets)
    assert [(e.day, e.agent_id) for e in store.local_entries("2026-11-26", "2026-11-26")] == [
        ("2026-11-26", "a"), ("2026-11-26", "b")]
    assert [(e.day, e.user_id) for e in store.user_entries("a", "2026-11-20", "2026-11-30")] == [
        ("2026-11-25", "u1"), ("2026-11-26", None)]
    assert [e.model for e in store.agent_entries("a", "2026-11-25", "2026-11-26")] == ["gpt-4o-mini"] * 2


def test_spend_of_a_day_and_of_a_month_to_date():
    store = UsageStore(Table())
    for day, cost in (("2026-10-31", "9"), ("2026-11-01", "1"), ("2026-11-02", "2"), ("2026-11-03", "4"),
                      ("2026-11-04", "8")):
        for key, buckets in usage.rows_of([usage.entry_of_billing(bill(day=day, cost=cost))]).items():
            store.add(0, None, key, buckets)
    assert store.spent("a", "2026-11-03") == Decimal("4")
    assert store.spent_month("a", "2026-11-04") == Decimal("15")  # October is another month
    assert store.spent_month("a", "2026-11-01") == Decimal("1")
    for key, buckets in usage.rows_of([usage.entry_of_billing(bill(day="2026-11-03", cost="16"))]).items():
        store.add(0, None, key, buckets)  # yesterday may still change (a message written after midnight)
    assert store.spent_month("a", "2026-11-04") == Decimal("31")
