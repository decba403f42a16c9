"""`anthropic`: Anthropic Messages API.

`ANTHROPIC_API_KEY` (required), `ANTHROPIC_BASE_URL` (optional): the SDK's own variables. The system
prompt goes in the top-level `system` field and `max_tokens` (required by the API) is the profile's. The
profile's `temperature` is not sent: the current Messages API and SDK have no such parameter.
"""

from __future__ import annotations

import json
from typing import Any, AsyncIterator, Iterable, Mapping

import anthropic

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
from gateway_app.providers.clients import ClientConfig, SDKProvider, sdk_http_client

DEFAULT_BASE_URL = "https://api.anthropic.com"


def to_params(request: ChatRequest) -> dict[str, Any]:
    # JSON mode sends nothing here: the Messages API has no response_format, so the gateway's JSON
    # instruction in the system prompt (and its validation of the reply) is all there is.
    params: dict[str, Any] = {
        "model": request.model,
        "max_tokens": request.max_tokens,
        "messages": to_messages(request.messages),
    }
    if request.system_prompt:
        params["system"] = request.system_prompt
    if request.stop:
        params["stop_sequences"] = list(request.stop)
    if request.tools:
        params["tools"] = [to_tool(tool) for tool in request.tools]
    return params


def to_messages(messages: Iterable[ChatMessage]) -> list[dict[str, Any]]:
    """The API wants user and assistant turns alternating, and tool results in a user turn: messages
    that land on the same role as the one before (tool results, then the user's next words) are merged
    into one message, blocks in order. A turn that is one text block is sent as a plain string."""
    turns: list[tuple[str, list[dict[str, Any]]]] = []
    for message in messages:
        role = "assistant" if message.role == "assistant" else "user"  # tool results travel in a user turn
        blocks = to_blocks(message)
        if not blocks:
            continue  # an empty text block is refused; a message with nothing to say is left out
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((role, blocks))
    return [{"role": role, "content": _compact(blocks)} for role, blocks in turns]


def to_blocks(message: ChatMessage) -> list[dict[str, Any]]:
    if message.role == "tool":
        return [{"type": "tool_result", "tool_use_id": message.tool_call_id, "content": message.content,
                 "is_error": message.is_error}]
    blocks: list[dict[str, Any]] = [{"type": "text", "text": message.content}] if message.content else []
    if message.role == "assistant":
        blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": _input(c.arguments)}
                   for c in message.tool_calls]
    return blocks


