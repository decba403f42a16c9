"""The provider interface: one normalized request in, one normalized result (or stream) out, typed errors.

A provider module turns the normalized request into its SDK's call, turns the SDK's answer into a
`ChatResult`, and turns every SDK exception into a `ProviderError` (see `errors`). Nothing outside the
module knows which SDK it uses.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable, Generic, Hashable, Protocol, TypeVar

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
    # Tool definitions in the OpenAI function-tool shape ({"type": "function", "function": {...}}).
    tools: tuple[dict[str, Any], ...] = ()
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TokenUsage:
    input_tokens: int               # all prompt tokens, cached ones included
    output_tokens: int              # all completion tokens, reasoning ones included
    cached_input_tokens: int = 0    # of input_tokens, served from the provider's prompt cache
    reasoning_tokens: int = 0       # of output_tokens, spent on hidden reasoning


@dataclass(frozen=True)
class ToolCall:
    """A function call the model asks for; `arguments` is a JSON object as text (as OpenAI sends it)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ChatResult:
    text: str
    finish_reason: str
    usage: TokenUsage
    request_id: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()


class ToolCallParts:
    """Accumulates a streamed tool call's pieces by their index in the answer."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, str]] = {}

    def add(self, index: int, *, id: str | None = None, name: str | None = None, arguments: str | None = None) -> None:
        call = self._calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
        call["id"] = id or call["id"]
        call["name"] = name or call["name"]
        call["arguments"] += arguments or ""

    def result(self) -> tuple[ToolCall, ...]:
        return tuple(ToolCall(c["id"], c["name"], c["arguments"] or "{}") for _, c in sorted(self._calls.items()))


@dataclass(frozen=True)
class TextDelta:
    """A piece of a streamed answer, in order."""

    text: str


# A stream yields text deltas and ends with exactly one ChatResult (the provider's terminal event).
StreamEvent = TextDelta | ChatResult


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

    @property
    def endpoint_failure(self) -> bool:
        """Does this failure say the endpoint is unhealthy (counts for its circuit breaker)?"""
        return self.code in (ErrorCode.PROVIDER_UNAVAILABLE, ErrorCode.PROVIDER_TIMEOUT,
                             ErrorCode.PROVIDER_BAD_RESPONSE, ErrorCode.PROVIDER_STREAM_INTERRUPTED)


class ProviderNotConfigured(ProviderError):
    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.PROVIDER_NOT_CONFIGURED, message, retriable=False)


class Provider(Protocol):
    """What every provider module implements."""

    name: str

    def endpoint(self, request: ChatRequest) -> str:
        """Where this request goes (base URL); raises ProviderNotConfigured when it cannot go anywhere."""

    async def complete(self, request: ChatRequest) -> ChatResult: ...

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]: ...

    async def aclose(self) -> None: ...


C = TypeVar("C")


class ClientCache(Generic[C]):
    """SDK clients, one per (endpoint, key), created on first use and reused (pooled connections).

    A client is built in a thread: loading CA certificates and setting up a connection pool takes
    0.1-1 s of CPU (measured: openai up to 0.3 s, cohere up to 1.2 s), which on the event loop would
    stall every call in flight. Concurrent first calls
    wait for the same build; a build that fails is tried again by the next call.
    Bounded: past `max_clients` distinct endpoints a new one is refused rather than another pool opened
    (profiles may choose endpoints for some providers).
    """

    def __init__(self, close: Callable[[C], Awaitable[None]], max_clients: int = 32) -> None:
        self._clients: dict[Hashable, C] = {}
        self._building: dict[Hashable, asyncio.Future[C]] = {}
        self._close = close
        self.max_clients = max_clients

    async def get(self, key: Hashable, create: Callable[[], C]) -> C:
        client = self._clients.get(key)
        if client is not None:
            return client
        building = self._building.get(key)
        if building is None:
            if len(self._clients) + len(self._building) >= self.max_clients:
                raise ProviderNotConfigured(f"already {self.max_clients} distinct endpoints in use; refusing another")
            building = self._building[key] = asyncio.ensure_future(asyncio.to_thread(create))
            building.add_done_callback(lambda done: self._built(key, done))
        # shield: a caller cancelled while it waits must not cancel the build the others wait for.
        return await asyncio.shield(building)

    def _built(self, key: Hashable, done: asyncio.Future[C]) -> None:
        del self._building[key]
        if not done.cancelled() and done.exception() is None:
            self._clients[key] = done.result()

    def __len__(self) -> int:
        return len(self._clients)

    async def aclose(self) -> None:
        if self._building:
            await asyncio.gather(*self._building.values(), return_exceptions=True)
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await self._close(client)
