"""The provider interface: one normalized request in, one normalized result out, typed errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway_app.contract.events import ErrorCode


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "user" | "assistant"
    content: str


@dataclass(frozen=True)
class ChatRequest:
    model: str
    system_prompt: str
    messages: tuple[ChatMessage, ...]
    temperature: float
    max_tokens: int
    stop: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TokenUsage:
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class ChatResult:
    text: str
    finish_reason: str
    usage: TokenUsage
    request_id: str | None = None


class ProviderError(Exception):
    """A failed call, classified once by the adapter that saw the foreign exception."""

    def __init__(
        self, code: ErrorCode, message: str, *, retriable: bool, status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.retriable = retriable
        self.status = status
        self.retry_after = retry_after  # seconds the provider asked us to wait (Retry-After), if any


class ProviderNotConfigured(ProviderError):
    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.PROVIDER_NOT_CONFIGURED, message, retriable=False)


class Provider(Protocol):
    """What every provider module implements."""

    name: str

    async def complete(self, request: ChatRequest) -> ChatResult: ...

    async def aclose(self) -> None: ...