def _input(arguments: str) -> dict[str, Any]:
    """`input` must be an object; arguments a model got wrong are sent as {} rather than refused by the API."""
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _compact(blocks: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    if len(blocks) == 1 and blocks[0]["type"] == "text":
        return blocks[0]["text"]
    return blocks


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


def _count(value: Any, name: str) -> int:
    if not isinstance(value, int):
        raise errors.bad_response(f"usage.{name} is {value!r}")
    return value


def to_result(message: Any) -> ChatResult:
    """The SDK builds the message without validating it: check every field we rely on."""
    content = getattr(message, "content", None)
    if getattr(message, "type", None) != "message" or not isinstance(content, list):
        raise errors.bad_response(f"not a message: {str(getattr(message, 'type', message))[:120]}")
    if not message.stop_reason or message.usage is None:
        raise errors.bad_response("no stop_reason or usage")
    _count(message.usage.input_tokens, "input_tokens")
    _count(message.usage.output_tokens, "output_tokens")
    texts, calls = [], []
    for block in content:
        kind = getattr(block, "type", None)
        if kind == "text":
            if not isinstance(block.text, str):
                raise errors.bad_response("a text block without text")
            texts.append(block.text)
        elif kind == "tool_use":
            calls.append(ToolCall(str(block.id), block.name, json.dumps(block.input)))
    return ChatResult(
        text="".join(texts),
        finish_reason=finish.normalize(message.stop_reason),
        usage=to_usage(message.usage),
        request_id=str(getattr(message, "_request_id", None) or message.id),
        tool_calls=tuple(calls),
        model=message.model if isinstance(getattr(message, "model", None), str) else None,
    )


ERRORS = errors.ErrorTable(
    status=(anthropic.APIStatusError,),
    read_status=lambda exc: (exc.status_code, exc.message, exc.response.headers),
    timeout=(anthropic.APITimeoutError,),
    connection=(anthropic.APIConnectionError,),
    validation=(anthropic.APIResponseValidationError,),
    breaks_stream=(anthropic.APIConnectionError, anthropic.APITimeoutError),
    # A status below 400 is an `error` event inside a 200 stream (e.g. overloaded_error).
    no_error_status=lambda exc: errors.stream_interrupted(exc.message[:300]),
)


class AnthropicProvider(SDKProvider[anthropic.AsyncAnthropic]):
    name = "anthropic"
    warm_modules = ("anthropic.resources.messages",)  # imported by the SDK at the first `client.messages`
    missing_key = "ANTHROPIC_API_KEY is not set"

    def read_config(self, environ: Mapping[str, str]) -> ClientConfig:
        return ClientConfig.of(environ.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL, environ.get("ANTHROPIC_API_KEY"))

    def build_client(self, config: ClientConfig) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(api_key=config.secret(), base_url=config.endpoint, max_retries=0,
                                        timeout=self.timeout,
                                        http_client=sdk_http_client(anthropic, self.http_transport, timeout=self.timeout))

    async def close_client(self, client: anthropic.AsyncAnthropic) -> None:
        await client.close()

    async def complete(self, request: ChatRequest) -> ChatResult:
        client, params = await self._client(request), to_params(request)
        try:
            # The attempt's `traceparent` goes with the request (nothing when tracing is off).
            return to_result(await client.messages.create(**params, **tracing.http_kwargs("extra_headers")))
        except Exception as exc:
            raise errors.classify(exc, ERRORS) from exc

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        client, params = await self._client(request), to_params(request)
        state = _StreamState()
        started = False
        try:
            events = await client.messages.create(**params, stream=True, **tracing.http_kwargs("extra_headers"))
            started = True
            async with events:
                async for event in events:
                    delta = state.apply(event)
                    if delta:
                        yield TextDelta(delta)
            result = state.result()
        except Exception as exc:
            raise errors.classify(exc, ERRORS, streaming=started) from exc
        yield result


class _StreamState:
    """Folds the Messages stream's events (message_start ... message_stop) into one result."""

    def __init__(self) -> None:
        self.message_id: str | None = None
        self.model: str | None = None
        self.usage: Any = None
        self.output_tokens = 0
        self.stop_reason: str | None = None
        self.parts: list[str] = []
        self.tools = ToolCallParts()
        self.stopped = False

    def apply(self, event: Any) -> str:
        kind = getattr(event, "type", None)
        if kind == "message_start":
            self.message_id, self.usage = event.message.id, event.message.usage
            self.model = event.message.model if isinstance(getattr(event.message, "model", None), str) else None
        elif kind == "content_block_start" and getattr(event.content_block, "type", None) == "tool_use":
            self.tools.add(event.index, id=event.content_block.id, name=event.content_block.name)
        elif kind == "content_block_delta":
            return self._delta(event)
        elif kind == "message_delta":
            self.stop_reason = event.delta.stop_reason or self.stop_reason
            self.output_tokens = event.usage.output_tokens  # cumulative, per the API reference
        elif kind == "message_stop":
            self.stopped = True
        return ""

    def _delta(self, event: Any) -> str:
        kind = getattr(event.delta, "type", None)
        if kind == "text_delta":
            self.parts.append(event.delta.text)
            return event.delta.text
        if kind == "input_json_delta":
            self.tools.add(event.index, arguments=event.delta.partial_json)
        return ""

    def result(self) -> ChatResult:
        if not self.stopped or self.usage is None:
            raise errors.stream_interrupted("no message_stop before the stream ended")
        if not self.stop_reason:
            raise errors.stream_interrupted("no stop_reason in the stream")
        start = to_usage(self.usage)
        usage = TokenUsage(start.input_tokens, _count(self.output_tokens, "output_tokens"), start.cached_input_tokens)
        return ChatResult("".join(self.parts), finish.normalize(self.stop_reason), usage,
                          str(self.message_id) if self.message_id else None, self.tools.result(), self.model)
