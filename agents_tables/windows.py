"""Per-agent requests- and tokens-per-minute accounting in tumbling windows (pure arithmetic).

A window row is `{"start_ms", "requests", "tokens"}` for the agent's current window. Tokens are
reserved before the call (prompt estimate + max_tokens) and reconciled with the provider's usage
afterwards, so no window admits more than one request's `max_tokens` over its TPM limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

Row = dict[str, Any]
CHARS_PER_TOKEN = 4  # rough for English text; only the admission estimate uses it


@dataclass(frozen=True)
class Limits:
    rpm: int | None
    tpm: int | None


@dataclass(frozen=True)
class Decision:
    admitted: bool
    row: Row                  # the row to store (unchanged when refused)
    retry_at_ms: int | None   # when refused: the start of the next window
    never: bool = False       # the request can never fit (estimate above the TPM limit)


def window_start(now_ms: int, window_ms: int) -> int:
    return now_ms - now_ms % window_ms


def current(row: Row | None, now_ms: int, window_ms: int) -> Row:
    """The row for the window containing `now_ms`; a stale row counts as an empty window."""
    start = window_start(now_ms, window_ms)
    if row is None or row["start_ms"] != start:
        return {"start_ms": start, "requests": 0, "tokens": 0}
    return row


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def admit(row: Row | None, now_ms: int, window_ms: int, limits: Limits, estimate: int) -> Decision:
    """Admit one request reserving `estimate` tokens, or say when the next window opens."""
    win = current(row, now_ms, window_ms)
    if limits.tpm is not None and estimate > limits.tpm:
        return Decision(False, win, None, never=True)
    over_rpm = limits.rpm is not None and win["requests"] + 1 > limits.rpm
    over_tpm = limits.tpm is not None and win["tokens"] + estimate > limits.tpm
    if over_rpm or over_tpm:
        return Decision(False, win, win["start_ms"] + window_ms)
    taken = {"start_ms": win["start_ms"], "requests": win["requests"] + 1, "tokens": win["tokens"] + estimate}
    return Decision(True, taken, None)


def reconcile(row: Row | None, reserved_start_ms: int, delta_tokens: int) -> Row | None:
    """Replace a reservation by real usage, if the reservation's window is still the stored one."""
    if row is None or row["start_ms"] != reserved_start_ms:
        return None  # the window has rolled over: nothing left to correct
    return {**row, "tokens": max(0, row["tokens"] + delta_tokens)}
