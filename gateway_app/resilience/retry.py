"""Retry schedule: exponential backoff with full jitter, `Retry-After` honoured up to a cap.

Pure: the caller supplies the random source and the clock, so tests are exact.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Mapping


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4            # including the first call
    base_delay: float = 0.25         # seconds before the 2nd attempt (before jitter)
    max_delay: float = 8.0           # cap of one computed backoff
    retry_after_cap: float = 20.0    # a provider's Retry-After longer than this is not waited for
    deadline: float = 90.0           # total seconds for all attempts of one message

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Delay after failed attempt number `attempt` (1-based): full jitter over base * 2^(n-1)."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return rng.uniform(0, ceiling)

    def next_delay(
        self, attempt: int, elapsed: float, retry_after: float | None, rng: random.Random
    ) -> float | None:
        """Seconds to wait before the next attempt, or None when the message should give up."""
        if attempt >= self.max_attempts:
            return None
        if retry_after is not None and retry_after > self.retry_after_cap:
            return None
        delay = retry_after if retry_after is not None else self.backoff(attempt, rng)
        if elapsed + delay >= self.deadline:
            return None
        return delay


def parse_retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds from `retry-after-ms`, or `retry-after` (seconds or an HTTP date); None if absent/bad."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if "retry-after-ms" in lowered:
        try:
            return max(0.0, float(lowered["retry-after-ms"]) / 1000)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError):
        return None
