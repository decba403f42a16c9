"""`anthropic`: Anthropic Messages API.

`ANTHROPIC_API_KEY` (required), `ANTHROPIC_BASE_URL` (optional): the SDK's own variables. The system
prompt goes in the top-level `system` field and `max_tokens` (required by the API) is the profile's. The
profile's `temperature` is not sent: the current Messages API and SDK have no such parameter.
"""

from __future__ import annotations

import json
import os
from typing import Any, AsyncIterator

import anthropic

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
)

DEFAULT_BASE_URL = "https://api.anthropic.com"


def to_params(request: ChatRequest) -> dict[str, Any]:
    params: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens,
        "messages": [{"role": m.role, "content": m.content} for m in request.messages],
    }
    if request.system_prompt:
        params["system"] = request.system_prompt
    if request.stop:
        params["stop_sequences"] = list(request.stop)
    if request.tools:
        params["tools"] = [to_tool(tool) for tool in request.tools]
    return params


def to_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """OpenAI function-tool shape -> Anthropic tool shape."""
    function = tool.get("function", tool)
    return {"name": function["name"], "description": function.get("description", ""),
            "input_schema": function.get("parameters") or {"type": "object", "properties": {}}}


def to_usage(usage: Any) -> TokenUsage:
    """Anthropic counts cache reads and writes apart from `input_tokens`; the normal form includes them."""
    if usage is None:
        return TokenUsage(0, 0)
    cached = getattr(usage, "cache_read_input_tokens", None) or 0
    created = getattr(usage, "cache_creation_input_tokens", None) or 0
    return TokenUsage(input_tokens=(usage.input_tokens or 0) + cached + created,
                      output_tokens=usage.output_tokens or 0, cached_input_tokens=cached)


def block_text(block: Any) -> str:
    if getattr(block, "type", None) == "text":
        return block.text
    if getattr(block, "type", None) == "tool_use":
        return json.dumps({"tool": block.name, "id": block.id, "input": block.input})
    return ""


def to_result(message: Any) -> ChatResult:
    content = getattr(message, "content", None)
    if getattr(message, "type", None) != "message" or not isinstance(content, list):
        raise errors.bad_response(f"not a message: {str(getattr(message, 'type', message))[:120]}")
    return ChatResult(
        text="".join(block_text(block) for block in content),
        finish_reason=finish.normalize(message.stop_reason),
        usage=to_usage(message.usage),
        request_id=getattr(message, "_request_id", None) or message.id,
    )


def classify(exc: Exception, *, streaming: bool = False) -> ProviderError:
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, anthropic.APITimeoutError):
        return errors.timed_out()
    if isinstance(exc, anthropic.APIStatusError):
        if exc.status_code < 400:  # an `error` event inside a 200 stream (e.g. overloaded_error)
            return errors.stream_interrupted(exc.message[:300])
        return errors.from_status(exc.status_code, exc.message, exc.response.headers)
    if isinstance(exc, anthropic.APIConnectionError):
        return errors.connection_failed(exc)
    if isinstance(exc, (anthropic.APIResponseValidationError, ValueError)):
        return errors.bad_response(f"{type(exc).__name__}: {exc}"[:300])
    if streaming:
        return errors.stream_interrupted(f"{type(exc).__name__}: {exc}"[:300])
    return errors.unexpected(exc)


class AnthropicProvider:
    name = "anthropic"

    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = timeout

        async def close(client: anthropic.AsyncAnthropic) -> None:
            await client.close()

        self._clients: ClientCache[anthropic.AsyncAnthropic] = ClientCache(close)

    def endpoint(self, request: ChatRequest) -> str:
        return os.environ.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL

    def _client(self, request: ChatRequest) -> anthropic.AsyncAnthropic:
        key = os.environ.get("ANTHROPIC_API_KEY")
        if not key:
            raise ProviderNotConfigured("ANTHROPIC_API_KEY is not set")
        base_url = self.endpoint(request)
        return self._clients.get((base_url, key), lambda: anthropic.AsyncAnthropic(
            api_key=key, base_url=base_url, max_retries=0, timeout=self.timeout))

    async def complete(self, request: ChatRequest) -> ChatResult:
        client = self._client(request)
        try:
            message = await client.messages.create(**to_params(request))
        except Exception as exc:
            raise classify(exc) from exc
        return to_result(message)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        client = self._client(request)
        state = _StreamState()
        try:
            events = await client.messages.create(**to_params(request), stream=True)
            async with events:
                async for event in events:
                    delta = state.apply(event)
                    if delta:
                        yield TextDelta(delta)
        except Exception as exc:
            raise classify(exc, streaming=True) from exc
        yield state.result()

    async def aclose(self) -> None:
        await self._clients.aclose()


class _StreamState:
    """Folds the Messages stream's events (message_start ... message_stop) into one result."""

    def __init__(self) -> None:
        self.message_id: str | None = None
        self.usage: Any = None
        self.output_tokens = 0
        self.stop_reason: str | None = None
        self.parts: list[str] = []
        self.stopped = False

    def apply(self, event: Any) -> str:
        kind = getattr(event, "type", None)
        if kind == "message_start":
            self.message_id, self.usage = event.message.id, event.message.usage
        elif kind == "content_block_delta" and getattr(event.delta, "type", None) == "text_delta":
            self.parts.append(event.delta.text)
            return event.delta.text
        elif kind == "message_delta":
            self.stop_reason = event.delta.stop_reason or self.stop_reason
            self.output_tokens = event.usage.output_tokens  # cumulative, per the API reference
        elif kind == "message_stop":
            self.stopped = True
        return ""

    def result(self) -> ChatResult:
        if not self.stopped or self.usage is None:
            raise errors.stream_interrupted("no message_stop before the stream ended")
        start = to_usage(self.usage)
        usage = TokenUsage(start.input_tokens, self.output_tokens, start.cached_input_tokens)
        return ChatResult("".join(self.parts), finish.normalize(self.stop_reason), usage, self.message_id)
