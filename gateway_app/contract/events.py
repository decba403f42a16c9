"""The wire contract, version 1: every event the gateway reads or writes, in one place (the agent
profile and its parts are in `contract.profile`, re-exported here).

Inputs accept snake_case and camelCase names and ignore unknown fields (the chat platform's services
are TypeScript and evolve independently). Outputs are always snake_case. Fields added since the first
release all have defaults, so the version stays 1. The README's event section is written from these
models; `gateway contract` prints their JSON schemas. A little over 300 lines on purpose: the contract
other services build against is read in one file.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from gateway_app.contract.collaboration import CollaborationHop, CollaborationInfo  # noqa: F401  (re-exported)
from gateway_app.contract.model import CONTRACT_VERSION, _Input, _Output
from gateway_app.contract.moderation import (  # noqa: F401  (re-exported: the contract in one import)
    CheckRule,
    ModerationEvent,
    ModerationInfo,
    ModerationSignal,
    ModerationSpec,
    RankingInfo,
    SentimentInfo,
    SentimentScore,
    Severity,
    SignalKind,
)
from gateway_app.contract.profile import (  # noqa: F401  (re-exported: the contract in one import)
    MAX_CONTEXT_TURNS,
    MAX_FALLBACKS,
    MAX_PROFILE_STAGES,
    AgentProfile,
    BudgetSpec,
    CacheSpec,
    ContextSpec,
    Credentials,
    FallbackTarget,
    FunctionSpec,
    RankingSpec,
    RateLimits,
    ResponseFormat,
    StageRef,
    ToolSpec,
)
from gateway_app.contract.voice import (  # noqa: F401  (re-exported: the contract in one import)
    AUDIO_TOPIC,
    INPUT_FORMATS,
    SPEECH_FORMATS,
    AudioChunk,
    AudioInput,
    AudioRef,
    VoiceSpec,
)


class MessageCreated(_Input):
    """`ai-message-created`: a chat message an AI agent should answer."""

    message_id: str = Field(min_length=1, max_length=256)
    agent_id: str = Field(min_length=1, max_length=256)
    room_id: str = Field(min_length=1, max_length=256)
    user_id: str | None = Field(default=None, max_length=256)
    # Required and not blank, unless `audio` is given: then the transcript is the message's text (it
    # replaces any `content` sent along).
    content: str = ""
    created_at: datetime | None = None
    metadata: dict[str, Any] | None = None
    audio: AudioInput | None = None  # speech instead of text (see docs/voice.md)

    @model_validator(mode="after")
    def _text_or_audio(self) -> "MessageCreated":
        if self.audio is None and not self.content.strip():
            raise ValueError("content is blank" if self.content else "content is required (or audio)")
        return self


MAX_TOOL_RESULTS = 64


class ToolResult(_Input):
    tool_call_id: str = Field(min_length=1, max_length=256)
    content: str = Field(max_length=1_000_000)
    is_error: bool = False  # the tool failed; `content` says how (the model is told it is an error)


class ToolResults(_Input):
    """`ai-tool-results`: what the platform's tools answered to the tool calls of an earlier reply.
    The gateway appends them to the conversation and calls the model again; the answer is a reply to
    this event (`message_id`), which may ask for more tools."""

    message_id: str = Field(min_length=1, max_length=256)  # of this event; the reply's message_id
    reply_to: str = Field(min_length=1, max_length=256)    # the message id whose reply asked for the tools
    agent_id: str = Field(min_length=1, max_length=256)
    room_id: str = Field(min_length=1, max_length=256)
    user_id: str | None = Field(default=None, max_length=256)
    results: list[ToolResult] = Field(min_length=1, max_length=MAX_TOOL_RESULTS)
    created_at: datetime | None = None
    metadata: dict[str, Any] | None = None


class ConversationCleared(_Input):
    """`conversation-cleared`: forget a room's conversation with an agent (only the turns before
    `before`, when given). Takes effect at its place in the agent's stream."""

    agent_id: str = Field(min_length=1, max_length=256)
    room_id: str = Field(min_length=1, max_length=256)
    before: datetime | None = None
    clear_id: str | None = Field(default=None, max_length=256)  # the sender's id for it, echoed in the log
    created_at: datetime | None = None


