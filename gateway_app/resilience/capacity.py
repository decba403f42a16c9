"""Provider caps held across the cluster: the pure rules of the owner's grants and of a worker's leases.

Each capped provider endpoint has one owner: the worker that owns its partition of
`gateway-provider-capacity` (key: the endpoint key). Workers ask it for a lease, a slice of the current
window's requests and tokens; it grants at most what the window has left and remembers what it granted in
the `provider-capacity` table (changelog). A worker spends its lease without asking again; what it does not
spend lapses with the window. A worker that dies gives its lease back by not using it: the window ends.

Windows are tumbling and aligned to the wall clock (`window_of`), the same on every worker, so no
coordination is needed to agree on which window a call falls in. Exact within a window by the workers'
clocks: the grants of one window never add up to more than the cap. What a provider counting over other
windows can see is in docs/providers.md ("Provider caps across workers").

A 429 pause is shared the same way: the worker that got it tells the owner, the owner keeps it in the row
and announces it to every worker on `gateway-provider-grants`; grants made while it lasts carry it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

RECENT_GRANTS = 64  # grants per endpoint remembered by request id: a redelivered ask gets the same answer


def window_of(now: float, window_seconds: float) -> int:
    """The number of the tumbling window `now` (wall-clock seconds) falls in."""
    return int(now // window_seconds)


def window_end(window: int, window_seconds: float) -> float:
    return (window + 1) * window_seconds


@dataclass(frozen=True)
class Ask:
    """A worker's request for a lease (on `gateway-provider-capacity`, keyed by `endpoint`)."""

    request_id: str
    worker: str
    endpoint: str
    window: int
    requests: int  # wanted
    tokens: int  # wanted
    rpm: int | None  # the caps the asking worker is configured with (every worker should have the same)
    tpm: int | None
    kind: str = "ask"


@dataclass(frozen=True)
class PauseNotice:
    """A worker got a 429: the endpoint pauses until `until` (wall clock) on every worker."""

    worker: str
    endpoint: str
    until: float
    kind: str = "pause"


@dataclass(frozen=True)
class Grant:
    """The owner's answer (on `gateway-provider-grants`, which every worker reads whole)."""

    request_id: str
    worker: str
    endpoint: str
    window: int
    requests: int
    tokens: int
    paused_until: float = 0.0
    kind: str = "grant"
    owner: str = ""  # the worker that granted it, the endpoint's owner then (operators and tests read it)


@dataclass(frozen=True)
class PauseAnnouncement:
    endpoint: str
    until: float
    kind: str = "paused"


@dataclass
class CapacityRow:
    """What the owner granted in the endpoint's current window, and its pause."""

    window: int = -1
    requests: int = 0
    tokens: int = 0
    paused_until: float = 0.0
    recent: dict[str, list[int]] = field(default_factory=dict)  # request id -> [window, requests, tokens]


def grant(row: CapacityRow, ask: Ask) -> tuple[CapacityRow, Grant]:
    """Answer an ask: at most what the ask's window has left under the caps. An ask for a window that is
    over gets nothing (it arrived late); for a later one, the row moves on to it. An ask seen before (a
    redelivery after the owner restarted) gets the answer it got then, counted once."""
    seen = row.recent.get(ask.request_id)
    if seen is not None:
        return row, Grant(ask.request_id, ask.worker, ask.endpoint, seen[0], seen[1], seen[2], row.paused_until)
    if ask.window < row.window:
        requests = tokens = 0
        window = ask.window
    else:
        if ask.window > row.window:
            row = replace(row, window=ask.window, requests=0, tokens=0)
        requests = ask.requests if ask.rpm is None else max(0, min(ask.requests, ask.rpm - row.requests))
        tokens = ask.tokens if ask.tpm is None else _tokens_left(row.tokens, ask.tokens, ask.tpm)
        if ask.requests and requests == 0 or (ask.tokens and tokens == 0):
            requests = tokens = 0  # a call needs both: half a lease would only be wasted
        window = row.window
        row = replace(row, requests=row.requests + requests, tokens=row.tokens + tokens)
    recent = dict(row.recent)
    recent[ask.request_id] = [window, requests, tokens]
    while len(recent) > RECENT_GRANTS:
        del recent[next(iter(recent))]
    row = replace(row, recent=recent)
    return row, Grant(ask.request_id, ask.worker, ask.endpoint, window, requests, tokens, row.paused_until)


def _tokens_left(granted: int, wanted: int, tpm: int) -> int:
    if granted == 0 and wanted > tpm:
        return wanted  # one call above the whole cap still goes, alone in its window (or it never would)
    return min(wanted, max(0, tpm - granted))


def pause(row: CapacityRow, notice: PauseNotice) -> CapacityRow:
    return replace(row, paused_until=max(row.paused_until, notice.until))


def lease_size(cap: int | None, share: float) -> int:
    """How much of a cap one ask wants: a share of the window's cap, at least 1."""
    return 0 if cap is None else max(1, math.ceil(cap * share))


@dataclass
class Lease:
    """A worker's slice of one window; spent locally, lapses with the window."""

    window: int
    requests: int
    tokens: int

    def fits(self, window: int, tokens: int, capped_requests: bool, capped_tokens: bool) -> bool:
        return (self.window == window and (not capped_requests or self.requests >= 1)
                and (not capped_tokens or self.tokens >= tokens))

    def spend(self, tokens: int) -> None:
        self.requests -= 1
        self.tokens -= tokens

    def settle(self, window: int, reserved: int, used: int) -> None:
        """A call's token estimate replaced by what it used, while its window lasts. A call that used more
        than it reserved overdraws the lease: the next calls wait for a new one."""
        if window == self.window:
            self.tokens += reserved - used


def encode(record: Ask | PauseNotice | Grant | PauseAnnouncement | CapacityRow) -> bytes:
    return json.dumps(asdict(record), separators=(",", ":")).encode()


def decode_request(raw: bytes) -> Ask | PauseNotice:
    data = json.loads(raw)
    kind = data.get("kind")
    if kind == "ask":
        return Ask(**data)
    if kind == "pause":
        return PauseNotice(**data)
    raise ValueError(f"not a capacity request: kind={kind!r}")


def decode_answer(raw: bytes) -> Grant | PauseAnnouncement:
    data = json.loads(raw)
    kind = data.get("kind")
    if kind == "grant":
        return Grant(**data)
    if kind == "paused":
        return PauseAnnouncement(**data)
    raise ValueError(f"not a capacity answer: kind={kind!r}")


def decode_row(raw: bytes | None) -> CapacityRow:
    if not raw:
        return CapacityRow()
    data: dict[str, Any] = json.loads(raw)
    return CapacityRow(**data)
