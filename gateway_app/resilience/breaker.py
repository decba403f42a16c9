"""Circuit breaker per provider endpoint: closed -> open -> half-open -> closed.

Opens after `consecutive_failures` failures in a row, or when the failure rate over the last `window`
calls reaches `failure_rate` (once at least `min_calls` were seen). While open it fails fast; after
`open_seconds` it lets `half_open_probes` calls through; one probe's success closes it, its failure
re-opens it.

Every call let through holds a `Permit` naming the breaker's generation (bumped at each state change)
and whether it is a probe. An outcome only counts for the generation it was let through in: a slow call
that started before the breaker opened cannot close, re-open or free a probe of a later generation.
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


@dataclass(frozen=True)
class Permit:
    generation: int
    probe: bool


@dataclass
class CircuitBreaker:
    policy: BreakerPolicy = field(default_factory=BreakerPolicy)
    state: State = State.CLOSED
    generation: int = 0
    opened_at: float = 0.0
    streak: int = 0
    probes: int = 0
    outcomes: deque = field(default_factory=deque)

    def allow(self, now: float) -> Permit | None:
        """A permit if a call may go out now; in half-open, only the configured number of probes get one."""
        if self.state is State.OPEN and now - self.opened_at >= self.policy.open_seconds:
            self._enter(State.HALF_OPEN)
        if self.state is State.CLOSED:
            return Permit(self.generation, probe=False)
        if self.state is State.HALF_OPEN and self.probes < self.policy.half_open_probes:
            self.probes += 1
            return Permit(self.generation, probe=True)
        return None

    def release(self, permit: Permit) -> None:
        """The call said nothing about health (a 4xx, a cancellation): free its probe."""
        if permit.probe and permit.generation == self.generation and self.probes > 0:
            self.probes -= 1

    def record(self, permit: Permit, ok: bool, now: float) -> None:
        if permit.generation != self.generation:
            return  # let through before the last state change: stale
        if self.state is State.HALF_OPEN:
            if permit.probe:
                self._enter(State.CLOSED) if ok else self._open(now)
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
        self._enter(State.OPEN)
        self.opened_at = now

    def _enter(self, state: State) -> None:
        self.state, self.generation, self.probes = state, self.generation + 1, 0
        if state is State.CLOSED:
            self.streak = 0
            self.outcomes.clear()

    def snapshot(self, now: float) -> dict:
        retry_in = max(0.0, self.policy.open_seconds - (now - self.opened_at)) if self.state is State.OPEN else 0.0
        return {"state": str(self.state), "consecutive_failures": self.streak, "recent_calls": len(self.outcomes),
                "recent_failures": len(self.outcomes) - sum(self.outcomes), "open_for_s": round(retry_in, 3)}
