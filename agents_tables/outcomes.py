"""Outcome rows: the reply and billing events a message got, and which messages each partition
remembers (bounded: the oldest are forgotten first).

A row is written only after the broker acknowledged every record in it, so its presence (locally or
restored from its changelog) proves they exist: a redelivery of the same input is acked without
publishing again. The row says which input it answered (`origin`: topic/partition/offset of the input
record) and whether it was an answer (ok or blocked) or a failure, so that a *replay* of the message
(the same message id at another input offset) gets the same answer again, or, if it had failed, is tried
again.

The row is written in the same step as the message's usage rows; it says where (`position`: the
offset of the record in the agent's partition of `gateway-agent-events`) and whether the message waited
for a rate window or its budget (`deferred`), so that a redelivery it absorbs can add to the usage rows
what a kill -9 lost of them (see `agents_tables.usage`).

Bytes: an optional header line `#<topic>/<partition>/<offset>[@<position>[+d]] <answered|failed>`
(`+d`: deferred), then the records as sent, joined by newlines (JSON never contains a raw one): the reply
first, then one billing event per provider answer that used tokens. Rows without a header were written
before the header existed (and before the send, so they prove nothing): they are re-sent as they are.
A worker of a version before `@<position>` reads such a row as an answer to another input (re-sent).
"""

from __future__ import annotations

from collections import OrderedDict
from enum import Enum
from typing import Any, Hashable, NamedTuple


class Outcome(NamedTuple):
    reply: bytes
    billing: tuple[bytes, ...] = ()
    origin: str | None = None   # "topic/partition/offset" of the input it answered; None in old rows
    answered: bool = True       # False: an error reply (the message failed; a replay tries again)
    position: int | None = None  # offset of the record that wrote it (gateway-agent-events); None in old rows
    deferred: bool = False      # it waited for a rate window or its budget (counted in the usage rows)


def origin_key(topic: str, partition: int, offset: int) -> str:
    return f"{topic}/{partition}/{offset}"


def encode(outcome: Outcome) -> bytes:
    lines = [outcome.reply, *outcome.billing]
    if outcome.origin is not None:
        kind = b"answered" if outcome.answered else b"failed"
        where = outcome.origin if outcome.position is None else \
            f"{outcome.origin}@{outcome.position}{'+d' if outcome.deferred else ''}"
        lines.insert(0, b"#" + where.encode() + b" " + kind)
    return b"\n".join(lines)


def decode(row: bytes) -> Outcome:
    lines = row.split(b"\n")
    origin, answered, position, deferred = None, True, None, False
    if lines[0].startswith(b"#"):
        where, _, kind = lines.pop(0)[1:].decode().rpartition(" ")
        origin, answered = where, kind == "answered"
        if "@" in where:  # topic names cannot contain "@" or "+"
            origin, _, at = where.rpartition("@")
            deferred = at.endswith("+d")
            position = int(at.removesuffix("+d"))
    reply, *billing = lines
    return Outcome(reply, tuple(b for b in billing if b), origin, answered, position, deferred)


class Redelivery(Enum):
    """What a message whose id has an outcome row needs."""

    ABSORB = "absorb"   # the same input again (a redelivery, a re-forward): its outputs exist; ack only
    RESEND = "resend"   # a replay of an answered message, or an old row: the same bytes again, no call
    RUN = "run"         # a replay of a message that had failed: try again


def redelivery(remembered: Outcome, origin: str) -> Redelivery:
    if remembered.origin is None:
        return Redelivery.RESEND  # written before its records were sent: it proves nothing
    if remembered.origin == origin:
        return Redelivery.ABSORB
    return Redelivery.RESEND if remembered.answered else Redelivery.RUN


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
