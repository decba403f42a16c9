"""`cohere`: Cohere Chat v2.

`COHERE_API_KEY` or `CO_API_KEY` (the SDK's own name) required; `COHERE_BASE_URL` (or the SDK's
`CO_API_URL`) optional. Tokens are the billed units Cohere reports (what it charges for).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, AsyncIterator

import cohere
import httpx
from cohere.core.api_error import ApiError

from gateway_app.providers import errors, finish
from gateway_app.providers.base import (
    ChatRequest,
    ChatResult,
    ClientCache,
    ProviderError,
    ProviderNotConfigured,
    StreamEvent,
    TextDelta,
    TokenUsage,
    ToolCall,
    ToolCallParts,
)

DEFAULT_BASE_URL = "https://api.cohere.com"


def to_params(request: ChatRequest) -> dict[str, Any]:
    system = [{"role": "system", "content": request.system_prompt}] if request.system_prompt else []
    params: dict[str, Any] = {
        "model": request.model,
        "messages": system + [{"role": m.role, "content": m.content} for m in request.messages],
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
    }
    if request.stop:
        params["stop_sequences"] = list(request.stop)
    if request.tools:
        params["tools"] = list(request.tools)  # Chat v2 takes the same function-tool shape
    return params


def to_usage(usage: Any) -> TokenUsage:
    billed = getattr(usage, "billed_units", None)
    if billed is None or billed.input_tokens is None or billed.output_tokens is None:
        raise errors.bad_response("no usage.billed_units")
    cached = getattr(usage, "cached_tokens", None) or 0
    return TokenUsage(int(billed.input_tokens), int(billed.output_tokens), int(cached))


def to_tool_calls(calls: Any) -> tuple[ToolCall, ...]:
    return tuple(ToolCall(str(c.id), c.function.name, c.function.arguments or "{}") for c in calls or ())


def to_result(response: Any) -> ChatResult:
    """The SDK builds the response without validating it: check every field we rely on."""
    message = getattr(response, "message", None)
    if message is None or not getattr(response, "finish_reason", None):
        raise errors.bad_response(f"no message or finish_reason in {str(response)[:160]}")
    if response.finish_reason == "ERROR":
        raise errors.bad_response("the model stopped with finish_reason ERROR")
    texts = []
    for item in getattr(message, "content", None) or []:
        if getattr(item, "type", "") == "text":
            if not isinstance(item.text, str):
                raise errors.bad_response("a text item without text")
            texts.append(item.text)
    return ChatResult("".join(texts), finish.normalize(response.finish_reason), to_usage(response.usage),
                      str(response.id), to_tool_calls(getattr(message, "tool_calls", None)))


def classify(exc: Exception, *, streaming: bool = False) -> ProviderError:
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, ApiError) and exc.status_code is not None and exc.status_code >= 400:
        return errors.from_status(exc.status_code, _message(exc.body), exc.headers or {})
    if isinstance(exc, ApiError):  # a 2xx whose body is not JSON
        return errors.bad_response(f"HTTP {exc.status_code}: {str(exc.body)[:200]}")
    if isinstance(exc, httpx.TimeoutException):
        return errors.timed_out()
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)) or (
            isinstance(exc, httpx.TransportError) and not streaming):
        return errors.connection_failed(exc)
    # The SDK builds its models from the body without validating it: a body of the wrong shape
    # surfaces as one of these while the SDK reads it.
    if isinstance(exc, (ValueError, TypeError, KeyError, AttributeError)):
        return errors.bad_response(f"{type(exc).__name__}: {exc}"[:300])
    if streaming:
        return errors.stream_interrupted(f"{type(exc).__name__}: {exc}"[:300])
    return errors.unexpected(exc)


def _message(body: Any) -> str:
    if isinstance(body, dict):
        return str(body.get("message", body))[:300]
    return str(body)[:300]


class CohereProvider:
    name = "cohere"

    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = timeout

        async def close(pair: tuple[cohere.AsyncClientV2, httpx.AsyncClient]) -> None:
            await pair[1].aclose()

        # We hand the SDK our own httpx client so that we own its connection pool and can close it.
        self._clients: ClientCache[tuple[cohere.AsyncClientV2, httpx.AsyncClient]] = ClientCache(close)

    def endpoint(self, request: ChatRequest) -> str:
        return os.environ.get("COHERE_BASE_URL") or os.environ.get("CO_API_URL") or DEFAULT_BASE_URL

    async def _client(self, request: ChatRequest) -> cohere.AsyncClientV2:
        key = os.environ.get("COHERE_API_KEY") or os.environ.get("CO_API_KEY")
        if not key:
            raise ProviderNotConfigured("COHERE_API_KEY (or CO_API_KEY) is not set")
        base_url = self.endpoint(request)

        def create() -> tuple[cohere.AsyncClientV2, httpx.AsyncClient]:
            http = httpx.AsyncClient(timeout=self.timeout)
            client = cohere.AsyncClientV2(api_key=key, base_url=base_url, timeout=self.timeout, max_retries=0,
                                          httpx_client=http, log_warning_experimental_features=False)
            return client, http

        return (await self._clients.get((base_url, key), create))[0]

    async def complete(self, request: ChatRequest) -> ChatResult:
        client, params = await self._client(request), to_params(request)
        try:
            return to_result(await client.chat(**params))
        except Exception as exc:
            raise classify(exc) from exc

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        client, params = await self._client(request), to_params(request)
        state = _StreamState()
        try:
            # aclosing: closing our generator must close the SDK's (and its HTTP response) at once.
            async with contextlib.aclosing(client.chat_stream(**params)) as events:
                async for event in events:
                    delta = state.apply(event)
                    if delta:
                        yield TextDelta(delta)
            result = state.result()
        except Exception as exc:
            raise classify(exc, streaming=True) from exc
        yield result

    async def aclose(self) -> None:
        await self._clients.aclose()


class _StreamState:
    """Folds Chat v2 stream events (message-start ... message-end) into one result."""

    def __init__(self) -> None:
        self.message_id: str | None = None
        self.parts: list[str] = []
        self.tools = ToolCallParts()
        self.end: Any = None

    def apply(self, event: Any) -> str:
        kind = getattr(event, "type", None)
        if kind == "message-start":
            # The SDK turns a data line that is not JSON into a message-start without a delta: bad stream.
            if getattr(event, "delta", None) is None or self.message_id is not None:
                raise errors.stream_interrupted("malformed event in the stream")
            self.message_id = getattr(event, "id", None) or ""
        elif kind == "content-delta":
            text = event.delta.message.content.text or ""
            self.parts.append(text)
            return text
        elif kind in ("tool-call-start", "tool-call-delta"):
            call = event.delta.message.tool_calls
            function = getattr(call, "function", None)
            self.tools.add(event.index, id=getattr(call, "id", None), name=getattr(function, "name", None),
                           arguments=getattr(function, "arguments", None))
        elif kind == "message-end":
            self.end = event.delta
        return ""

    def result(self) -> ChatResult:
        if self.end is None:
            raise errors.stream_interrupted("no message-end before the stream ended")
        if self.end.finish_reason == "ERROR":
            raise errors.stream_interrupted("the model stopped with finish_reason ERROR")
        if not self.end.finish_reason:
            raise errors.stream_interrupted("no finish_reason in message-end")
        return ChatResult("".join(self.parts), finish.normalize(self.end.finish_reason), to_usage(self.end.usage),
                          self.message_id, self.tools.result())
