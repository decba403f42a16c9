"""`cohere`: Cohere Chat v2.

`COHERE_API_KEY` or `CO_API_KEY` (the SDK's own name) required; `COHERE_BASE_URL` (or the SDK's
`CO_API_URL`) optional. Tokens are the billed units Cohere reports (what it charges for).
"""

from __future__ import annotations

import contextlib
from typing import Any, AsyncIterator, Mapping

import cohere
import httpx
from cohere.core.api_error import ApiError

from gateway_app.observability import tracing
from gateway_app.providers import errors, finish
from gateway_app.providers.base import (
    ChatMessage,
    ChatRequest,
    ChatResult,
    StreamEvent,
    TextDelta,
    TokenUsage,
    ToolCall,
    ToolCallParts,
)
from gateway_app.providers.clients import ClientConfig, SDKProvider, first_set

DEFAULT_BASE_URL = "https://api.cohere.com"


def to_params(request: ChatRequest) -> dict[str, Any]:
    system = [{"role": "system", "content": request.system_prompt}] if request.system_prompt else []
    params: dict[str, Any] = {
        "model": request.model,
        "messages": system + [to_message(m) for m in request.messages],
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
    }
    if request.stop:
        params["stop_sequences"] = list(request.stop)
    if request.tools:
        params["tools"] = list(request.tools)  # Chat v2 takes the same function-tool shape
    for name in ("frequency_penalty", "presence_penalty"):  # Chat v2 takes them (0..1): clamped
        if getattr(request, name) is not None:
            params[name] = min(1.0, max(0.0, getattr(request, name)))
    if request.response_format == "json":
        params["response_format"] = to_response_format(request)
    return params


def to_response_format(request: ChatRequest) -> dict[str, Any]:
    """Chat v2's JSON mode; a schema, when given, constrains the generation itself. (Cohere documents
    JSON mode as unsupported together with tools: such a request is the API's to refuse.)"""
    if request.json_schema is None:
        return {"type": "json_object"}
    return {"type": "json_object", "json_schema": request.json_schema}


def to_message(message: ChatMessage) -> dict[str, Any]:
    if message.role == "tool":
        # Tool content is a JSON object string or a list of content blocks: a text block carries any
        # text. There is no error flag: the model reads the failure from the text.
        text = f"error: {message.content}" if message.is_error else message.content
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": [{"type": "text", "text": text}]}
    if message.role == "assistant" and message.tool_calls:
        # The text the model wrote beside its tool calls is its `tool_plan` (as Chat v2 returns it).
        calls = [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                 for c in message.tool_calls]
        return {"role": "assistant", "tool_calls": calls, **({"tool_plan": message.content} if message.content else {})}
    return {"role": message.role, "content": message.content}


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


def _message(body: Any) -> str:
    if isinstance(body, dict):
        return str(body.get("message", body))[:300]
    return str(body)[:300]


ERRORS = errors.ErrorTable(
    status=(ApiError,),
    read_status=lambda exc: (exc.status_code, _message(exc.body), exc.headers or {}),
    timeout=(httpx.TimeoutException,),
    connection=(httpx.ConnectError, httpx.ConnectTimeout),
    # Any other transport failure before an answer (the SDK raises httpx's own exceptions); in a stream
    # it broke the stream.
    connection_unless_streaming=(httpx.TransportError,),
    # A status below 400 (or none): a 2xx whose body is not JSON.
    no_error_status=lambda exc: errors.bad_response(f"HTTP {exc.status_code}: {str(exc.body)[:200]}"),
)

Clients = tuple[cohere.AsyncClientV2, httpx.AsyncClient]


class CohereProvider(SDKProvider[Clients]):
    name = "cohere"
    missing_key = "COHERE_API_KEY (or CO_API_KEY) is not set"

    def read_config(self, environ: Mapping[str, str]) -> ClientConfig:
        return ClientConfig.of(first_set(environ, "COHERE_BASE_URL", "CO_API_URL") or DEFAULT_BASE_URL,
                               first_set(environ, "COHERE_API_KEY", "CO_API_KEY"))

    def build_client(self, config: ClientConfig) -> Clients:
        # We hand the SDK our own httpx client so that we own its connection pool and can close it.
        http = httpx.AsyncClient(timeout=self.timeout)
        client = cohere.AsyncClientV2(api_key=config.secret(), base_url=config.endpoint, timeout=self.timeout,
                                      max_retries=0, httpx_client=http, log_warning_experimental_features=False)
        return client, http

    async def close_client(self, client: Clients) -> None:
        await client[1].aclose()

    async def complete(self, request: ChatRequest) -> ChatResult:
        client, params = (await self._client(request))[0], to_params(request)
        try:
            # The attempt's `traceparent` goes with the request (nothing when tracing is off).
            traced = tracing.http_kwargs("request_options", "additional_headers")
            return to_result(await client.chat(**params, **traced))
        except Exception as exc:
            raise errors.classify(exc, ERRORS) from exc

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        client, params = (await self._client(request))[0], to_params(request)
        state = _StreamState()
        try:
            # aclosing: closing our generator must close the SDK's (and its HTTP response) at once.
            traced = tracing.http_kwargs("request_options", "additional_headers")
            async with contextlib.aclosing(client.chat_stream(**params, **traced)) as events:
                async for event in events:
                    delta = state.apply(event)
                    if delta:
                        yield TextDelta(delta)
            result = state.result()
        except Exception as exc:
            raise errors.classify(exc, ERRORS, streaming=True) from exc
        yield result


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
