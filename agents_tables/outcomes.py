"""Outcome rows: the reply and billing events already produced for a message, and which messages each
partition remembers (bounded: the oldest are forgotten first).

A row is the records' bytes as sent, joined by newlines (JSON never contains a raw one): the reply
first, then one billing event per provider answer that used tokens. A redelivered message is answered
with exactly the same bytes, and the row costs no JSON round trip.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Hashable, NamedTuple


class Outcome(NamedTuple):
    reply: bytes
    billing: tuple[bytes, ...] = ()


def encode(outcome: Outcome) -> bytes:
    return b"\n".join((outcome.reply, *outcome.billing))


def decode(row: bytes) -> Outcome:
    reply, *billing = row.split(b"\n")
    return Outcome(reply, tuple(b for b in billing if b))


class RecentKeys:
    """Insertion-ordered set with a capacity; `add` returns the keys that fell out."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._keys: OrderedDict[str, None] = OrderedDict()

    def add(self, key: str) -> list[str]:
        self._keys[key] = None
        self._keys.move_to_end(key)
        evicted = []
        while len(self._keys) > self.capacity:
            evicted.append(self._keys.popitem(last=False)[0])
        return evicted

    def __len__(self) -> int:
        return len(self._keys)


class OutcomeStore:
    """The `message-outcomes` table, typed: at most `per_partition` rows kept per partition."""

    def __init__(self, table: Any, per_partition: int) -> None:
        self.table = table
        self.per_partition = per_partition
        self.recent: dict[Hashable, RecentKeys] = {}

    def get(self, message_id: str) -> Outcome | None:
        row = self.table.get(message_id)
        return None if row is None else decode(row)

    def remember(self, partition: Hashable, message_id: str, outcome: Outcome) -> None:
        """Must run inside the message's own task: faust writes the row to that event's partition."""
        self.table[message_id] = encode(outcome)
        recent = self.recent.setdefault(partition, RecentKeys(self.per_partition))
        for old in recent.add(message_id):
            self.table.pop(old, None)

    def forget_recent(self) -> None:
        self.recent.clear()
