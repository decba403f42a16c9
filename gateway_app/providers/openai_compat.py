"""Chat Completions through the official `openai` SDK: shared by `openai`, `azure` and `local`.

The three differ only in how the client is built (endpoint, key, API version); the request, the answer,
the stream and the errors are the same wire protocol. SDK retries are off: the gateway's retry loop
decides, and a second hidden loop would multiply the delays.
"""

from __future__ import annotations

import contextlib
from typing import Any, AsyncIterator

import openai

from gateway_app.observability import tracing
from gateway_app.providers import errors, openai_audio
from gateway_app.providers.base import (
    ChatMessage,
    ChatRequest,
    ChatResult,
    Speech,
    StreamEvent,
    TextDelta,
    TokenUsage,
    ToolCall,
    ToolCallParts,
    Transcript,
)
from gateway_app.providers.clients import SDKProvider


def to_messages(request: ChatRequest) -> list[dict[str, Any]]:
    system = [{"role": "system", "content": request.system_prompt}] if request.system_prompt else []
    return system + [to_message(m) for m in request.messages]


def to_message(message: ChatMessage) -> dict[str, Any]:
    if message.role == "tool":
        # Chat Completions has no error flag on a tool result: the model reads the failure from the text.
        content = f"error: {message.content}" if message.is_error else message.content
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": content}
    if message.role == "assistant" and message.tool_calls:
        # `content` is null, not "", when the model only asked for tools (as the API itself returns it).
        return {"role": "assistant", "content": message.content or None,
                "tool_calls": [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                               for c in message.tool_calls]}
    return {"role": message.role, "content": message.content}


def to_response_format(request: ChatRequest) -> dict[str, Any] | None:
    """JSON mode: structured outputs when there is a schema, else plain JSON mode. `strict` stays off:
    strict mode refuses most ordinary schemas (every property required, no additionalProperties), and
    the gateway validates the reply against the schema anyway."""
    if request.response_format != "json":
        return None
    # Without a schema: the API refuses json_object unless some message mentions JSON, which the
    # gateway's JSON instruction in the system prompt does.
    if request.json_schema is not None:
        return {"type": "json_schema", "json_schema": {"name": "reply", "schema": request.json_schema, "strict": False}}
    return {"type": "json_object"}


def to_params(request: ChatRequest, *, stream: bool) -> dict[str, Any]:
    params: dict[str, Any] = {
        "model": request.model,
        "messages": to_messages(request),
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
    }
    if request.stop:
        params["stop"] = list(request.stop)
    if request.tools:
        params["tools"] = list(request.tools)
    for name in ("frequency_penalty", "presence_penalty"):  # sent only when set (a moderation signal's steering)
        if getattr(request, name) is not None:
            params[name] = getattr(request, name)
    response_format = to_response_format(request)
    if response_format is not None:
        params["response_format"] = response_format
    if request.n > 1 and not stream:
        params["n"] = request.n
    if stream:
        # Without include_usage a stream carries no token counts, and streamed calls could not be billed.
        params.update(stream=True, stream_options={"include_usage": True})
    return params


def to_usage(usage: Any) -> TokenUsage:
    if usage is None:
        return TokenUsage(0, 0)
    prompt_details = getattr(usage, "prompt_tokens_details", None)
    completion_details = getattr(usage, "completion_tokens_details", None)
    return TokenUsage(
        input_tokens=usage.prompt_tokens or 0,
        output_tokens=usage.completion_tokens or 0,
        cached_input_tokens=(getattr(prompt_details, "cached_tokens", 0) or 0) if prompt_details else 0,
        reasoning_tokens=(getattr(completion_details, "reasoning_tokens", 0) or 0) if completion_details else 0,
    )


def to_tool_calls(calls: Any) -> tuple[ToolCall, ...]:
    return tuple(ToolCall(str(c.id), c.function.name, c.function.arguments or "{}") for c in calls or ())


def to_result(completion: Any, *, usage_required: bool = True) -> ChatResult:
    """The SDK builds response objects without validating them: check every field we rely on."""
    choices = getattr(completion, "choices", None)
    if not isinstance(choices, list) or not choices or getattr(choices[0], "message", None) is None:
        raise errors.bad_response(f"no choices in {_preview(completion)}")
    if completion.usage is None and usage_required:
        raise errors.bad_response("no usage")
    first, *others = (_choice(choice, completion) for choice in choices)
    return ChatResult(text=first[0], finish_reason=first[1], usage=to_usage(completion.usage),
                      request_id=str(getattr(completion, "_request_id", None) or completion.id),
                      tool_calls=first[2], model=_model(completion),
                      # the call's usage covers every choice: the others carry none of their own
                      alternatives=tuple(ChatResult(text=t, finish_reason=f, usage=TokenUsage(0, 0), tool_calls=c)
                                         for t, f, c in others))


