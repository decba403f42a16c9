"""The shared classifier with each SDK's table: the quirks that the wire fakes reach only by accident."""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest
from cohere.core.api_error import ApiError

from gateway_app.contract.events import ErrorCode
from gateway_app.providers import anthropic as anthropic_provider
from gateway_app.providers import cohere as cohere_provider
from gateway_app.providers import errors, openai_compat

REQUEST = httpx.Request("POST", "http://provider.test/v1/chat")


def status_error(sdk, status: int, headers: dict[str, str] | None = None):
    response = httpx.Response(status, request=REQUEST, headers=headers or {})
    return sdk.APIStatusError("the message", response=response, body=None)


@pytest.mark.parametrize("sdk,table", [(openai, openai_compat.ERRORS), (anthropic, anthropic_provider.ERRORS)],
                         ids=["openai", "anthropic"])
@pytest.mark.parametrize("streaming", [False, True])
def test_stainless_sdks(sdk, table, streaming):
    rate_limited = errors.classify(status_error(sdk, 429, {"retry-after": "2"}), table, streaming=streaming)
    assert rate_limited.code == ErrorCode.PROVIDER_RATE_LIMITED and rate_limited.retry_after == 2.0
    timeout = errors.classify(sdk.APITimeoutError(request=REQUEST), table, streaming=streaming)
    dropped = errors.classify(sdk.APIConnectionError(request=REQUEST), table, streaming=streaming)
    if streaming:  # the stream had started: it broke, the endpoint is not known to be down or slow
        assert timeout.code == dropped.code == ErrorCode.PROVIDER_STREAM_INTERRUPTED
    else:
        assert timeout.code == ErrorCode.PROVIDER_TIMEOUT and dropped.code == ErrorCode.PROVIDER_UNAVAILABLE
    invalid = sdk.APIResponseValidationError(response=httpx.Response(200, request=REQUEST), body=None)
    assert errors.classify(invalid, table, streaming=streaming).code == ErrorCode.PROVIDER_BAD_RESPONSE
    assert errors.classify(KeyError("choices"), table, streaming=streaming).code == ErrorCode.PROVIDER_BAD_RESPONSE
    other = errors.classify(sdk.APIError("an error object", REQUEST, body=None), table, streaming=streaming)
    assert other.code == (ErrorCode.PROVIDER_STREAM_INTERRUPTED if streaming else ErrorCode.PROVIDER_ERROR)


def test_anthropic_status_below_400_is_an_error_event_inside_a_200_stream():
    error = errors.classify(status_error(anthropic, 200), anthropic_provider.ERRORS, streaming=True)
    assert error.code == ErrorCode.PROVIDER_STREAM_INTERRUPTED and error.retriable
    # openai has no such quirk: classified by its status like any other
    assert errors.classify(status_error(openai, 200), openai_compat.ERRORS).code == ErrorCode.PROVIDER_ERROR


@pytest.mark.parametrize("status", [None, 200])
def test_cohere_api_error_without_an_error_status_is_a_body_that_is_not_json(status):
    error = errors.classify(ApiError(status_code=status, body="<html>"), cohere_provider.ERRORS)
    assert error.code == ErrorCode.PROVIDER_BAD_RESPONSE and f"HTTP {status}: <html>" in str(error)


def test_cohere_status_errors_and_transport_failures():
    table = cohere_provider.ERRORS
    rejected = errors.classify(ApiError(status_code=400, headers=None, body={"message": "bad model"}), table)
    assert rejected.code == ErrorCode.PROVIDER_REJECTED and "bad model" in str(rejected)
    # A timeout stays a timeout even in a stream; a refused connection stays a connection failure.
    assert errors.classify(httpx.ReadTimeout("slow"), table, streaming=True).code == ErrorCode.PROVIDER_TIMEOUT
    assert errors.classify(httpx.ConnectError("refused"), table, streaming=True).code == ErrorCode.PROVIDER_UNAVAILABLE
    # Any other transport failure: the connection failed before an answer, or it broke the stream.
    assert errors.classify(httpx.ReadError("reset"), table).code == ErrorCode.PROVIDER_UNAVAILABLE
    assert errors.classify(httpx.ReadError("reset"), table, streaming=True).code == \
        ErrorCode.PROVIDER_STREAM_INTERRUPTED
