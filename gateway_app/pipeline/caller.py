"""One message's provider calls: targets in order (the profile's provider, then its fallbacks), each
behind its endpoint's pause, caps and circuit breaker, retried on the policy's schedule, each attempt
bounded by a timeout (and, streamed, by a time-to-first-token timeout), all within the message deadline.

A little over 300 lines on purpose: the loop, its endpoint gates (this worker's caps or the cluster's
leases) and its attempt are one flow whose order is the behaviour; split, each part would need the others.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import time
from dataclasses import dataclass, field, replace
from typing import Any, Awaitable, Callable

from gateway_app.contract.events import AgentProfile, Credentials, ErrorCode
from gateway_app.errors import GatewayError
from gateway_app.observability import tracing
from gateway_app.observability.metrics import GatewayMetrics
from gateway_app.providers import errors
from gateway_app.providers.base import ChatRequest, ChatResult, Provider, ProviderError, TextDelta
from gateway_app.providers.registry import ProviderPool
from gateway_app.resilience.breaker import Permit
from gateway_app.resilience.endpoints import MAX_PAUSE_SECONDS, Caps, Endpoint, Endpoints
from gateway_app.resilience.leases import LeaseClient
from gateway_app.resilience.retry import RetryPolicy
from gateway_app.settings import Settings

log = logging.getLogger(__name__)

# on_chunk(attempt, seq, delta, final): called for every streamed piece, in order. It must not block:
# the time a sink spends (e.g. on Kafka) must not count against the provider's timeouts or health.
ChunkSink = Callable[[int, int, str, bool], None]
RequestMaker = Callable[["Target"], "ChatRequest | Awaitable[ChatRequest]"]
MIN_ATTEMPT_SECONDS = 1.0  # an attempt with less of the message deadline left is not started


@dataclass(frozen=True)
class Target:
    provider: str
    model: str
    options: dict[str, Any]
    fallback_index: int
    credentials: Credentials | None = field(default=None, compare=False)  # by reference; None: environment


def targets_of(profile: AgentProfile) -> list[Target]:
    primary = Target(profile.provider, profile.model, profile.options, 0, profile.credentials)
    fallbacks = [Target(f.provider, f.model, f.options, i, f.credentials)
                 for i, f in enumerate(profile.fallbacks, start=1)]
    return [primary, *fallbacks]


@dataclass
class CallLog:
    """What one message's provider calls have done: the one record of attempts and history. The
    answer, the failure, the reply and the DLQ record all read it from here."""

    started: float
    attempts: int = 0
    provider_seconds: float = 0.0  # the attempts' own time (the rest of a message's time is the gateway's)
    history: list[dict[str, Any]] = field(default_factory=list)
    last_error: ProviderError | None = None

    def note(self, target: Target, outcome: str, error: ProviderError | None, attempt: int | None,
             elapsed: float, *, cause: bool = True) -> None:
        """Record what happened; `cause=False` keeps the previous error as the message's failure reason."""
        self.history.append({
            "provider": target.provider, "model": target.model, "fallback_index": target.fallback_index,
            "attempt": attempt, "outcome": outcome, "status": error.status if error else None,
            "elapsed_ms": int(elapsed * 1000), "detail": str(error) if error else None,
        })
        if error is not None and (cause or self.last_error is None):
            self.last_error = error


class _ReadsLog:
    """Attempts and history are the call log's; an answer or a failure only points at it."""

    log: CallLog

    @property
    def attempts(self) -> int:
        return self.log.attempts

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.log.history


@dataclass(frozen=True)
class Answer(_ReadsLog):
    result: ChatResult
    target: Target
    latency_ms: int
    log: CallLog = field(repr=False, compare=False)


class CallFailed(_ReadsLog, GatewayError):
    """Every target failed or gave up; the reason names the last error and what was tried."""

    def __init__(self, code: ErrorCode, reason: str, log: CallLog) -> None:
        super().__init__(code, reason)
        self.log = log