def _choice(choice: Any, completion: Any) -> tuple[str, str, tuple[ToolCall, ...]]:
    if getattr(choice, "message", None) is None:
        raise errors.bad_response(f"a choice without a message in {_preview(completion)}")
    if not choice.finish_reason:
        raise errors.bad_response("no finish_reason")
    text, finish = choice.message.content, choice.finish_reason
    tool_calls = to_tool_calls(choice.message.tool_calls)
    if text is None and getattr(choice.message, "refusal", None):
        text, finish = choice.message.refusal, "content_filter"
    if not isinstance(text, str) and not (text is None and tool_calls):
        raise errors.bad_response(f"no text and no tool calls in {_preview(completion)}")
    return text or "", finish, tool_calls


def _model(answer: Any) -> str | None:
    model = getattr(answer, "model", None)
    return model if isinstance(model, str) and model else None


def _preview(value: Any) -> str:
    text = value.model_dump_json() if hasattr(value, "model_dump_json") else repr(value)
    return text[:200]


# openai's exceptions; `anthropic` has the same shape (both SDKs are generated from one template).
ERRORS = errors.ErrorTable(
    status=(openai.APIStatusError,),
    read_status=lambda exc: (exc.status_code, exc.message, exc.response.headers),
    timeout=(openai.APITimeoutError,),
    connection=(openai.APIConnectionError,),
    validation=(openai.APIResponseValidationError,),
    breaks_stream=(openai.APIConnectionError, openai.APITimeoutError),
)


async def complete(client: openai.AsyncOpenAI, request: ChatRequest, *, usage_required: bool = True) -> ChatResult:
    params = to_params(request, stream=False)
    try:
        # The attempt's `traceparent` goes with the request (nothing when tracing is off).
        completion = await client.chat.completions.create(**params, **tracing.http_kwargs("extra_headers"))
        return to_result(completion, usage_required=usage_required)
    except Exception as exc:
        raise errors.classify(exc, ERRORS) from exc


async def stream(client: openai.AsyncOpenAI, request: ChatRequest, *, usage_required: bool = True
                 ) -> AsyncIterator[StreamEvent]:
    """Deltas, then one ChatResult once the stream has finished properly (finish reason and usage seen)."""
    params = to_params(request, stream=True)
    finish, usage, request_id, parts, tools = None, None, None, [], ToolCallParts()
    started, model = False, None
    try:
        response = await client.chat.completions.create(**params, **tracing.http_kwargs("extra_headers"))
        started = True
        async with response:
            async for chunk in response:
                request_id = request_id or getattr(chunk, "id", None)
                model = model or _model(chunk)
                if getattr(chunk, "usage", None) is not None:
                    usage = chunk.usage
                for choice in chunk.choices or ():
                    delta = choice.delta
                    if delta is not None and delta.content:
                        parts.append(delta.content)
                        yield TextDelta(delta.content)
                    for call in (delta.tool_calls or ()) if delta is not None else ():
                        function = call.function
                        tools.add(call.index, id=call.id, name=function.name if function else None,
                                  arguments=function.arguments if function else None)
                    finish = choice.finish_reason or finish
    except Exception as exc:
        raise errors.classify(exc, ERRORS, streaming=started) from exc
    if finish is None:
        raise errors.stream_interrupted("no finish_reason before the stream ended")
    if usage is None and usage_required:
        raise errors.stream_interrupted("no usage chunk before the stream ended")
    yield ChatResult(text="".join(parts), finish_reason=finish, usage=to_usage(usage),
                     request_id=str(request_id) if request_id else None, tool_calls=tools.result(), model=model)


class CompatibleProvider(SDKProvider[openai.AsyncOpenAI]):
    """Base of the providers that speak Chat Completions; a subclass says where, with which key."""

    usage_required = True  # False for servers that may not report usage (billed 0 then)
    supports_n = True  # several answers from one call (`n`); a server that ignores it gives one (ranking draws more)
    # What the SDK imports at its first `client.chat.completions.create` (see registry.preload).
    warm_modules = ("openai.resources.chat.chat", "openai.resources.chat.completions.completions",
                    "openai.lib.streaming.chat", "openai.pagination",
                    # ... and at its first `client.audio` call (voice: providers.openai_audio)
                    "openai.resources.audio.audio", "openai.resources.audio.transcriptions",
                    "openai.resources.audio.speech")

    async def close_client(self, client: openai.AsyncOpenAI) -> None:
        await client.close()

    async def complete(self, request: ChatRequest) -> ChatResult:
        return await complete(await self._client(request), request, usage_required=self.usage_required)

    async def transcribe(self, request: ChatRequest, audio: bytes, audio_format: str, model: str,
                         timeout: float) -> Transcript:
        """Speech to text (`providers.openai_audio`), with the client the agent's chat calls use."""
        return await openai_audio.transcribe(await self._client(request), audio, audio_format, model, timeout, ERRORS)

    async def speak(self, request: ChatRequest, text: str, model: str, voice: str, audio_format: str,
                    timeout: float) -> Speech:
        """Text to speech (`providers.openai_audio`), with the client the agent's chat calls use."""
        return await openai_audio.speak(await self._client(request), text, model, voice, audio_format, timeout,
                                        ERRORS)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        # aclosing: closing this generator must close the SDK's stream (and its HTTP response) at once.
        async with contextlib.aclosing(stream(await self._client(request), request,
                                              usage_required=self.usage_required)) as events:
            async for event in events:
                yield event
