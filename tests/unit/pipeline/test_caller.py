"""The call loop with in-process providers: retries, fallbacks, breaker, pause, caps, timeouts, streams."""

from __future__ import annotations

import asyncio
import random
import time
from typing import AsyncIterator

import pytest

from gateway_app.contract.events import AgentProfile, ErrorCode
from gateway_app.pipeline.caller import Caller, CallFailed, Target, targets_of
from gateway_app.providers import errors
from gateway_app.providers.base import ChatMessage, ChatRequest, ChatResult, ProviderError, TextDelta, TokenUsage
from gateway_app.resilience.breaker import BreakerPolicy, State
from gateway_app.resilience.endpoints import Caps, Endpoints, parse_caps
from gateway_app.settings import Settings


class Scripted:
    """A provider that plays a script of outcomes, one per call: 'ok', a ProviderError, or 'hang'."""

    name = "scripted"

    def __init__(self, script: list, url: str = "http://scripted") -> None:
        self.script, self.url, self.calls = list(script), url, 0

    def endpoint(self, request: ChatRequest) -> str:
        return self.url

    def _next(self):
        self.calls += 1
        return self.script.pop(0) if self.script else "ok"

    async def complete(self, request: ChatRequest) -> ChatResult:
        step = self._next()
        if step == "hang":
            await asyncio.sleep(3600)
        if isinstance(step, ProviderError):
            raise step
        return ChatResult(f"{self.url} answered", "stop", TokenUsage(3, 2))

    async def stream(self, request: ChatRequest) -> AsyncIterator:
        step = self._next()
        if step == "hang":
            await asyncio.sleep(3600)
        yield TextDelta("part one")
        if step == "cut":
            raise errors.stream_interrupted("cut")
        yield TextDelta(" part two")
        if step == "no-result":
            return
        yield ChatResult("part one part two", "stop", TokenUsage(3, 4))

    async def aclose(self) -> None:
        pass


class Pool:
    def __init__(self, **providers: Scripted) -> None:
        self.providers = providers

    def get(self, name: str) -> Scripted:
        return self.providers[name]

    async def load(self, name: str) -> Scripted:
        return self.get(name)


def settings(**overrides) -> Settings:
    values = dict(retry_max_attempts=3, retry_base_delay_seconds=0.001, retry_max_delay_seconds=0.01,
                  call_timeout_seconds=0.5, first_token_timeout_seconds=0.2, message_deadline_seconds=10,
                  breaker_consecutive_failures=5, breaker_open_seconds=60, rate_limit_pause_seconds=0.2)
    return Settings(**{**values, **overrides})


def caller(pool: Pool, **overrides) -> Caller:
    s = settings(**overrides)
    return Caller(s, pool, Endpoints(s.breaker_policy(), s.provider_caps()), asyncio.Semaphore(10),
                  random.Random(1))


def req(target: Target) -> ChatRequest:
    return ChatRequest(target.model, "", (ChatMessage("user", "hi"),), 0, 10, options=target.options)


PRIMARY = Target("a", "m1", {}, 0)
FALLBACK = Target("b", "m2", {}, 1)
UNAVAILABLE = errors.from_status(503, "down")
REJECTED = errors.from_status(400, "bad")


async def test_retriable_failures_are_retried_then_answered():
    pool = Pool(a=Scripted([UNAVAILABLE, errors.timed_out()]))
    answer = await caller(pool).call("m", [PRIMARY], req, 5)
    assert answer.attempts == 3 and answer.target == PRIMARY and pool.get("a").calls == 3
    assert [h["outcome"] for h in answer.history] == ["provider_unavailable", "provider_timeout", "ok"]


async def test_non_retriable_failure_fails_at_once_with_its_code_and_history():
    pool = Pool(a=Scripted([REJECTED]))
    with pytest.raises(CallFailed) as caught:
        await caller(pool).call("m", [PRIMARY], req, 5)
    assert caught.value.code == ErrorCode.PROVIDER_REJECTED and caught.value.attempts == 1
    assert caught.value.history[0]["status"] == 400 and "after 1 attempt;" in caught.value.reason


