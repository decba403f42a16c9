"""The provider interface: one normalized request in, one normalized result (or stream) out, typed errors.

A provider module turns the normalized request into its SDK's call, turns the SDK's answer into a
`ChatResult`, and turns every SDK exception into a `ProviderError` (its `errors.ErrorTable` for the shared
`errors.classify`). Nothing outside the module knows which SDK it uses.

Keys and endpoints: a provider that calls an SDK (`clients.SDKProvider`) reads its environment once, when
it is constructed, into a frozen `clients.ClientConfig` (endpoint, key as a `SecretStr` so that no repr or
log line shows it, SDK extras). Per call, `config_for(request) -> ClientConfig` says which configuration
this request's client is built from, and the provider's client cache is keyed on that answer. Today it is
the environment's, changed only by what legitimately varies per request (the local provider's
`options.base_url`, checked against the allowed hosts; Azure's deployment goes into the path, not the
client). A per-agent credential is a `config_for` that returns the agent's key and endpoint instead:
one client per distinct credential, nothing else changes. A missing key or endpoint raises
`ProviderNotConfigured` in the call that needs it, never at construction: the worker starts without any
provider keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Protocol, runtime_checkable

from pydantic import SecretStr

from gateway_app.contract.events import ErrorCode
from gateway_app.errors import GatewayError


@dataclass(frozen=True)
class ToolCall:
    """A function call the model asks for; `arguments` is a JSON object as text (as OpenAI sends it)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ChatMessage:
    """One message of the conversation the model sees, in the gateway's normal form; each provider module
    renders it in its own wire form (OpenAI `tool` messages, Anthropic `tool_use` / `tool_result`
    blocks, Cohere v2 tool messages)."""

    role: str  # "user" | "assistant" | "tool"
    content: str
    tool_calls: tuple[ToolCall, ...] = ()  # assistant: the functions it asked for (answered right after)
    tool_call_id: str | None = None        # tool: the call this result answers
    is_error: bool = False                 # tool: the tool failed; `content` says how


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
    # "text" (no constraint) or "json": the provider's native JSON mode where it has one (with the
    # schema, where it takes one); the gateway validates the reply either way.
    # Discourage repeating tokens (OpenAI-style, -2..2), where the provider has them; None: not sent.
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    response_format: str = "text"
    json_schema: dict[str, Any] | None = None
    # Answers wanted from this one call (ranking), for providers that can give several (`supports_n`);
    # the extra ones come back as the result's `alternatives`.
    n: int = 1
    # The agent's own key for this target (resolved from its reference), and during a rotation the key
    # tried once after a 401. None: the provider's key from the environment. Never printed.
    credential: SecretStr | None = field(default=None, repr=False, compare=False)
    secondary_credential: SecretStr | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Transcript:
    """What a transcription call heard: the text, and the audio's length when the answer says it."""

    text: str
    duration: float | None = None  # seconds (verbose_json's `duration`, or the usage's seconds)
    language: str | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class Speech:
    """A speech call's answer: the audio file's bytes, in the format asked for."""

    audio: bytes
    format: str
    request_id: str | None = None


@dataclass(frozen=True)
class TokenUsage:
    input_tokens: int               # all prompt tokens, cached ones included
    output_tokens: int              # all completion tokens, reasoning ones included
    cached_input_tokens: int = 0    # of input_tokens, served from the provider's prompt cache
    reasoning_tokens: int = 0       # of output_tokens, spent on hidden reasoning




@dataclass(frozen=True)
class ChatResult:
    text: str
    finish_reason: str
    usage: TokenUsage
    request_id: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    model: str | None = None  # the model that answered, as the provider names it (None: not reported)
    # With `ChatRequest.n` > 1: the other answers of the same call (their tokens are in this one's usage).
    alternatives: tuple["ChatResult", ...] = ()


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


class ProviderError(GatewayError):
    """A failed call, classified once by the adapter that saw the foreign exception. `status` is the
    provider's HTTP status, if it answered with one (the reply status is `error`)."""

    def __init__(
        self, code: ErrorCode, message: str, *, retriable: bool, status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(code, message)
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


@runtime_checkable
class VoiceProvider(Protocol):
    """A provider with speech endpoints (the OpenAI-compatible ones). `request` carries only what picks the
    client (its credential, options such as a base URL); `model` is the audio model."""

    async def transcribe(self, request: ChatRequest, audio: bytes, audio_format: str, model: str,
                         timeout: float) -> Transcript: ...

    async def speak(self, request: ChatRequest, text: str, model: str, voice: str, audio_format: str,
                    timeout: float) -> Speech: ...
