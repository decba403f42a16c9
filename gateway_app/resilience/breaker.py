"""Circuit breaker per provider endpoint: closed -> open -> half-open -> closed.

Opens after `consecutive_failures` failures in a row, or when the failure rate over the last `window`
calls reaches `failure_rate` (once at least `min_calls` were seen). While open it fails fast; after
`open_seconds` it lets `half_open_probes` calls through; one success closes it, a failure re-opens it.
Pure: every method takes the current monotonic time.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum


class State(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerPolicy:
    consecutive_failures: int = 5
    failure_rate: float = 0.5
    window: int = 20
    min_calls: int = 10
    open_seconds: float = 15.0
    half_open_probes: int = 1


@dataclass
class CircuitBreaker:
    policy: BreakerPolicy = field(default_factory=BreakerPolicy)
    state: State = State.CLOSED
    opened_at: float = 0.0
    streak: int = 0
    probes: int = 0
    outcomes: deque = field(default_factory=deque)

    def allow(self, now: float) -> bool:
        """May a call go out now? In half-open, only the configured number of probes may."""
        if self.state is State.OPEN and now - self.opened_at >= self.policy.open_seconds:
            self.state, self.probes = State.HALF_OPEN, 0
        if self.state is State.CLOSED:
            return True
        if self.state is State.HALF_OPEN and self.probes < self.policy.half_open_probes:
            self.probes += 1
            return True
        return False

    def release(self) -> None:
        """A call that let through says nothing about health (a 4xx, a cancellation): free its probe."""
        if self.state is State.HALF_OPEN and self.probes > 0:
            self.probes -= 1

    def record(self, ok: bool, now: float) -> None:
        if self.state is State.HALF_OPEN:
            self._close() if ok else self._open(now)
            return
        self.outcomes.append(ok)
        while len(self.outcomes) > self.policy.window:
            self.outcomes.popleft()
        self.streak = 0 if ok else self.streak + 1
        if not ok and self._tripped():
            self._open(now)

    def _tripped(self) -> bool:
        if self.streak >= self.policy.consecutive_failures:
            return True
        calls = len(self.outcomes)
        failures = calls - sum(self.outcomes)
        return calls >= self.policy.min_calls and failures / calls >= self.policy.failure_rate

    def _open(self, now: float) -> None:
        self.state, self.opened_at, self.probes = State.OPEN, now, 0

    def _close(self) -> None:
        self.state, self.streak, self.probes = State.CLOSED, 0, 0
        self.outcomes.clear()

    def snapshot(self, now: float) -> dict:
        retry_in = max(0.0, self.policy.open_seconds - (now - self.opened_at)) if self.state is State.OPEN else 0.0
        return {"state": str(self.state), "consecutive_failures": self.streak, "recent_calls": len(self.outcomes),
                "recent_failures": len(self.outcomes) - sum(self.outcomes), "open_for_s": round(retry_in, 3)}
