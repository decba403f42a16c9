"""Per-agent requests- and tokens-per-minute accounting in tumbling windows.

A window row is `{"start_ms", "requests", "tokens"}` for the agent's current window, typed here as a
`Window`. Tokens are reserved before the call (prompt estimate + max_tokens) and reconciled with the
provider's usage afterwards, so no window admits more than one request's `max_tokens` over its TPM limit.
The arithmetic is pure; `WindowStore` is the table boundary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from gateway_app.contract.events import RateLimits

CHARS_PER_TOKEN = 4  # rough for English text; only the admission estimate uses it


@dataclass(frozen=True)
class Window:
    start_ms: int
    requests: int = 0
    tokens: int = 0

    @classmethod
    def from_row(cls, row: dict[str, Any] | None) -> "Window | None":
        return None if row is None else cls(int(row["start_ms"]), int(row["requests"]), int(row["tokens"]))

    def as_row(self) -> dict[str, int]:
        return {"start_ms": self.start_ms, "requests": self.requests, "tokens": self.tokens}


@dataclass(frozen=True)
class Limits:
    rpm: int | None
    tpm: int | None

    @classmethod
    def of(cls, limits: RateLimits) -> "Limits":
        return cls(limits.rpm, limits.tpm)

    @property
    def any(self) -> bool:
        return self.rpm is not None or self.tpm is not None


@dataclass(frozen=True)
class Decision:
    admitted: bool
    window: Window            # the window to store (unchanged when refused)
    retry_at_ms: int | None   # when refused: the start of the next window
    never: bool = False       # the request can never fit (estimate above the TPM limit)


def window_start(now_ms: int, window_ms: int) -> int:
    return now_ms - now_ms % window_ms


def current(stored: Window | None, now_ms: int, window_ms: int) -> Window:
    """The window containing `now_ms`; a stale stored window counts as an empty one."""
    start = window_start(now_ms, window_ms)
    if stored is None or stored.start_ms != start:
        return Window(start)
    return stored


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def admit(stored: Window | None, now_ms: int, window_ms: int, limits: Limits, estimate: int) -> Decision:
    """Admit one request reserving `estimate` tokens, or say when the next window opens."""
    win = current(stored, now_ms, window_ms)
    if limits.tpm is not None and estimate > limits.tpm:
        return Decision(False, win, None, never=True)
    over_rpm = limits.rpm is not None and win.requests + 1 > limits.rpm
    over_tpm = limits.tpm is not None and win.tokens + estimate > limits.tpm
    if over_rpm or over_tpm:
        return Decision(False, win, win.start_ms + window_ms)
    return Decision(True, Window(win.start_ms, win.requests + 1, win.tokens + estimate), None)


def reconcile(stored: Window | None, reserved_start_ms: int, delta_tokens: int) -> Window | None:
    """Replace a reservation by real usage, if the reservation's window is still the stored one."""
    if stored is None or stored.start_ms != reserved_start_ms:
        return None  # the window has rolled over: nothing left to correct
    return replace(stored, tokens=max(0, stored.tokens + delta_tokens))


class WindowStore:
    """The `agent-rate-windows` table, typed."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def get(self, agent_id: str) -> Window | None:
        return Window.from_row(self.table.get(agent_id))

    def put(self, agent_id: str, window: Window) -> None:
        self.table[agent_id] = window.as_row()
