"""The call loop with in-process providers: retries, fallbacks, breaker, pause, timeouts, streams.

The Caller runs on the `clock` fixture (a FakeClock): backoffs and 429 pauses take no real time and are
exact. Attempt and first-token timeouts are `asyncio.timeout`s on the loop's real clock, kept short; the
two deadline tests, where the deadline meets those timeouts, run on real time."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway_app.contract.events import AgentProfile, ErrorCode
from gateway_app.pipeline.caller import CallFailed, Target, targets_of
from gateway_app.providers import errors
from gateway_app.providers.base import ChatMessage, ChatRequest, ProviderError
from gateway_app.resilience.breaker import State


def req(target: Target) -> ChatRequest:
    return ChatRequest(target.model, "", (ChatMessage("user", "hi"),), 0, 10, options=target.options)


PRIMARY = Target("a", "m1", {}, 0)
FALLBACK = Target("b", "m2", {}, 1)
UNAVAILABLE = errors.from_status(503, "down")
REJECTED = errors.from_status(400, "bad")


async def test_retriable_failures_are_retried_then_answered(caller_factory, clock):
    call = caller_factory({"a": [UNAVAILABLE, errors.timed_out()]})
    answer = await call.call("m", [PRIMARY], req, 5)
    assert answer.attempts == 3 and answer.target == PRIMARY and call.providers.get("a").calls == 3
    assert [h["outcome"] for h in answer.history] == ["provider_unavailable", "provider_timeout", "ok"]
    assert len(clock.slept) == 2  # one backoff before each retry, on the fake clock


async def test_non_retriable_failure_fails_at_once_with_its_code_and_history(caller_factory, clock):
    with pytest.raises(CallFailed) as caught:
        await caller_factory({"a": [REJECTED]}).call("m", [PRIMARY], req, 5)
    assert caught.value.code == ErrorCode.PROVIDER_REJECTED and caught.value.attempts == 1
    assert caught.value.history[0]["status"] == 400 and "after 1 attempt;" in caught.value.reason
    assert clock.slept == []  # no backoff: nothing to retry


async def test_fallback_answers_when_primary_exhausts_its_retries(caller_factory):
    call = caller_factory({"a": [UNAVAILABLE] * 3, "b": []})
    answer = await call.call("m", [PRIMARY, FALLBACK], req, 5)
    assert answer.target.fallback_index == 1 and answer.attempts == 4
    assert answer.result.text == "http://scripted answered"


async def test_open_breaker_skips_straight_to_the_fallback(caller_factory):
    call = caller_factory({"a": [UNAVAILABLE] * 10, "b": []}, retry_max_attempts=1, breaker_consecutive_failures=2)
    for _ in range(2):  # two consecutive failures open the breaker (policy: 2)
        await call.call("m", [PRIMARY, FALLBACK], req, 5)
    assert call.providers.get("a").calls == 2
    endpoint = call.endpoints.get("a", "m1", "http://scripted")
    assert endpoint.breaker.state is State.OPEN
    answer = await call.call("m", [PRIMARY, FALLBACK], req, 5)
    assert call.providers.get("a").calls == 2 and answer.target.fallback_index == 1  # no call to the open endpoint
    assert answer.history[0]["outcome"] == "circuit_open"


async def test_open_breaker_lets_a_probe_through_after_exactly_its_open_time(caller_factory, clock):
    call = caller_factory({"a": [UNAVAILABLE] * 10, "b": []}, retry_max_attempts=1, breaker_consecutive_failures=2,
                          breaker_open_seconds=60)
    for _ in range(2):
        await call.call("m", [PRIMARY, FALLBACK], req, 5)
    clock.now += 59
    assert (await call.call("m", [PRIMARY, FALLBACK], req, 5)).history[0]["outcome"] == "circuit_open"
    clock.now += 1
    probed = await call.call("m", [PRIMARY, FALLBACK], req, 5)
    assert call.providers.get("a").calls == 3 and probed.history[0]["outcome"] == "provider_unavailable"
    assert call.endpoints.get("a", "m1", "http://scripted").breaker.state is State.OPEN  # the probe failed


async def test_every_target_open_fails_with_circuit_open(caller_factory):
    call = caller_factory({"a": [UNAVAILABLE] * 10}, retry_max_attempts=1, breaker_consecutive_failures=2)
    for _ in range(2):
        with pytest.raises(CallFailed):
            await call.call("m", [PRIMARY], req, 5)
    with pytest.raises(CallFailed) as caught:
        await call.call("m", [PRIMARY], req, 5)
    assert caught.value.code == ErrorCode.CIRCUIT_OPEN and caught.value.attempts == 0


async def test_a_failing_endpoint_opens_mid_retries_and_the_fallback_takes_over(caller_factory):
    call = caller_factory({"a": [UNAVAILABLE] * 10, "b": []}, breaker_consecutive_failures=2)
    answer = await call.call("m", [PRIMARY, FALLBACK], req, 5)
    assert call.providers.get("a").calls == 2 and answer.target == FALLBACK
    assert [h["outcome"] for h in answer.history] == ["provider_unavailable"] * 2 + ["circuit_open", "ok"]


async def test_client_errors_do_not_open_the_breaker(caller_factory):
    call = caller_factory({"a": [REJECTED] * 5})
    for _ in range(5):
        with pytest.raises(CallFailed):
            await call.call("m", [PRIMARY], req, 5)
    assert call.endpoints.get("a", "m1", "http://scripted").breaker.state is State.CLOSED


async def test_429_pauses_the_endpoint_for_other_messages(caller_factory, clock):
    limited = ProviderError(ErrorCode.PROVIDER_RATE_LIMITED, "429", retriable=True, status=429, retry_after=0.3)
    call = caller_factory({"a": [limited]})
    endpoint = call.endpoints.get("a", "m1", "http://scripted")
    first = asyncio.create_task(call.call("m1", [PRIMARY], req, 5))
    for _ in range(100):  # until the first message got its 429 (it then sleeps its Retry-After)
        if endpoint.paused_until > clock():
            break
        await asyncio.sleep(0)
    assert endpoint.paused_until == pytest.approx(clock() + 0.3)
    started = clock()
    await call.call("m2", [PRIMARY], req, 5)  # waits for the pause, does not hit the endpoint meanwhile
    assert clock() - started >= 0.2
    assert clock() - started == pytest.approx(0.3)  # exactly the rest of the pause
    assert (await first).attempts == 2
    assert call.providers.get("a").calls == 3  # m1's 429 and its retry, m2's one call after the pause
    assert clock.slept == pytest.approx([0.3, 0.3])  # m1's Retry-After, m2's wait for the pause


async def test_attempt_timeout_is_a_retriable_timeout(caller_factory):
    answer = await caller_factory({"a": ["hang"]}, call_timeout_seconds=0.1).call("m", [PRIMARY], req, 5)
    assert answer.history[0]["outcome"] == "provider_timeout" and answer.attempts == 2


async def test_stream_chunks_in_order_and_a_broken_stream_is_retried(caller_factory):
    chunks = []

    def sink(attempt, seq, delta, final):
        chunks.append((attempt, seq, delta, final))

    answer = await caller_factory({"a": ["cut", "no-result"]}).call("m", [PRIMARY], req, 5, sink)
    assert answer.attempts == 3 and answer.result.text == "part one part two"
    assert [h["outcome"] for h in answer.history] == ["provider_stream_interrupted"] * 2 + ["ok"]
    last = [c for c in chunks if c[0] == 3]
    assert last == [(3, 0, "part one", False), (3, 1, " part two", False), (3, 2, "", True)]
    assert "".join(c[2] for c in last) == answer.result.text


async def test_first_token_timeout(caller_factory):
    def sink(*args):
        pass

    call = caller_factory({"a": ["hang"]}, first_token_timeout_seconds=0.05)
    answer = await call.call("m", [PRIMARY], req, 5, sink)
    assert "first token" in answer.history[0]["detail"]


async def test_deadline_spent_skips_later_targets_without_blaming_them(caller_factory):
    # Real time: the hangs are cut by asyncio.timeout, on the loop's clock, and they spend the deadline.
    call = caller_factory({"a": ["hang"] * 5, "b": []}, real_time=True, call_timeout_seconds=1.2,
                          message_deadline_seconds=1.5, retry_max_attempts=2)
    with pytest.raises(CallFailed) as caught:
        await call.call("m", [PRIMARY, FALLBACK], req, 5)
    assert call.providers.get("b").calls == 0 and caught.value.code == ErrorCode.PROVIDER_TIMEOUT
    assert caught.value.history[-1]["outcome"] == "deadline_exceeded"
    assert call.endpoints.get("b", "m2", "http://scripted").failures == 0


async def test_waiting_for_an_in_flight_slot_stays_within_the_deadline(caller_factory):
    # Real time: the wait for a slot is bounded by an asyncio.timeout of the deadline left.
    call = caller_factory({"a": []}, real_time=True, call_timeout_seconds=5, message_deadline_seconds=1.5)
    call.in_flight = asyncio.Semaphore(1)
    await call.in_flight.acquire()  # another message holds the only slot for longer than our deadline
    started = time.monotonic()
    with pytest.raises(CallFailed) as caught:
        await call.call("m2", [PRIMARY], req, 5)
    assert time.monotonic() - started < 2 and "in-flight slot" in caught.value.reason
    assert call.providers.get("a").calls == 0


async def test_own_failures_not_the_breaker_are_the_reason(caller_factory):
    with pytest.raises(CallFailed) as caught:
        await caller_factory({"a": [UNAVAILABLE] * 10}, breaker_consecutive_failures=2).call("m", [PRIMARY], req, 5)
    assert caught.value.code == ErrorCode.PROVIDER_UNAVAILABLE


async def test_adapter_bug_fails_the_message_without_blaming_the_endpoint(caller_factory):
    call = caller_factory({"a": [AttributeError("oops")]})  # the adapter itself raises, not a ProviderError
    with pytest.raises(CallFailed) as caught:
        await call.call("m", [PRIMARY], req, 5)
    assert caught.value.code == ErrorCode.PROVIDER_ERROR and caught.value.attempts == 1
    assert call.endpoints.get("a", "m1", "http://scripted").failures == 0


def test_targets_are_the_provider_then_the_fallbacks():
    profile = AgentProfile.model_validate({"agent_id": "x", "version": 1, "provider": "a", "model": "m1",
                                           "options": {"x": 1}, "fallbacks": [{"provider": "b", "model": "m2"}]})
    assert targets_of(profile) == [Target("a", "m1", {"x": 1}, 0), Target("b", "m2", {}, 1)]


async def test_a_401_with_a_secondary_key_is_tried_once_with_it_at_once(caller_factory, clock):
    from dataclasses import replace

    from pydantic import SecretStr

    call = caller_factory({"a": [errors.from_status(401, "bad key")]})

    def with_keys(target: Target) -> ChatRequest:
        return replace(req(target), credential=SecretStr("old"), secondary_credential=SecretStr("new"))

    answer = await call.call("m", [PRIMARY], with_keys, 5)
    assert answer.attempts == 2 and clock.slept == []  # the other key at once: no backoff
    assert [h["outcome"] for h in answer.history] == ["provider_auth_failed", "ok"]
    with pytest.raises(CallFailed) as caught:  # without a secondary, a 401 fails at once
        await caller_factory({"a": [errors.from_status(401, "bad key")]}).call("m", [PRIMARY], req, 5)
    assert caught.value.code == ErrorCode.PROVIDER_AUTH_FAILED and caught.value.attempts == 1


async def test_a_target_whose_credentials_cannot_be_had_fails_alone(caller_factory):
    from gateway_app.errors import GatewayError

    async def make(target: Target) -> ChatRequest:
        if target is PRIMARY:
            raise GatewayError(ErrorCode.CREDENTIALS_UNAVAILABLE, "no key in env:NOPE")
        return req(target)

    call = caller_factory({"a": [], "b": []})
    answer = await call.call("m", [PRIMARY, FALLBACK], make, 5)
    assert answer.target == FALLBACK and call.providers.get("a").calls == 0
    assert answer.history[0]["outcome"] == "credentials_unavailable"
    with pytest.raises(CallFailed) as caught:
        await call.call("m", [PRIMARY], make, 5)
    assert caught.value.code == ErrorCode.CREDENTIALS_UNAVAILABLE and caught.value.attempts == 0
