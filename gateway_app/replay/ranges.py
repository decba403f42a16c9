"""Ranges of a topic: `--from` / `--to` as written by an operator, resolved to offsets per partition.

A bound is a time (ISO 8601; without a zone it is UTC; a date alone is its midnight UTC), an offset for
every partition (`1200`), or offsets per partition (`0:1200,3:88`). Ranges are half-open: `--from` is
included, `--to` is not, so `--to` = the `--from` of the next run and no record is read twice. Pure:
the reader looks up what the broker knows (first and end offsets, offsets for a time) and hands it here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone


@dataclass(frozen=True)
class TimeBound:
    ms: int  # epoch milliseconds: the first record whose timestamp is at or after it


@dataclass(frozen=True)
class OffsetBound:
    every: int | None = None  # the same offset in every partition
    per_partition: dict[int, int] = field(default_factory=dict)


Bound = TimeBound | OffsetBound


@dataclass(frozen=True)
class PartitionRange:
    partition: int
    start: int  # the first offset read
    end: int    # the first offset not read

    @property
    def size(self) -> int:
        """Offsets in the range (records, unless compaction or transaction markers left gaps)."""
        return max(0, self.end - self.start)


def parse_time(text: str) -> int:
    """Epoch milliseconds of an ISO 8601 time or date; a time without a zone is UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time (e.g. 2026-11-26T10:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def parse_bound(text: str) -> Bound:
    """`1200` (every partition), `0:1200,3:88` (per partition) or an ISO 8601 time."""
    text = text.strip()
    if text.isdigit():
        return OffsetBound(every=int(text))
    if ":" in text and all(part.strip().replace(":", "", 1).isdigit() and part.count(":") == 1
                           for part in text.split(",")):
        pairs = [part.split(":") for part in text.split(",")]
        per_partition = {int(p): int(n) for p, n in pairs}
        if len(per_partition) != len(pairs):
            raise ValueError(f"{text!r} names a partition twice")
        return OffsetBound(per_partition=per_partition)
    return TimeBound(parse_time(text))


def describe(bound: Bound | None) -> str:
    if bound is None:
        return "now"
    if isinstance(bound, TimeBound):
        moment = datetime.fromtimestamp(bound.ms / 1000, timezone.utc)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if bound.every is not None:
        return f"offset {bound.every}"
    return ",".join(f"{p}:{n}" for p, n in sorted(bound.per_partition.items()))


def _clamp(offset: int, first: int, end: int) -> int:
    return min(max(offset, first), end)


def resolve(bound: Bound | None, partition: int, first: int, end: int, at_time: int | None,
            *, is_start: bool) -> int | None:
    """The offset a bound means in one partition, within [first, end]. `at_time`: the broker's offset
    for a time bound (None: no record at or after it, so the partition's end). None: the partition is
    not in the range (a `--from` per partition that does not name it)."""
    if bound is None:  # no --to: up to the end as it was when the run was planned
        return end
    if isinstance(bound, TimeBound):
        return end if at_time is None else _clamp(at_time, first, end)
    if bound.every is not None:
        return _clamp(bound.every, first, end)
    if partition in bound.per_partition:
        return _clamp(bound.per_partition[partition], first, end)
    return None if is_start else end


def plan(partitions: list[int], first: dict[int, int], end: dict[int, int], start: Bound, stop: Bound | None,
         start_times: dict[int, int | None] | None = None,
         stop_times: dict[int, int | None] | None = None) -> list[PartitionRange]:
    """Per partition, the offsets to read. `first` / `end`: the partitions' first offsets and end offsets
    (the offset the next record will get); `*_times`: the broker's offsets for the time bounds."""
    start_times, stop_times = start_times or {}, stop_times or {}
    ranges = []
    for partition in sorted(partitions):
        lo, hi = first[partition], end[partition]
        begin = resolve(start, partition, lo, hi, start_times.get(partition), is_start=True)
        if begin is None:
            continue
        finish = resolve(stop, partition, lo, hi, stop_times.get(partition), is_start=False)
        ranges.append(PartitionRange(partition, begin, max(begin, finish if finish is not None else hi)))
    return ranges


def unknown_partitions(bound: Bound | None, partitions: list[int]) -> list[int]:
    """Partitions a per-partition bound names that the topic does not have (an operator's typo)."""
    if not isinstance(bound, OffsetBound):
        return []
    return sorted(set(bound.per_partition) - set(partitions))


def resume_points(positions: list[tuple[int, int]], stop_index: int, batch_next: dict[int, int]) -> dict[int, int]:
    """Where each partition goes on after a batch that stopped at `stop_index` (the records from there on
    were not handled, e.g. a spend cap): the first unhandled record's offset, else where the reader
    would go on. `positions`: (partition, offset) of the batch's records, in the order they were handled."""
    nexts = dict(batch_next)
    for partition, offset in reversed(positions[stop_index:]):
        nexts[partition] = offset  # reversed: the earliest unhandled offset of a partition wins
    return nexts
