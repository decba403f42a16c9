"""Voice calls (transcription, speech) are retried like chat calls: a retriable provider failure (429,
5xx, a timeout, a dropped connection) is tried again on the retry policy's schedule (`GATEWAY_RETRY_*`:
attempts, backoff with full jitter, a `Retry-After` up to its cap, the message's deadline). A failure
that is not retriable (401, 400, ...) or the last one is raised as it is."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Awaitable, Callable, TypeVar

from gateway_app.providers.base import ProviderError
from gateway_app.resilience.retry import RetryPolicy

log = logging.getLogger(__name__)
T = TypeVar("T")


async def with_retries(call: Callable[[], Awaitable[T]], policy: RetryPolicy, what: str,
                       rng: random.Random | None = None,
                       sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> T:
    """`call`'s answer, trying again after retriable failures; `what` names the call in the log."""
    rng = rng or random.Random()  # nosec B311
    started, attempt = time.monotonic(), 0
    while True:
        attempt += 1
        try:
            return await call()
        except ProviderError as error:
            delay = policy.next_delay(attempt, time.monotonic() - started, error.retry_after, rng) \
                if error.retriable else None
            if delay is None:
                raise
            log.info("voice.retry call=%s attempt=%d code=%s delay_ms=%d", what, attempt, error.code, delay * 1000)
            await sleep(delay)
