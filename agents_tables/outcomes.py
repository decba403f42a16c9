"""Outcome rows: the reply and billing event already produced for a message, and which messages each
partition remembers (bounded: the oldest are forgotten first).

A row is the two records' bytes as sent, joined by a newline (JSON never contains a raw one), so a
redelivered message is answered with exactly the same bytes and the row costs no JSON round trip.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple


class Outcome(NamedTuple):
    reply: bytes
    billing: bytes | None


def encode(outcome: Outcome) -> bytes:
    return outcome.reply + b"\n" + (outcome.billing or b"")


def decode(row: bytes) -> Outcome:
    reply, _, billing = row.partition(b"\n")
    return Outcome(reply, billing or None)


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
