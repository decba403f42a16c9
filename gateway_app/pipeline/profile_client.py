"""The profile service's HTTP client (see `profile_service` for what the gateway does with the answer).

`GET {url}/agents/{agent id}` (the id URL-quoted), each attempt within its own timeout; connection
errors, timeouts, 5xx and 429 are retried by the gateway's retry schedule (`Retry-After` honoured up to
its cap) within the deadline the caller gives; one circuit breaker for the service, fed like a provider
endpoint's (5xx, timeouts and connection errors count; 429 and other 4xx do not). The bearer token is a
credential reference resolved through the worker's `CredentialResolver`; it is never logged.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Awaitable, Callable
from urllib.parse import quote

import aiohttp

from gateway_app.credentials.errors import CredentialsUnavailable
from gateway_app.credentials.resolver import CredentialResolver
from gateway_app.log_redaction import REDACTOR
from gateway_app.resilience.breaker import CircuitBreaker
from gateway_app.resilience.retry import RetryPolicy, parse_retry_after

MAX_BODY_BYTES = 1 << 20  # a profile is a few KiB; anything this large is not one
# Whom an `enc:` reference of the service's token is bound to (`gateway keys encrypt --agent gateway
# --provider profile-service`); other schemes ignore it.
AUTH_AGENT, AUTH_PROVIDER = "gateway", "profile-service"


class Result(StrEnum):
    OK = "ok"
    NOT_FOUND = "not_found"
    INVALID = "invalid"
    ERROR = "error"
    BREAKER_OPEN = "breaker_open"


@dataclass(frozen=True)
class Answer:
    """What the service said for one agent, after retries; a body only with `OK`."""

    result: Result
    detail: str = ""
    body: bytes = b""
    attempts: int = 0


class ProfileClient:
    """One per worker: the service's base URL, timeout, retry schedule, breaker, token and HTTP session."""

    def __init__(self, url: str, timeout: float, policy: RetryPolicy, breaker: CircuitBreaker, *,
                 credentials: CredentialResolver | None = None, auth_ref: str | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, rng: random.Random | None = None) -> None:
        self.base = url.rstrip("/")
        self.timeout, self.policy, self.breaker = timeout, policy, breaker
        self.credentials, self.auth_ref = credentials, auth_ref
        self.clock, self.sleep = clock, sleep
        # Backoff jitter, not a secret: the standard generator is right here.
        self.rng = rng or random.Random()  # nosec B311
        self._session: aiohttp.ClientSession | None = None

    async def fetch(self, agent_id: str, deadline: float) -> Answer:
        started = self.clock()
        policy = replace(self.policy, deadline=deadline - started)
        attempts, detail = 0, "the profile wait ended before a request could be made"
        while (left := deadline - self.clock()) > 0:
            permit = self.breaker.allow(self.clock())
            if permit is None:
                return Answer(Result.BREAKER_OPEN, "the profile service's circuit breaker is open", attempts=attempts)
            attempts += 1
            outcome = await self._attempt(agent_id, permit, min(self.timeout, left))
            if isinstance(outcome, Answer):
                return replace(outcome, attempts=attempts)
            detail, retry_after = outcome
            delay = policy.next_delay(attempts, self.clock() - started, retry_after, self.rng)
            if delay is None:
                break
            await self.sleep(delay)
        return Answer(Result.ERROR, detail, attempts=attempts)

    async def _attempt(self, agent_id: str, permit, timeout: float) -> Answer | tuple[str, float | None]:
        """A final answer, or (why, Retry-After seconds) for a retriable failure."""
        try:
            headers = await self._headers()
        except CredentialsUnavailable as exc:  # names the reference, never a value
            self.breaker.release(permit)
            return Answer(Result.ERROR, exc.reason)
        try:
            status, retry_headers, body = await self._get(agent_id, headers, timeout)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            self.breaker.record(permit, False, self.clock())
            return f"{type(exc).__name__} after at most {timeout:.1f}s", None
        if status >= 500:
            self.breaker.record(permit, False, self.clock())
            return f"status {status}", None
        if status == 429:  # the service is alive, only busy: not a breaker failure
            self.breaker.release(permit)
            return "status 429", parse_retry_after(retry_headers, time.time())
        return self._final(status, body, permit)

    def _final(self, status: int, body: bytes | None, permit) -> Answer:
        if status == 200:
            self.breaker.record(permit, True, self.clock())
            if body is None:
                return Answer(Result.INVALID, f"body is larger than {MAX_BODY_BYTES} bytes")
            return Answer(Result.OK, body=body)
        if status == 404:
            self.breaker.record(permit, True, self.clock())
            return Answer(Result.NOT_FOUND, "the profile service does not know the agent")
        self.breaker.release(permit)  # a 4xx says nothing about the service's health
        if status in (401, 403) and self.credentials is not None and self.auth_ref is not None:
            self.credentials.invalidate(self.auth_ref)  # a rotated token is read again next time
        return Answer(Result.ERROR, f"status {status} (not retried)")

    async def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.auth_ref is None:
            return headers
        if self.credentials is None:
            raise CredentialsUnavailable("this worker resolves no credential references")
        secret = await self.credentials.resolve(self.auth_ref, agent_id=AUTH_AGENT, provider=AUTH_PROVIDER)
        REDACTOR.remember(secret.reveal())  # from now on no log line can carry it
        headers["Authorization"] = f"Bearer {secret.reveal()}"
        return headers

    async def _get(self, agent_id: str, headers: dict[str, str], timeout: float) -> tuple[int, dict, bytes | None]:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        url = f"{self.base}/agents/{quote(agent_id, safe='')}"
        # No redirects: the bearer token goes to the configured service and nowhere else.
        async with self._session.get(url, headers=headers, allow_redirects=False,
                                     timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            body = await read_capped(response) if response.status == 200 else b""
            return response.status, dict(response.headers), body

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def read_capped(response: aiohttp.ClientResponse) -> bytes | None:
    """The whole body, or None past `MAX_BODY_BYTES` (read no further)."""
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return None
    return bytes(body)
