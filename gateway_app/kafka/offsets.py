"""Which record of a partition a stream may process next: the contiguity rule behind at-least-once.

Per partition the guard holds the next offset this worker must process, set from the committed offset
whenever the consumer seeks there (after every rebalance). A record is processed only if it is that
offset: an older one is a duplicate (a refetch after a seek), a newer one means records in between were
never delivered (a hole). Processing past a hole would let the commit skip the missing records, so the
newer record is dropped (not acked) and the consumer is sent back to the missing offset; until the first
refetched record arrives, records from before that repair seek are dropped too.

A hole can also be real: transactional producers leave offsets with no record (commit markers). The first
record fetched after the repair seek tells which: it is either the missing offset, or the first one that
exists after it, and the stream goes on from there.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Hashable, Mapping


class Verdict(enum.Enum):
    PROCESS = "process"
    DUPLICATE = "duplicate"  # already processed (or in flight) in this generation
    HOLE = "hole"            # records before it are missing: repair by seeking to `expected`
    STALE = "stale"          # fetched before the repair seek: its refetched copy comes in order


@dataclass
class _Partition:
    expected: int | None  # None: unknown (no committed offset); the first record sets it
    repair: tuple[int, int] | None = None  # (seek target, offset that revealed the hole)


class OffsetGuard:
    def __init__(self) -> None:
        self._partitions: dict[Hashable, _Partition] = {}
        self.counts = {verdict.value: 0 for verdict in Verdict}
        self.gaps_accepted = 0

    def start(self, positions: Mapping[Hashable, int | None]) -> None:
        """The consumer now reads these partitions from these offsets (None: from the log start)."""
        for tp, offset in positions.items():
            self._partitions[tp] = _Partition(offset)

    def expected(self, tp: Hashable) -> int | None:
        state = self._partitions.get(tp)
        return state.expected if state else None

    def check(self, tp: Hashable, offset: int) -> Verdict:
        verdict = self._check(self._partitions.setdefault(tp, _Partition(None)), offset)
        self.counts[verdict.value] += 1
        return verdict

    def _check(self, state: _Partition, offset: int) -> Verdict:
        if state.repair is not None:
            return self._check_repair(state, offset)
        if state.expected is None or offset == state.expected:
            state.expected = offset + 1
            return Verdict.PROCESS
        if offset < state.expected:
            return Verdict.DUPLICATE
        state.repair = (state.expected, offset)
        return Verdict.HOLE

    def _check_repair(self, state: _Partition, offset: int) -> Verdict:
        target, revealed_at = state.repair
        if offset < target:
            return Verdict.DUPLICATE
        if offset > revealed_at:
            return Verdict.STALE  # still in the stream's buffer from before the repair seek
        # The first record the repair seek fetched: the missing offset, or the first that exists after it.
        if offset > target:
            self.gaps_accepted += 1
        state.repair = None
        state.expected = offset + 1
        return Verdict.PROCESS