class AgentProfileDeleted(_Input):
    """`agent-profile-deleted`: later messages for the agent are treated as for an unknown agent."""

    agent_id: str = Field(min_length=1, max_length=256)
    version: int = Field(ge=0)


class ReplyStatus(StrEnum):
    OK = "ok"
    ERROR = "error"
    RATE_LIMITED = "rate_limited"
    AGENT_UNAVAILABLE = "agent_unavailable"
    BLOCKED = "blocked"              # a check stage refused the input or the answer (error.code says which)


class ErrorCode(StrEnum):
    """Stable error codes carried by `error` replies and DLQ records."""

    UNDECODABLE = "undecodable"            # bytes are not UTF-8
    INVALID_JSON = "invalid_json"
    INVALID_EVENT = "invalid_event"        # JSON, but not the contract's shape
    CONTENT_TOO_LONG = "content_too_long"
    METADATA_TOO_LARGE = "metadata_too_large"
    UNKNOWN_PROVIDER = "unknown_provider"
    UNKNOWN_STAGE = "unknown_stage"        # a profile names a stage no installed plugin provides
    INVALID_STAGE_OPTIONS = "invalid_stage_options"  # a stage plugin refused a profile's options for it
    AGENT_UNKNOWN = "agent_unknown"        # no profile arrived within the wait
    AGENT_DISABLED = "agent_disabled"
    BACKLOG_FULL = "backlog_full"          # per-agent deferral backlog overflowed
    EXCEEDS_TPM = "exceeds_tpm"            # one request's estimate is above the agent's TPM
    BUDGET_EXCEEDED = "budget_exceeded"    # the agent's daily or monthly budget is spent, and it names no fallback
    PROVIDER_ERROR = "provider_error"                      # any other provider failure
    PROVIDER_TIMEOUT = "provider_timeout"                  # attempt or first-token timeout
    PROVIDER_NOT_CONFIGURED = "provider_not_configured"    # key/endpoint missing or base URL not allowed
    PROVIDER_RATE_LIMITED = "provider_rate_limited"        # 429 after all retries
    PROVIDER_UNAVAILABLE = "provider_unavailable"          # 5xx, 408, connection refused/reset
    PROVIDER_REJECTED = "provider_rejected"                # 400/404/422: the request itself is refused
    PROVIDER_AUTH_FAILED = "provider_auth_failed"          # 401/403
    PROVIDER_BAD_RESPONSE = "provider_bad_response"        # 2xx that is not a valid answer
    PROVIDER_STREAM_INTERRUPTED = "provider_stream_interrupted"  # stream ended before its terminal event
    CIRCUIT_OPEN = "circuit_open"                          # every target's breaker was open
    # A key sent by value (redacted in the DLQ). An error code's name, not a password:
    PLAINTEXT_SECRET = "plaintext_secret"  # nosec B105
    INVALID_CREDENTIALS_REF = "invalid_credentials_ref"  # a credential reference of no known scheme or shape
    CREDENTIALS_UNAVAILABLE = "credentials_unavailable"  # a reference could not be resolved (fails closed)
    STAGE_FAILED = "stage_failed"          # a `closed` stage raised, hung past its limit or returned garbage
    BLOCKED_BY_STAGE = "blocked_by_stage"  # a check stage blocked the input or the answer (status blocked)
    UNKNOWN_TOOL_CALL = "unknown_tool_call"  # tool results for a call the conversation does not have
    TOOL_CALL_ANSWERED = "tool_call_answered"  # tool results for a call that already has its results
    INVALID_RESPONSE_FORMAT = "invalid_response_format"  # not valid JSON (for its schema), also after a repair
    AGENT_MUTED = "agent_muted"            # an `inappropriate` signal of high severity muted the agent in the room
    # A moderation check blocked the input or the reply (status blocked): one code per check.
    MODERATION_WORDLIST = "moderation_wordlist"
    MODERATION_PII = "moderation_pii"
    MODERATION_REPETITION = "moderation_repetition"
    MODERATION_EMPTY = "moderation_empty"
    MODERATION_REFUSAL = "moderation_refusal"
    MODERATION_TRUNCATED = "moderation_truncated"
    MODERATION_LANGUAGE = "moderation_language"
    MODERATION_TOO_LONG = "moderation_too_long"
    MODERATION_PROVIDER = "moderation_provider"  # the provider's moderation endpoint flagged it
    MODERATION_CHECK_FAILED = "moderation_check_failed"  # a check with fail_mode closed errored or timed out
    # Collaboration (profile `collaborators`): why a consultation was not asked or not answered. They are
    # a hop's `error_code` in the reply's `collaboration`; the asking agent answers without that help.
    COLLABORATOR_TIMEOUT = "collaborator_timeout"  # its collaborator read it after GATEWAY_COLLABORATION_TIMEOUT_SECONDS
    COLLABORATOR_UNKNOWN = "collaborator_unknown"  # the model named an agent the profile does not list
    COLLABORATION_LOOP = "collaboration_loop"      # that agent is already in the chain (no agent consults itself)
    COLLABORATION_DEPTH = "collaboration_depth"    # past GATEWAY_COLLABORATION_MAX_DEPTH hops from the room's agent
    COLLABORATION_ROUNDS = "collaboration_rounds"  # past GATEWAY_COLLABORATION_MAX_ROUNDS rounds for one answer
    COLLABORATION_INVALID_CALL = "collaboration_invalid_call"  # consult_agent arguments without agent_id / question
    # Voice (audio messages): at intake, then in the transcribe stage.
    AUDIO_INVALID = "audio_invalid"          # audio.b64 is not base64, or the audio is empty or not of its format
    AUDIO_TOO_LARGE = "audio_too_large"      # decoded (or fetched) audio above GATEWAY_AUDIO_MAX_BYTES
    AUDIO_URL_NOT_ALLOWED = "audio_url_not_allowed"  # audio.url's host is not on GATEWAY_AUDIO_URL_ALLOWLIST
    AUDIO_FETCH_FAILED = "audio_fetch_failed"  # audio.url answered an error, redirected, timed out or was unreachable
    TRANSCRIPTION_UNAVAILABLE = "transcription_unavailable"  # the agent's provider has no transcription endpoint
    TRANSCRIPTION_FAILED = "transcription_failed"  # the transcription call failed (or heard nothing)
    INTERNAL_ERROR = "internal_error"      # a gateway bug; the record is kept for replay