async def test_fallback_answers_when_primary_exhausts_its_retries():
    pool = Pool(a=Scripted([UNAVAILABLE] * 3), b=Scripted([]))
    answer = await caller(pool).call("m", [PRIMARY, FALLBACK], req, 5)
    assert answer.target.fallback_index == 1 and answer.attempts == 4
    assert answer.result.text == "http://scripted answered"


async def test_open_breaker_skips_straight_to_the_fallback():
    pool = Pool(a=Scripted([UNAVAILABLE] * 10), b=Scripted([]))
    call = caller(pool, retry_max_attempts=1, breaker_consecutive_failures=2)
    for _ in range(2):  # two consecutive failures open the breaker (policy: 2)
        await call.call("m", [PRIMARY, FALLBACK], req, 5)
    assert pool.get("a").calls == 2
    endpoint = call.endpoints.get("a", "m1", "http://scripted")
    assert endpoint.breaker.state is State.OPEN
    answer = await call.call("m", [PRIMARY, FALLBACK], req, 5)
    assert pool.get("a").calls == 2 and answer.target.fallback_index == 1  # no call to the open endpoint
    assert answer.history[0]["outcome"] == "circuit_open"


async def test_every_target_open_fails_with_circuit_open():
    pool = Pool(a=Scripted([UNAVAILABLE] * 10))
    call = caller(pool, retry_max_attempts=1, breaker_consecutive_failures=2)
    for _ in range(2):
        with pytest.raises(CallFailed):
            await call.call("m", [PRIMARY], req, 5)
    with pytest.raises(CallFailed) as caught:
        await call.call("m", [PRIMARY], req, 5)
    assert caught.value.code == ErrorCode.CIRCUIT_OPEN and caught.value.attempts == 0


async def test_a_failing_endpoint_opens_mid_retries_and_the_fallback_takes_over():
    pool = Pool(a=Scripted([UNAVAILABLE] * 10), b=Scripted([]))
    answer = await caller(pool, breaker_consecutive_failures=2).call("m", [PRIMARY, FALLBACK], req, 5)
    assert pool.get("a").calls == 2 and answer.target == FALLBACK
    assert [h["outcome"] for h in answer.history] == ["provider_unavailable"] * 2 + ["circuit_open", "ok"]


async def test_client_errors_do_not_open_the_breaker():
    pool = Pool(a=Scripted([REJECTED] * 5))
    call = caller(pool)
    for _ in range(5):
        with pytest.raises(CallFailed):
            await call.call("m", [PRIMARY], req, 5)
    assert call.endpoints.get("a", "m1", "http://scripted").breaker.state is State.CLOSED


async def test_429_pauses_the_endpoint_for_other_messages():
    limited = ProviderError(ErrorCode.PROVIDER_RATE_LIMITED, "429", retriable=True, status=429, retry_after=0.3)
    pool = Pool(a=Scripted([limited]))
    call = caller(pool)
    first = asyncio.create_task(call.call("m1", [PRIMARY], req, 5))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await call.call("m2", [PRIMARY], req, 5)  # waits for the pause, does not hit the endpoint meanwhile
    assert time.monotonic() - started >= 0.2
    assert (await first).attempts == 2


async def test_attempt_timeout_is_a_retriable_timeout():
    pool = Pool(a=Scripted(["hang"]))
    answer = await caller(pool, call_timeout_seconds=0.1).call("m", [PRIMARY], req, 5)
    assert answer.history[0]["outcome"] == "provider_timeout" and answer.attempts == 2


async def test_stream_chunks_in_order_and_a_broken_stream_is_retried():
    pool = Pool(a=Scripted(["cut", "no-result"]))
    chunks = []

    def sink(attempt, seq, delta, final):
        chunks.append((attempt, seq, delta, final))

    answer = await caller(pool).call("m", [PRIMARY], req, 5, sink)
    assert answer.attempts == 3 and answer.result.text == "part one part two"
    assert [h["outcome"] for h in answer.history] == ["provider_stream_interrupted"] * 2 + ["ok"]
    last = [c for c in chunks if c[0] == 3]
    assert last == [(3, 0, "part one", False), (3, 1, " part two", False), (3, 2, "", True)]
    assert "".join(c[2] for c in last) == answer.result.text


async def test_first_token_timeout():
    pool = Pool(a=Scripted(["hang"]))

    def sink(*args):
        pass

    answer = await caller(pool, first_token_timeout_seconds=0.05).call("m", [PRIMARY], req, 5, sink)
    assert "first token" in answer.history[0]["detail"]


