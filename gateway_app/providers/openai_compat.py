"""Chat Completions through the official `openai` SDK: shared by `openai`, `azure` and `local`.

The three differ only in how the client is built (endpoint, key, API version); the request, the answer,
the stream and the errors are the same wire protocol. SDK retries are off: the gateway's retry loop
decides, and a second hidden loop would multiply the delays.
"""

from __future__ import annotations

import json
from typing import Any, AsyncIterator

import openai

from gateway_app.providers import errors
from gateway_app.providers.base import (
    ChatRequest,
    ChatResult,
    ClientCache,
    ProviderError,
    StreamEvent,
    TextDelta,
    TokenUsage,
)


def to_messages(request: ChatRequest) -> list[dict[str, str]]:
    system = [{"role": "system", "content": request.system_prompt}] if request.system_prompt else []
    return system + [{"role": m.role, "content": m.content} for m in request.messages]


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


def to_result(completion: Any) -> ChatResult:
    """The SDK builds response objects without validating them: check the fields we rely on."""
    choices = getattr(completion, "choices", None)
    if not isinstance(choices, list) or not choices or getattr(choices[0], "message", None) is None:
        raise errors.bad_response(f"no choices in {_preview(completion)}")
    choice = choices[0]
    text = choice.message.content or ""
    if choice.message.tool_calls:  # a tool call is answered as its JSON, so the caller can act on it
        text = text or json.dumps([call.model_dump() for call in choice.message.tool_calls])
    return ChatResult(
        text=text,
        finish_reason=choice.finish_reason or "stop",
        usage=to_usage(completion.usage),
        request_id=getattr(completion, "_request_id", None) or completion.id,
    )


def _preview(value: Any) -> str:
    text = value.model_dump_json() if hasattr(value, "model_dump_json") else repr(value)
    return text[:200]


def classify(exc: Exception, *, streaming: bool = False) -> ProviderError:
    """The one place where this SDK's exceptions become gateway errors."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, openai.APITimeoutError):
        return errors.timed_out()
    if isinstance(exc, openai.APIStatusError):
        return errors.from_status(exc.status_code, exc.message, exc.response.headers)
    if isinstance(exc, openai.APIConnectionError):
        return errors.connection_failed(exc)
    if isinstance(exc, openai.APIResponseValidationError) or isinstance(exc, ValueError):
        return errors.bad_response(str(exc)[:200])
    if streaming:  # an `error` object mid-stream, or the transport dropped while reading the body
        return errors.stream_interrupted(f"{type(exc).__name__}: {exc}"[:300])
    return errors.unexpected(exc)


async def complete(client: openai.AsyncOpenAI, request: ChatRequest) -> ChatResult:
    try:
        completion = await client.chat.completions.create(**to_params(request, stream=False))
    except Exception as exc:
        raise classify(exc) from exc
    return to_result(completion)


async def stream(client: openai.AsyncOpenAI, request: ChatRequest, *, usage_required: bool = True
                 ) -> AsyncIterator[StreamEvent]:
    """Deltas, then one ChatResult once the stream has finished properly (finish reason and usage seen)."""
    finish, usage, request_id, parts = None, None, None, []
    try:
        response = await client.chat.completions.create(**to_params(request, stream=True))
        async with response:
            async for chunk in response:
                request_id = request_id or getattr(chunk, "id", None)
                if getattr(chunk, "usage", None) is not None:
                    usage = chunk.usage
                for choice in chunk.choices or ():
                    if choice.delta is not None and choice.delta.content:
                        parts.append(choice.delta.content)
                        yield TextDelta(choice.delta.content)
                    finish = choice.finish_reason or finish
    except Exception as exc:
        raise classify(exc, streaming=True) from exc
    if finish is None:
        raise errors.stream_interrupted("no finish_reason before the stream ended")
    if usage is None and usage_required:
        raise errors.stream_interrupted("no usage chunk before the stream ended")
    yield ChatResult(text="".join(parts), finish_reason=finish, usage=to_usage(usage), request_id=request_id)


def client_cache() -> ClientCache[openai.AsyncOpenAI]:
    async def close(client: openai.AsyncOpenAI) -> None:
        await client.close()

    return ClientCache(close)