class Caller:
    def __init__(self, settings: Settings, providers: ProviderPool, endpoints: Endpoints,
                 in_flight: asyncio.Semaphore, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 metrics: GatewayMetrics | None = None, leases: LeaseClient | None = None) -> None:
        self.settings = settings
        # Cluster-wide caps and 429 pauses (GATEWAY_PROVIDER_LIMITS_SCOPE=cluster); None: this worker's own.
        self.leases = leases
        self.metrics = metrics if metrics is not None else GatewayMetrics()
        self.clock, self.sleep = clock, sleep  # injectable: tests run the schedule on a fake clock
        self.providers = providers
        self.endpoints = endpoints
        self.in_flight = in_flight
        self.retry: RetryPolicy = settings.retry_policy()
        # Jitter of retry delays: nothing secret depends on it.
        self.rng = rng or random.Random()  # nosec B311

    async def call(self, message_id: str, targets: list[Target], make_request: RequestMaker,
                   estimate: int, on_chunk: ChunkSink | None = None, log: CallLog | None = None) -> Answer:
        """The first target's answer that came; `log` continues a message's earlier calls (a regeneration).
        `make_request(target)` may be async (it resolves the target's credentials); a `GatewayError` it
        raises (credentials unavailable) fails that target, never the next one."""
        progress = log if log is not None else CallLog(self.clock())
        for target in targets:
            if target.fallback_index:
                self.metrics.fallback(target.provider, target.model)
            try:
                request = make_request(target)
                request = await request if inspect.isawaitable(request) else request
            except GatewayError as error:
                failure = ProviderError(error.code, error.reason, retriable=False)
                self._note(progress, target, error.code, failure, None)
                continue
            result = await self._try_target(message_id, target, request, estimate, on_chunk, progress)
            if result is not None:
                return Answer(result, target, int(self._elapsed(progress) * 1000), progress)
        error = progress.last_error
        code = error.code if error else ErrorCode.PROVIDER_ERROR
        tried = ", ".join(f"{t.provider}:{t.model}" for t in targets)
        reason = f"{error} (after {progress.attempts} attempt{'s' if progress.attempts != 1 else ''}; tried {tried})"
        raise CallFailed(code, reason, progress)

    def _elapsed(self, progress: CallLog) -> float:
        return self.clock() - progress.started

    def _note(self, progress: CallLog, target: Target, outcome: str, error: ProviderError | None,
              attempt: int | None, *, cause: bool = True) -> None:
        progress.note(target, outcome, error, attempt, self._elapsed(progress), cause=cause)
        if attempt is None and tracing.enabled():  # a target given up before an attempt: shown in the trace
            tracing.note("gateway.target_skipped", {"gateway.provider": target.provider, "error.type": str(outcome),
                                                    "gen_ai.request.model": target.model,
                                                    "gateway.fallback_index": target.fallback_index})

    async def _try_target(self, message_id: str, target: Target, request: ChatRequest, estimate: int,
                          on_chunk: ChunkSink | None, progress: CallLog) -> ChatResult | None:
        """The answer from this target, or None when it gave up (the next target is tried)."""
        try:
            provider = await self.providers.load(target.provider)
            endpoint = self.endpoints.get(target.provider, target.model, provider.endpoint(request))
        except ProviderError as error:
            self._note(progress, target, error.code, error, None)
            return None
        tries = 0
        while True:
            waited, lease_window = await self._wait_for_endpoint(endpoint, estimate, target, progress)
            if not waited:
                return None
            if self._remaining(progress) < MIN_ATTEMPT_SECONDS:
                error = errors.timed_out(f"message deadline of {self.retry.deadline}s reached")
                self._note(progress, target, "deadline_exceeded", error, None, cause=tries == 0)
                return None
            permit = endpoint.allow(self.clock())
            if permit is None:
                error = ProviderError(ErrorCode.CIRCUIT_OPEN, f"circuit open for {endpoint.key}", retriable=False)
                # If this message's own failures opened it, those are the reason, not the breaker.
                self._note(progress, target, ErrorCode.CIRCUIT_OPEN, error, None, cause=tries == 0)
                return None
            tries += 1
            progress.attempts += 1
            with tracing.chat(target.provider, request, progress.attempts, target.fallback_index,
                              streamed=on_chunk is not None) as span:  # `chat {model}`, current during the call
                outcome = await self._attempt(provider, endpoint, permit, request, estimate, on_chunk, progress,
                                              lease_window)
                span.result(outcome)
            if isinstance(outcome, ChatResult):
                self._note(progress, target, "ok", None, progress.attempts)
                return outcome
            self._note(progress, target, outcome.code, outcome, progress.attempts)
            if outcome.status == 401 and request.secondary_credential is not None:
                # A key rotation's overlap: the other key, once and at once (not a retry of the same call).
                log.info("provider.secondary_key message=%s endpoint=%s", message_id, endpoint.key)
                request = replace(request, credential=request.secondary_credential, secondary_credential=None)
                continue
            if outcome.status == 429:
                pause = outcome.retry_after if outcome.retry_after is not None else self.settings.rate_limit_pause_seconds
                endpoint.pause(pause, self.clock())  # the full Retry-After, even past what we wait for
                if self.leases is not None:
                    await self.leases.pause(endpoint.key, min(pause, MAX_PAUSE_SECONDS))  # and every worker
                self.metrics.pause(target.provider, target.model)
            delay = self.retry.next_delay(tries, self._elapsed(progress), outcome.retry_after, self.rng) \
                if outcome.retriable else None
            if delay is None:
                return None
            log.info("provider.retry message=%s endpoint=%s attempt=%d delay_s=%.3f error=%s",
                     message_id, endpoint.key, progress.attempts, delay, outcome)
            self.metrics.retry(target.provider, target.model)
            await self.sleep(delay)

    async def _wait_for_endpoint(self, endpoint: Endpoint, estimate: int, target: Target,
                                 progress: CallLog) -> tuple[bool, int | None]:
        """Wait out the endpoint's 429 pause or full caps: (False, None) if that would pass the message
        deadline; else True, and the window of the cluster-wide lease the call was counted in (if any)."""
        while True:
            delay, lease_window = await self._capacity_wait(endpoint, estimate)
            if delay <= 0:
                return True, lease_window
            if self._elapsed(progress) + delay >= self.retry.deadline:
                error = ProviderError(ErrorCode.PROVIDER_RATE_LIMITED,
                                      f"{endpoint.key} is paused or at its caps for {delay:.1f}s more",
                                      retriable=False)
                self._note(progress, target, error.code, error, None)
                return False, None
            await self.sleep(delay)

    async def _capacity_wait(self, endpoint: Endpoint, estimate: int) -> tuple[float, int | None]:
        """Seconds until a call may go (0: now, counted against the caps); with cluster caps, the window of
        the lease it was counted in."""
        if self.leases is None:
            return endpoint.wait_time(estimate, self.clock()), None
        own_pause = endpoint.paused_until - self.clock()  # a 429 seen here, before the owner announced it
        if own_pause > 0:
            return own_pause, None
        return await self.leases.reserve(endpoint.key, endpoint.caps or Caps(), estimate)

    def _remaining(self, progress: CallLog) -> float:
        return self.retry.deadline - self._elapsed(progress)

    async def _attempt(self, provider: Provider, endpoint: Endpoint, permit: Permit, request: ChatRequest,
                       estimate: int, on_chunk: ChunkSink | None, progress: CallLog,
                       lease_window: int | None = None) -> ChatResult | ProviderError:
        health: bool | None = None  # None (also on cancellation) frees a half-open probe
        try:
            try:
                async with asyncio.timeout(self._remaining(progress)):
                    await self.in_flight.acquire()
            except TimeoutError:
                return errors.timed_out("no in-flight slot free before the message deadline")
            try:
                started = self.clock()
                outcome, health = await self._call_once(provider, endpoint, request, estimate, on_chunk, progress,
                                                        lease_window)
                seconds = self.clock() - started
                progress.provider_seconds += seconds
                self.metrics.provider_call(endpoint.provider, endpoint.model, seconds, outcome)
                return outcome
            finally:
                self.in_flight.release()
        finally:
            endpoint.record(permit, health, self.clock())

    async def _call_once(self, provider: Provider, endpoint: Endpoint, request: ChatRequest, estimate: int,
                         on_chunk: ChunkSink | None, progress: CallLog, lease_window: int | None = None
                         ) -> tuple[ChatResult | ProviderError, bool | None]:
        """One call in its slot: its result or error, and what that says about the endpoint's health."""
        timeout = min(self.settings.call_timeout_seconds, self._remaining(progress))
        # Counted against this worker's window, or already against the cluster's lease (`_capacity_wait`).
        window = endpoint.take(estimate) if self.leases is None else endpoint.count_call()
        on_chunk = self.metrics.first_chunk_timer(on_chunk, endpoint.provider, endpoint.model, self.clock)
        try:
            # asyncio.timeout, not wait_for: the SDK's stream must stay in this one task.
            async with asyncio.timeout(timeout):
                if on_chunk is None:
                    result = await provider.complete(request)
                else:
                    result = await self._stream(provider, request, on_chunk, progress.attempts)
        except TimeoutError:
            # A timeout cut short by the message deadline says nothing about the endpoint.
            cut_short = timeout < self.settings.call_timeout_seconds
            return errors.timed_out(f"no complete answer within {timeout:.1f}s"), None if cut_short else False
        except ProviderError as error:
            return error, False if error.endpoint_failure else None
        except Exception as exc:  # an adapter bug must not lose the message nor blame the endpoint
            log.exception("provider.unexpected_error endpoint=%s", endpoint.key)
            return errors.unexpected(exc), None
        used = result.usage.input_tokens + result.usage.output_tokens
        if self.leases is None:
            endpoint.settle(window, estimate, used)
        elif lease_window is not None:
            self.leases.settle(endpoint.key, lease_window, estimate, used)
        return result, True

    async def _stream(self, provider: Provider, request: ChatRequest, on_chunk: ChunkSink,
                      attempt: int) -> ChatResult:
        events = provider.stream(request)
        seq = 0
        try:
            first_token_timeout = self.settings.first_token_timeout_seconds
            try:
                async with asyncio.timeout(first_token_timeout):
                    event = await anext(events)
            except TimeoutError:
                raise errors.timed_out(f"no first token within {first_token_timeout}s") from None
            while True:
                if isinstance(event, ChatResult):
                    on_chunk(attempt, seq, "", True)
                    return event
                if isinstance(event, TextDelta):
                    on_chunk(attempt, seq, event.text, False)
                    seq += 1
                event = await anext(events)
        except StopAsyncIteration:
            raise errors.stream_interrupted("the stream ended without a result") from None
        finally:
            await events.aclose()