class ErrorInfo(_Output):
    code: ErrorCode
    message: str


class Usage(_Output):
    input_tokens: int = 0           # all prompt tokens, cached ones included
    output_tokens: int = 0          # all completion tokens, reasoning ones included
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0


class ToolCallOut(_Output):
    id: str
    name: str
    arguments: str  # a JSON object, as text


class StageNote(_Output):
    """What a stage did to a message, when it did more than let it pass."""

    stage: str
    action: Literal["answer", "modify", "replace", "regenerate", "block", "skipped"]
    reason: str | None = None  # the stage's own words; none for `skipped` (a failure's details go to the log)


class MessageReply(_Output):
    """`ai-message-reply` (key = room id): the answer, or why there is none."""

    reply_id: str
    message_id: str
    agent_id: str
    room_id: str
    user_id: str | None
    content: str
    status: ReplyStatus
    error: ErrorInfo | None
    provider: str | None            # the provider that answered (a fallback's, if one did)
    model: str | None
    profile_version: int | None
    usage: Usage
    latency_ms: int
    created_at: datetime
    fallback_index: int | None = None   # 0 = the profile's own provider, n = its n-th fallback
    attempts: int = 0                   # provider calls made for this message
    finish_reason: str | None = None    # stop | length | tool_calls | content_filter | ...
    provider_request_id: str | None = None
    tool_calls: list[ToolCallOut] = Field(default_factory=list)  # functions the model asks the caller to run
    stages: list[StageNote] = Field(default_factory=list)  # stages that answered, changed, blocked or were skipped
    reply_to: str | None = None   # for a reply to tool results: the message whose tool calls they answer
    cache_hit: bool = False       # answered from the response cache, without a provider call
    truncated: bool = False       # cut at `max_reply_chars` (at a sentence boundary)
    moderation: ModerationInfo | None = None  # the signals active for it and the checks that did not pass
    language: str | None = None   # the language the model was asked to answer in (profile `language`)
    sentiment: SentimentInfo | None = None  # profile `post_processing: ["sentiment"]`
    ranking: RankingInfo | None = None      # profile `ranking`: the candidates drawn and the one chosen
    collaboration: CollaborationInfo | None = None  # profile `collaborators`: the agents consulted for it
    transcript: str | None = None  # an audio message: what was heard (the text the agent answered)
    # Profile `voice`: the reply spoken, inline (base64, at most GATEWAY_AUDIO_INLINE_MAX_BYTES) ...
    audio_b64: str | None = None
    audio_format: str | None = None
    audio: AudioRef | None = None  # ... or, larger, in `ai-message-audio` records published before the reply
    contract_version: Literal[1] = CONTRACT_VERSION


