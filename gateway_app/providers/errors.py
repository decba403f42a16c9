"""From what a provider said to a `ProviderError`: one status table for every provider.

Retriable: 408, 409, 429, 5xx (incl. Anthropic's 529), connection failures, timeouts, malformed answers
and streams that broke off. Not retriable: other 4xx (the request or the key is wrong; asking again
gives the same answer).
"""

from __future__ import annotations

import time
from typing import Mapping

from gateway_app.contract.events import ErrorCode
from gateway_app.providers.base import ProviderError
from gateway_app.resilience.retry import parse_retry_after

RETRIABLE_4XX = frozenset({408, 409, 429})


def status_code(status: int) -> ErrorCode:
    if status == 429:
        return ErrorCode.PROVIDER_RATE_LIMITED
    if status in (401, 403):
        return ErrorCode.PROVIDER_AUTH_FAILED
    if status == 408 or status >= 500:
        return ErrorCode.PROVIDER_UNAVAILABLE
    if 400 <= status < 500:
        return ErrorCode.PROVIDER_REJECTED
    return ErrorCode.PROVIDER_ERROR


def from_status(status: int, message: str, headers: Mapping[str, str] | None = None) -> ProviderError:
    retry_after = parse_retry_after(headers or {}, time.time())
    return ProviderError(
        status_code(status), f"provider answered HTTP {status}: {message}",
        retriable=status in RETRIABLE_4XX or status >= 500, status=status, retry_after=retry_after,
    )


def timed_out(detail: str = "provider call timed out") -> ProviderError:
    return ProviderError(ErrorCode.PROVIDER_TIMEOUT, detail, retriable=True)


def connection_failed(exc: BaseException) -> ProviderError:
    return ProviderError(ErrorCode.PROVIDER_UNAVAILABLE, f"connection failed: {type(exc).__name__}: {exc}",
                         retriable=True)


def bad_response(detail: str) -> ProviderError:
    """A 2xx whose body is not the documented answer (not JSON, an error object, missing fields)."""
    return ProviderError(ErrorCode.PROVIDER_BAD_RESPONSE, f"malformed provider response: {detail}", retriable=True)


def stream_interrupted(detail: str) -> ProviderError:
    return ProviderError(ErrorCode.PROVIDER_STREAM_INTERRUPTED, f"stream broke off: {detail}", retriable=True)


def unexpected(exc: BaseException) -> ProviderError:
    """An exception no rule above knows (likely an SDK/adapter mismatch): not retried, the details kept."""
    return ProviderError(ErrorCode.PROVIDER_ERROR, f"unexpected {type(exc).__name__}: {exc}"[:300], retriable=False)
