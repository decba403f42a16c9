"""Room moderation rows: per agent + room, the platform's signals still active, and (only when the
repetition check needs them) the agent's last replies in the room.

A signal is applied at its place in the agent's stream (the dispatcher) and holds until its ttl ends:
reads ignore an expired signal at once, and the sweep asks the owner to remove it (a changelog write, a
tombstone when the row is left empty), so no signal escalates forever and none comes back from a
restore. A signal id already in the row is not applied twice (a redelivery).

Bytes: a header line `<next_expiry_ms>` (the sweep reads only that; 0 without signals), then JSON.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from typing import Any, Iterator

from agents_tables.conversations import key_of, split_key
from gateway_app.contract.events import ModerationSignal, Severity, SignalKind

log = logging.getLogger(__name__)
MAX_SIGNALS_PER_ROOM = 32  # the oldest go first
SEVERITY_ORDER = {Severity.LOW: 0, Severity.MEDIUM: 1, Severity.HIGH: 2}


@dataclass(frozen=True)
class ActiveSignal:
    signal_id: str
    kind: SignalKind
    severity: Severity
    score: float | None
    categories: tuple[str, ...]
    applied_ms: int
    expires_ms: int


@dataclass(frozen=True)
class RoomModeration:
    signals: tuple[ActiveSignal, ...] = ()
    replies: tuple[str, ...] = ()  # newest last

    def active(self, now_ms: int) -> tuple[ActiveSignal, ...]:
        return tuple(s for s in self.signals if s.expires_ms > now_ms)


def encode(row: RoomModeration) -> bytes:
    next_expiry = min((s.expires_ms for s in row.signals), default=0)
    body = {"signals": [[s.signal_id, s.kind.value, s.severity.value, s.score, list(s.categories), s.applied_ms,
                         s.expires_ms] for s in row.signals], "replies": list(row.replies)}
    return f"{next_expiry}\n".encode() + json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def decode(raw: bytes) -> RoomModeration:
    _, _, body = raw.partition(b"\n")
    data = json.loads(body)
    signals = tuple(ActiveSignal(i, SignalKind(k), Severity(v), sc, tuple(c), a, e)
                    for i, k, v, sc, c, a, e in data.get("signals", ()))
    return RoomModeration(signals, tuple(data.get("replies", ())))


def next_expiry(raw: bytes) -> int:
    return int(raw[: raw.index(b"\n")])


def strongest(signals: tuple[ActiveSignal, ...]) -> dict[SignalKind, ActiveSignal]:
    """Per kind, the active signal of the highest severity (the newest among equals)."""
    best: dict[SignalKind, ActiveSignal] = {}
    for signal in sorted(signals, key=lambda s: s.applied_ms):
        current = best.get(signal.kind)
        if current is None or SEVERITY_ORDER[signal.severity] >= SEVERITY_ORDER[current.severity]:
            best[signal.kind] = signal
    return best


class ModerationStore:
    """The `room-moderation` table, typed. Writes must run inside the agent's own event (or its task)."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def get(self, agent_id: str, room_id: str) -> RoomModeration | None:
        raw = self.table.get(key_of(agent_id, room_id))
        if raw is None:
            return None
        try:
            return decode(raw)
        except (ValueError, KeyError, TypeError) as exc:
            log.error("moderation.undecodable_row agent=%s error=%r (read as empty)", agent_id, exc)
            return None

    def active(self, agent_id: str, room_id: str, now_ms: int) -> tuple[ActiveSignal, ...]:
        row = self.get(agent_id, room_id)
        return row.active(now_ms) if row else ()

    def apply(self, signal: ModerationSignal, agent_id: str, now_ms: int) -> ActiveSignal | None:
        """Records the signal; None when it is already there (the same signal id)."""
        row = self.get(agent_id, signal.room_id) or RoomModeration()
        if any(s.signal_id == signal.signal_id for s in row.signals):
            return None
        active = ActiveSignal(signal.signal_id, signal.signal, signal.severity, signal.score,
                              tuple(signal.categories), now_ms, now_ms + signal.ttl() * 1000)
        kept = (row.active(now_ms) + (active,))[-MAX_SIGNALS_PER_ROOM:]
        self._put(agent_id, signal.room_id, replace(row, signals=kept))
        return active

    def expire(self, agent_id: str, room_id: str, now_ms: int) -> tuple[ActiveSignal, ...]:
        """Removes the signals past their ttl; returns them."""
        row = self.get(agent_id, room_id)
        if row is None:
            return ()
        gone = tuple(s for s in row.signals if s.expires_ms <= now_ms)
        if gone:
            self._put(agent_id, room_id, replace(row, signals=row.active(now_ms)))
        return gone

    def remember_reply(self, agent_id: str, room_id: str, text: str, last_n: int) -> None:
        row = self.get(agent_id, room_id) or RoomModeration()
        self._put(agent_id, room_id, replace(row, replies=(row.replies + (text,))[-last_n:]))

    def rooms_to_sweep(self, now_ms: int) -> Iterator[tuple[str, str]]:
        for key, raw in self.table.items():
            try:
                expiry = next_expiry(raw)
            except ValueError:
                continue
            if 0 < expiry <= now_ms:
                yield split_key(key)

    def _put(self, agent_id: str, room_id: str, row: RoomModeration) -> None:
        key = key_of(agent_id, room_id)
        if not row.signals and not row.replies:
            self.table.pop(key, None)  # a tombstone: nothing left to remember
            return
        self.table[key] = encode(row)
