"""Checks that each partition is read without holes, and seeks back over one.

faust-streaming can drop fetched records around a rebalance: its drain loop sets the read position even
for a record it could not deliver (flow suspended), and a drain of an old batch that runs on after the
post-rebalance seek moves the read position past records that are then dropped as "already read".
faust goes on with later records of the partition, so a later message of a conversation would be
answered before an earlier one, which only comes back at the next rebalance. Seeing the hole, the
reader seeks back to it. A hole that is really there (offsets taken by transaction markers or removed
by compaction) shows up again at the same place after the seek, and is then accepted.
"""

from __future__ import annotations

import logging
from enum import Enum
from typing import Any, Awaitable, Callable, Hashable

log = logging.getLogger(__name__)


class Verdict(Enum):
    NEXT = "next"        # the record to handle
    HOLE = "hole"        # records before it were not delivered: seek back to `expected`, drop this one
    REPEAT = "repeat"    # already handled (the read position went back): drop it


class OffsetGuard:
    def __init__(self) -> None:
        self.expected: dict[Hashable, int] = {}
        self._sought: dict[Hashable, tuple[int, int]] = {}  # partition -> (expected, got) of the last seek

    def check(self, partition: Hashable, offset: int) -> Verdict:
        expected = self.expected.get(partition)
        real_hole = self._sought.get(partition) == (expected, offset)
        if expected is None or offset == expected or real_hole:
            self.expected[partition] = offset + 1
            self._sought.pop(partition, None)
            return Verdict.NEXT
        if offset < expected:
            return Verdict.REPEAT
        self._sought[partition] = (expected, offset)
        return Verdict.HOLE

    def reset(self) -> None:
        """A rebalance: reading restarts at the committed offsets, wherever those are."""
        self.expected.clear()
        self._sought.clear()


Seek = Callable[[Any, int], Awaitable[None]]


async def in_sequence(guard: OffsetGuard, event: Any, seek: Seek) -> bool:
    """False for a record read out of sequence; after a hole, the partition is sought back to it."""
    message = event.message
    verdict = guard.check(message.partition, message.offset)
    if verdict is Verdict.NEXT:
        return True
    if verdict is Verdict.HOLE:
        expected = guard.expected[message.partition]
        log.warning("stream.offset_hole topic=%s partition=%s expected=%s got=%s: seeking back", message.topic,
                    message.partition, expected, message.offset)
        await seek(message.tp, expected)
    return False
