"""The batch restore loop's row handling: which rows reach a table, when its buffer is written, what is counted."""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from types import SimpleNamespace

from faust.types import TP

from gateway_app.kafka.recovery import BatchRecovery

ACTIVE, STANDBY, REVOKED = TP("t-changelog", 0), TP("t-changelog", 1), TP("t-changelog", 2)


class FakeTable:
    recovery_buffer_size = 3
    standby_buffer_size = 2

    def __init__(self) -> None:
        self.written: list[list[int]] = []
        self.seen: list[int] = []

    async def on_changelog_event(self, event) -> None:
        self.seen.append(event.message.offset)

    def apply_changelog_batch(self, batch) -> None:
        self.written.append([e.message.offset for e in batch])


def row(tp: TP, offset: int):
    return SimpleNamespace(message=SimpleNamespace(tp=tp, topic=tp.topic, offset=offset))


def recovery(table: FakeTable) -> BatchRecovery:
    # The row handling only needs the bookkeeping faust's Recovery.__init__ sets up.
    r = BatchRecovery.__new__(BatchRecovery)
    r.active_tps, r.standby_tps = {ACTIVE}, {STANDBY}
    r.active_offsets, r.standby_offsets = Counter(), Counter()
    r._active_events_received_at, r._standby_events_received_at = {}, {}
    r.tp_to_table = {ACTIVE: table, STANDBY: table}
    r.buffers, r.buffer_sizes = defaultdict(list), {}
    r._processing_times, r._last_active_event_processed_at = deque(), None
    return r


async def test_rows_are_buffered_in_offset_order_and_written_when_the_buffer_is_full():
    table = FakeTable()
    r = recovery(table)
    await r._take([row(ACTIVE, o) for o in range(7)])
    assert table.written == [[0, 1, 2], [3, 4, 5]]
    assert [e.message.offset for e in r.buffers[table]] == [6]  # written when full or when recovery ends
    assert r.active_offsets[ACTIVE] == 6 and r._restore_rows == 7


async def test_rows_at_or_below_the_last_offset_seen_are_dropped():
    table = FakeTable()
    r = recovery(table)
    await r._take([row(ACTIVE, 5), row(ACTIVE, 5), row(ACTIVE, 3), row(ACTIVE, 6)])
    assert table.seen == [5, 6] and r._restore_rows == 2


async def test_standby_rows_use_their_own_offsets_and_buffer_size_and_are_not_counted_as_restored():
    table = FakeTable()
    r = recovery(table)
    await r._take([row(STANDBY, 0), row(STANDBY, 1), row(ACTIVE, 0)])
    assert table.written == [[0, 1]]
    assert r.standby_offsets[STANDBY] == 1 and r.active_offsets[ACTIVE] == 0 and r._restore_rows == 1


async def test_rows_of_a_revoked_partition_are_skipped():
    table = FakeTable()
    r = recovery(table)
    await r._take([row(REVOKED, 0), row(ACTIVE, 0)])
    assert table.seen == [0] and REVOKED not in r.active_offsets


async def test_a_row_that_fails_does_not_drop_the_rest_of_its_batch():
    table = FakeTable()
    r = recovery(table)
    calls = 0

    async def flaky(event) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("bad row")
        table.seen.append(event.message.offset)

    table.on_changelog_event = flaky
    await r._take([row(ACTIVE, o) for o in range(4)])
    assert table.seen == [0, 2, 3] and r.active_offsets[ACTIVE] == 3


def test_restore_stats_report_the_last_restore():
    r = recovery(FakeTable())
    r.in_recovery = False
    r._restore_rows, r._restore_started_at, r._restore_seconds = 50_000, None, 2.0
    assert r.restore_stats() == {"in_progress": False, "rows": 50_000, "seconds": 2.0, "rows_per_second": 25_000}