def test_caps_wait_for_the_next_minute_and_settle_to_actual_tokens():
    endpoints = Endpoints(BreakerPolicy(), parse_caps({"a": {"rpm": 2}, "a:big": {"tpm": 100}}))
    small = endpoints.get("a", "m1", "u")
    assert small.caps == Caps(rpm=2) and small.wait_time(10, 0.0) == 0
    small.take(10)
    small.take(10)
    assert small.wait_time(10, 1.0) == pytest.approx(59.0)
    assert small.wait_time(10, 60.0) == 0  # a new window
    big = endpoints.get("a", "big", "u")
    big.wait_time(80, 0.0)
    window = big.take(80)
    assert big.wait_time(30, 1.0) > 0
    big.settle(window, 80, 20)  # it used 20, not 80
    assert big.wait_time(30, 1.0) == 0
    late = big.take(30)
    big.wait_time(10, 61.0)  # a new window began before the call settled
    big.settle(late, 30, 5)
    assert big.tokens == 0  # the old window's reservation is not taken out of the new one


def test_unknown_or_non_positive_caps_are_refused():
    with pytest.raises(ValueError, match="unknown field"):
        parse_caps({"a": {"rps": 3}})
    with pytest.raises(ValueError, match=">= 1"):
        parse_caps({"a": {"rpm": 0}})


async def test_deadline_spent_skips_later_targets_without_blaming_them():
    pool = Pool(a=Scripted(["hang"] * 5), b=Scripted([]))
    call = caller(pool, call_timeout_seconds=1.2, message_deadline_seconds=1.5, retry_max_attempts=2)
    with pytest.raises(CallFailed) as caught:
        await call.call("m", [PRIMARY, FALLBACK], req, 5)
    assert pool.get("b").calls == 0 and caught.value.code == ErrorCode.PROVIDER_TIMEOUT
    assert caught.value.history[-1]["outcome"] == "deadline_exceeded"
    assert call.endpoints.get("b", "m2", "http://scripted").failures == 0


async def test_waiting_for_an_in_flight_slot_stays_within_the_deadline():
    pool = Pool(a=Scripted([]))
    call = caller(pool, call_timeout_seconds=5, message_deadline_seconds=1.5)
    call.in_flight = asyncio.Semaphore(1)
    await call.in_flight.acquire()  # another message holds the only slot for longer than our deadline
    started = time.monotonic()
    with pytest.raises(CallFailed) as caught:
        await call.call("m2", [PRIMARY], req, 5)
    assert time.monotonic() - started < 2 and "in-flight slot" in caught.value.reason
    assert pool.get("a").calls == 0


async def test_own_failures_not_the_breaker_are_the_reason():
    pool = Pool(a=Scripted([UNAVAILABLE] * 10))
    with pytest.raises(CallFailed) as caught:
        await caller(pool, breaker_consecutive_failures=2).call("m", [PRIMARY], req, 5)
    assert caught.value.code == ErrorCode.PROVIDER_UNAVAILABLE


async def test_adapter_bug_fails_the_message_without_blaming_the_endpoint():
    class Broken(Scripted):
        async def complete(self, request):
            raise AttributeError("oops")

    pool = Pool(a=Broken([]))
    call = caller(pool)
    with pytest.raises(CallFailed) as caught:
        await call.call("m", [PRIMARY], req, 5)
    assert caught.value.code == ErrorCode.PROVIDER_ERROR and caught.value.attempts == 1
    assert call.endpoints.get("a", "m1", "http://scripted").failures == 0


def test_targets_are_the_provider_then_the_fallbacks():
    profile = AgentProfile.model_validate({"agent_id": "x", "version": 1, "provider": "a", "model": "m1",
                                           "options": {"x": 1}, "fallbacks": [{"provider": "b", "model": "m2"}]})
    assert targets_of(profile) == [Target("a", "m1", {"x": 1}, 0), Target("b", "m2", {}, 1)]


def test_deadline_must_stay_below_the_rebalance_timeout():
    with pytest.raises(ValueError, match="REBALANCE"):
        Settings(message_deadline_seconds=200, rebalance_timeout_seconds=120)
