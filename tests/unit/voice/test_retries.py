"""Voice calls retried on the retry policy (gateway_app.voice.retries)."""

from __future__ import annotations

import random

import pytest

from gateway_app.contract.events import ErrorCode
from gateway_app.providers.base import ProviderError
from gateway_app.resilience.retry import RetryPolicy
from gateway_app.voice.retries import with_retries

POLICY = RetryPolicy(max_attempts=3, base_delay=0.5, max_delay=8.0, retry_after_cap=20.0, deadline=90.0)


def flaky(*failures: ProviderError):
    calls = []

    async def call():
        calls.append(len(calls))
        if len(calls) <= len(failures):
            raise failures[len(calls) - 1]
        return "answer"

    return call, calls


def unavailable(retry_after: float | None = None) -> ProviderError:
    return ProviderError(ErrorCode.PROVIDER_UNAVAILABLE, "503", retriable=True, status=503, retry_after=retry_after)


async def test_a_retriable_failure_is_tried_again_after_the_policys_delay():
    call, calls = flaky(unavailable(), unavailable(retry_after=2.0))
    slept = []

    async def sleep(seconds):
        slept.append(seconds)

    assert await with_retries(call, POLICY, "t", random.Random(1), sleep) == "answer"
    assert len(calls) == 3
    assert 0 <= slept[0] <= 0.5 and slept[1] == 2.0  # full jitter over the base, then the Retry-After


async def test_a_failure_that_is_not_retriable_or_the_last_one_is_raised():
    refused = ProviderError(ErrorCode.PROVIDER_AUTH_FAILED, "401", retriable=False, status=401)
    call, calls = flaky(refused)
    with pytest.raises(ProviderError) as raised:
        await with_retries(call, POLICY, "t", random.Random(1), sleep=lambda s: _nothing())
    assert raised.value is refused and len(calls) == 1
    call, calls = flaky(unavailable(), unavailable(), unavailable())
    with pytest.raises(ProviderError):
        await with_retries(call, POLICY, "t", random.Random(1), sleep=lambda s: _nothing())
    assert len(calls) == 3  # max_attempts


async def _nothing():
    return None
