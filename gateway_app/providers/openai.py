"""`openai`: Chat Completions through the official async SDK.

Key from `OPENAI_API_KEY`, endpoint from `OPENAI_BASE_URL` (the SDK's own variables). The SDK's retries
are off: the gateway decides about retries, and a second hidden retry loop would double the delays.
"""

from __future__ import annotations

import os
import time

import openai

from gateway_app.contract.events import ErrorCode
from gateway_app.resilience.retry import parse_retry_after
from gateway_app.providers.base import (
    ChatRequest,
    ChatResult,
    ProviderError,
    ProviderNotConfigured,
    TokenUsage,
)

RETRIABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
DEFAULT_TIMEOUT_SECONDS = 60.0


def to_messages(request: ChatRequest) -> list[dict[str, str]]:
    system = [{"role": "system", "content": request.system_prompt}] if request.system_prompt else []
    return system + [{"role": m.role, "content": m.content} for m in request.messages]


def to_result(completion: openai.types.chat.ChatCompletion) -> ChatResult:
    choice = completion.choices[0]
    usage = completion.usage
    tokens = TokenUsage(
        input_tokens=usage.prompt_tokens if usage else 0,
        output_tokens=usage.completion_tokens if usage else 0,
    )
    return ChatResult(
        text=choice.message.content or "",
        finish_reason=choice.finish_reason or "stop",
        usage=tokens,
        request_id=getattr(completion, "_request_id", None) or completion.id,
    )


def classify(exc: openai.OpenAIError) -> ProviderError:
    """The one place where the SDK's exceptions become gateway errors."""
    if isinstance(exc, openai.APITimeoutError):
        return ProviderError(ErrorCode.PROVIDER_TIMEOUT, "provider call timed out", retriable=True)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        message = f"provider answered HTTP {status}: {exc.message}"
        retry_after = parse_retry_after(exc.response.headers, time.time())
        return ProviderError(ErrorCode.PROVIDER_ERROR, message, retriable=status in RETRIABLE_STATUS, status=status,
                             retry_after=retry_after)
    if isinstance(exc, openai.APIConnectionError):
        return ProviderError(ErrorCode.PROVIDER_ERROR, f"connection failed: {exc}", retriable=True)
    return ProviderError(ErrorCode.PROVIDER_ERROR, f"provider call failed: {exc}", retriable=False)


class OpenAIProvider:
    name = "openai"

    def __init__(self) -> None:
        self._client: openai.AsyncOpenAI | None = None

    def _get_client(self) -> openai.AsyncOpenAI:
        if self._client is None:
            key = os.environ.get("OPENAI_API_KEY")
            if not key:
                raise ProviderNotConfigured("OPENAI_API_KEY is not set")
            self._client = openai.AsyncOpenAI(
                api_key=key,
                base_url=os.environ.get("OPENAI_BASE_URL") or None,
                max_retries=0,
                timeout=DEFAULT_TIMEOUT_SECONDS,
            )
        return self._client

    async def complete(self, request: ChatRequest) -> ChatResult:
        client = self._get_client()
        try:
            completion = await client.chat.completions.create(
                model=request.model,
                messages=to_messages(request),
                temperature=request.temperature,
                max_tokens=request.max_tokens,
                stop=list(request.stop) or None,
            )
        except openai.OpenAIError as exc:
            raise classify(exc) from exc
        return to_result(completion)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