class ReplyChunk(_Output):
    """`ai-message-reply-chunks` (key = room id): a streamed answer, piece by piece, before its reply.

    `seq` counts from 0 within one stream. Every attempt streams under a new random `stream_id` (also
    after a redelivery): a chunk with a `stream_id` you have not seen starts the answer over; drop what
    you had. The chunk with `final: true` ends the stream that succeeded; the reply event follows.
    """

    chunk_id: str
    message_id: str
    reply_id: str
    agent_id: str
    room_id: str
    stream_id: str
    attempt: int
    seq: int
    delta: str
    final: bool
    created_at: datetime
    blocked: bool = False  # a final chunk that ends the stream because a moderation check blocked the reply
    contract_version: Literal[1] = CONTRACT_VERSION


class BillingEvent(_Output):
    """`ai-billing-events` (key = agent id): one per provider call that used tokens, and one per
    transcription (`units: seconds`) and speech call (`units: characters`), whose `quantity` is priced."""

    event_id: str
    message_id: str
    agent_id: str
    user_id: str | None
    room_id: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: str
    price_version: str
    created_at: datetime
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    fallback_index: int = 0
    provider_request_id: str | None = None
    # A cache hit: no tokens used, cost 0; what the call it saved had used and cost.
    cache_hit: bool = False
    saved_input_tokens: int = 0
    saved_output_tokens: int = 0
    saved_cost_usd: str | None = None
    # Collaboration: a call made to answer another agent's consultation names that agent; every call of
    # a consultation chain names the room's message the chain answers (`message_id` is the hop's own).
    consulted_by: str | None = None
    root_message_id: str | None = None
    # What the call is priced by: tokens (the counts above; quantity null), or seconds of audio
    # transcribed, or characters spoken (quantity; the token counts are 0).
    units: Literal["tokens", "seconds", "characters"] = "tokens"
    quantity: int | None = None
    contract_version: Literal[1] = CONTRACT_VERSION


class DeadLetter(_Output):
    """`ai-message-dlq`: enough to see why and to replay the original record to its topic."""

    dlq_id: str
    source_topic: str
    source_partition: int
    source_offset: int
    key_b64: str | None
    value_b64: str | None
    error_code: ErrorCode
    reason: str
    attempts: int
    message_id: str | None = None
    agent_id: str | None = None
    failed_at: datetime
    # One entry per provider call or skipped target: provider, model, fallback_index, attempt, outcome,
    # status, elapsed_ms, detail.
    attempt_history: list[dict[str, Any]] = Field(default_factory=list)
    contract_version: Literal[1] = CONTRACT_VERSION


INPUT_EVENTS: dict[str, type[BaseModel]] = {
    "ai-message-created": MessageCreated,
    "agent-profile-created": AgentProfile,
    "agent-profile-updated": AgentProfile,
    "agent-profile-deleted": AgentProfileDeleted,
    "ai-tool-results": ToolResults,
    "conversation-cleared": ConversationCleared,
    "moderation-signals": ModerationSignal,
}
OUTPUT_EVENTS: dict[str, type[BaseModel]] = {
    "ai-message-reply": MessageReply,
    "ai-message-reply-chunks": ReplyChunk,
    "ai-billing-events": BillingEvent,
    "ai-message-dlq": DeadLetter,
    "ai-moderation-events": ModerationEvent,
    AUDIO_TOPIC: AudioChunk,
}
