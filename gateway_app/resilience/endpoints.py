"""Per provider endpoint (provider + model + base URL, i.e. an Azure deployment): its circuit breaker,
its 429 pause and its own RPM/TPM caps. Pure bookkeeping on a monotonic clock passed in; the flow sleeps.

Caps and pauses here are this worker's own. With `GATEWAY_PROVIDER_LIMITS_SCOPE=cluster` (the default) the
caps and pauses hold across the cluster instead (`leases`, `capacity`): the breaker stays per worker.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Mapping

from gateway_app.resilience.breaker import BreakerPolicy, CircuitBreaker, Permit, State

log = logging.getLogger(__name__)
CAP_WINDOW_SECONDS = 60.0  # provider limits are per minute (GATEWAY_PROVIDER_CAP_WINDOW_SECONDS)
MAX_PAUSE_SECONDS = 300.0  # a longer Retry-After is still honoured for this long


@dataclass(frozen=True)
class Caps:
    rpm: int | None = None
    tpm: int | None = None


def parse_caps(raw: Mapping[str, Mapping[str, Any]]) -> dict[str, Caps]:
    """`{"openai": {"rpm": 500}, "azure:gpt-4o-prod": {"rpm": 60, "tpm": 90000}}` -> Caps per key."""
    caps = {}
    for key, value in raw.items():
        unknown = set(value) - {"rpm", "tpm"}
        if unknown:
            raise ValueError(f"provider limit {key!r}: unknown field(s) {sorted(unknown)}; use rpm and tpm")
        for name, limit in value.items():
            if not isinstance(limit, int) or limit < 1:
                raise ValueError(f"provider limit {key!r}: {name} must be a whole number >= 1, got {limit!r}")
        caps[key] = Caps(value.get("rpm"), value.get("tpm"))
    return caps


def endpoint_key(provider: str, model: str, url: str) -> str:
    return f"{provider}:{model}@{url}"


@dataclass
class Endpoint:
    key: str
    provider: str
    model: str
    breaker: CircuitBreaker
    caps: Caps | None = None
    paused_until: float = 0.0
    window_start: float = 0.0
    requests: int = 0
    tokens: int = 0
    calls: int = 0
    failures: int = 0
    window_seconds: float = CAP_WINDOW_SECONDS

    def wait_time(self, tokens: int, now: float) -> float:
        """Seconds until a call of about `tokens` tokens may go out: 0 now; a 429 pause or a full cap waits."""
        if now < self.paused_until:
            return self.paused_until - now
        if self.caps is None:
            return 0.0
        if now - self.window_start >= self.window_seconds:
            self.window_start, self.requests, self.tokens = now, 0, 0
        window_left = self.window_start + self.window_seconds - now
        if self.caps.rpm is not None and self.requests >= self.caps.rpm:
            return window_left
        # A single request above the whole cap still goes, alone in its window (or it would never go).
        if self.caps.tpm is not None and self.tokens and self.tokens + tokens > self.caps.tpm:
            return window_left
        return 0.0

    def take(self, tokens: int) -> float:
        """Count a call of about `tokens` tokens; returns its window (for `settle`)."""
        self.requests += 1
        self.tokens += tokens
        self.calls += 1
        return self.window_start

    def count_call(self) -> float:
        """Count a call that the cluster's lease counted against the caps already."""
        self.calls += 1
        return self.window_start

    def settle(self, window: float, reserved: int, used: int) -> None:
        """Replace a call's token estimate by what it used, if its window is still the current one."""
        if window == self.window_start:
            self.tokens = max(0, self.tokens + used - reserved)

    def pause(self, seconds: float, now: float) -> None:
        until = now + min(seconds, MAX_PAUSE_SECONDS)
        if until > self.paused_until:
            self.paused_until = until
            log.warning("provider.paused endpoint=%s seconds=%.3f", self.key, seconds)

    def allow(self, now: float) -> Permit | None:
        before = self.breaker.state
        permit = self.breaker.allow(now)
        self._log_change(before)
        return permit

    def record(self, permit: Permit, ok: bool | None, now: float) -> None:
        """ok=None: the outcome says nothing about the endpoint's health (4xx, 429, cancelled)."""
        before = self.breaker.state
        if ok is None:
            self.breaker.release(permit)
        else:
            self.failures += 0 if ok else 1
            self.breaker.record(permit, ok, now)
        self._log_change(before)

    def _log_change(self, before: State) -> None:
        after = self.breaker.state
        if after is not before:
            logger = log.warning if after is State.OPEN else log.info
            logger("breaker.%s endpoint=%s from=%s", after, self.key, before)

    def snapshot(self, now: float) -> dict[str, Any]:
        return {
            "endpoint": self.key, "provider": self.provider, "model": self.model,
            "breaker": self.breaker.snapshot(now),
            "paused_for_s": round(max(0.0, self.paused_until - now), 3),
            "caps": None if self.caps is None else {
                "rpm": self.caps.rpm, "tpm": self.caps.tpm, "window_requests": self.requests,
                "window_tokens": self.tokens},
            "calls": self.calls, "failures": self.failures,
        }


@dataclass
class Endpoints:
    policy: BreakerPolicy = field(default_factory=BreakerPolicy)
    caps: dict[str, Caps] = field(default_factory=dict)
    by_key: dict[str, Endpoint] = field(default_factory=dict)
    window_seconds: float = CAP_WINDOW_SECONDS

    def get(self, provider: str, model: str, url: str) -> Endpoint:
        key = endpoint_key(provider, model, url)
        endpoint = self.by_key.get(key)
        if endpoint is None:
            caps = self.caps.get(f"{provider}:{model}") or self.caps.get(provider)
            endpoint = self.by_key[key] = Endpoint(key, provider, model, CircuitBreaker(self.policy), caps,
                                                   window_seconds=self.window_seconds)
        return endpoint

    def snapshot(self, now: float) -> list[dict[str, Any]]:
        return [endpoint.snapshot(now) for endpoint in sorted(self.by_key.values(), key=lambda e: e.key)]
