"""From what a provider said to a `ProviderError`: one status table and one classifier for every provider.

Retriable: 408, 409, 429, 5xx (incl. Anthropic's 529), connection failures, timeouts, malformed answers
and streams that broke off. Not retriable: other 4xx (the request or the key is wrong; asking again
gives the same answer).

Each provider module describes its SDK's exceptions in an `ErrorTable` (data, plus a hook where an SDK
has a quirk) and calls `classify(exc, TABLE, streaming=...)`: the rules and their order live here only.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import aiohttp

from gateway_app.contract.events import ErrorCode
from gateway_app.providers.base import ProviderError
from gateway_app.resilience.retry import parse_retry_after

RETRIABLE_4XX = frozenset({408, 409, 429})
# SDKs build their models from the body without validating it: a body of the wrong shape surfaces as
# one of these while the SDK (or our mapping) reads it.
SHAPE_ERRORS: tuple[type[Exception], ...] = (ValueError, TypeError, AttributeError, KeyError)

Types = tuple[type[BaseException], ...]


@dataclass(frozen=True)
class ErrorTable:
    """One SDK's exceptions, by what they mean; `classify` checks them in the order of these fields."""

    status: Types  # an HTTP answer with a status
    # (status, message, headers) of a `status` exception
    read_status: Callable[[Any], tuple[int | None, str, Mapping[str, str] | None]]
    # A `status` exception whose status is no error (None or < 400) means something SDK-specific; without
    # this hook it is classified by its status like any other.
    no_error_status: Callable[[Any], ProviderError] | None = None
    # Once a stream has started these break it: the endpoint answered, so it is neither down nor slow.
    breaks_stream: Types = ()
    timeout: Types = ()
    connection: Types = ()
    # Connection failures unless streaming (then they broke the stream: the last rule of `classify`).
    connection_unless_streaming: Types = ()
    validation: Types = ()  # the SDK's own "the body is not what was documented"


def classify(exc: BaseException, table: ErrorTable, *, streaming: bool = False) -> ProviderError:
    """The one place where an SDK's exceptions become gateway errors.

    `streaming`: the response had started; a dropped connection or timeout now breaks a stream.
    """
    if isinstance(exc, ProviderError):  # raised by our own mapping: already classified
        return exc
    if isinstance(exc, table.status):
        return _from_status_error(exc, table)
    if streaming and isinstance(exc, table.breaks_stream):
        return stream_interrupted(describe(exc))
    if isinstance(exc, table.timeout):
        dropped = _dropped_connection(exc)
        return timed_out() if dropped is None else connection_failed(dropped)
    if isinstance(exc, table.connection) or (not streaming and isinstance(exc, table.connection_unless_streaming)):
        return connection_failed(exc)
    if isinstance(exc, table.validation + SHAPE_ERRORS):
        return bad_response(describe(exc))
    if streaming:  # e.g. an `error` object mid-stream
        return stream_interrupted(describe(exc))
    return unexpected(exc)


def _dropped_connection(exc: BaseException) -> BaseException | None:
    """The connection error behind a "timeout" that was none. The SDKs' aiohttp bridge
    (`DefaultAioHttpClient`) maps every aiohttp connection error, a reset or a server that closed the
    connection too, to a connect timeout; the aiohttp error it came from says which it was."""
    cause = exc.__cause__
    while cause is not None:
        if isinstance(cause, aiohttp.ClientConnectionError):
            return None if isinstance(cause, (aiohttp.ServerTimeoutError, asyncio.TimeoutError)) else cause
        cause = cause.__cause__
    return None


def _from_status_error(exc: BaseException, table: ErrorTable) -> ProviderError:
    status, message, headers = table.read_status(exc)
    if table.no_error_status is not None and (status is None or status < 400):
        return table.no_error_status(exc)
    if status is None:  # an SDK that may say no status needs the hook above; never guess a class for it
        return unexpected(exc)
    return from_status(status, message, headers)


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


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
