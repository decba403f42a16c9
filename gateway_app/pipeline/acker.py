"""Acks events strictly in offset order per partition, however their processing finishes.

Faust commits the highest contiguous acked offset but can jump past an event still in flight when
later ones are acked first (faust-streaming #606). Holding each partition's acks back until every
earlier event is done keeps the committed offset behind anything unfinished: at-least-once.
"""

from __future__ import annotations

from collections import deque
from typing import Hashable, Protocol


class Ackable(Protocol):
    def ack(self) -> bool: ...


class AckSlot:
    """One read event's place in its partition's ack queue."""

    __slots__ = ("event", "done")

    def __init__(self, event: Ackable) -> None:
        self.event = event
        self.done = False


class InOrderAcker:
    def __init__(self) -> None:
        self._queues: dict[Hashable, deque[AckSlot]] = {}

    def track(self, partition: Hashable, event: Ackable) -> AckSlot:
        """Register an event as read; returns the slot that `done` takes."""
        slot = AckSlot(event)
        self._queues.setdefault(partition, deque()).append(slot)
        return slot

    def done(self, partition: Hashable, slot: AckSlot) -> int:
        """Mark an event fully handled; acks every leading done event. Returns how many were acked."""
        slot.done = True
        queue = self._queues.get(partition)
        acked = 0
        while queue and queue[0].done:
            queue.popleft().event.ack()
            acked += 1
        return acked

    def oldest(self, partition: Hashable) -> int | None:
        """The offset of the partition's oldest event not yet done: every earlier one is (None: none read
        in this generation, or an event without an offset)."""
        for slot in self._queues.get(partition, ()):
            message = getattr(slot.event, "message", None)
            return getattr(message, "offset", None)
        return None

    def pending(self, partition: Hashable | None = None) -> int:
        if partition is not None:
            return len(self._queues.get(partition, ()))
        return sum(len(q) for q in self._queues.values())

    def forget_all(self) -> int:
        """Drop everything unacked (a rebalance): those events are redelivered from the committed offset."""
        dropped = self.pending()
        self._queues.clear()
        return dropped
