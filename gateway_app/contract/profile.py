"""The agent profile: who the agent is, which provider and model answer for it, and how.

`agent-profile-created` / `agent-profile-updated` carry it whole; the gateway keeps the newest version per
agent in its `agent-profiles` table and every stage reads it from there.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import langcodes
from pydantic import AliasChoices, Field, field_validator, model_validator

from gateway_app.contract.model import _Input
from gateway_app.contract.moderation import ModerationSpec
from gateway_app.contract.voice import VoiceSpec

class RateLimits(_Input):
    """Per-agent limits; null means unlimited."""

    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)


class FunctionSpec(_Input):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-zA-Z0-9_-]+$")
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class ToolSpec(_Input):
    """A function the model may call, in the OpenAI shape; each provider maps it to its own."""

    type: Literal["function"] = "function"
    function: FunctionSpec


class Credentials(_Input):
    """Which key a provider call uses, by reference, never by value: `env:NAME`, `file:/path`,
    `aws-sm:<secret id>[#field]`, `azure-kv:<vault>/<secret>[/<version>]`, `vault:<mount>/<path>#<field>`,
    or `enc:v1:<key id>:<base64url>` (encrypted under the gateway's keyring, bound to agent and provider).
    During a key rotation the secondary is tried once after a 401, until `secondary_until`."""

    key_ref: str = Field(min_length=1, max_length=2048)
    secondary_key_ref: str | None = Field(default=None, min_length=1, max_length=2048)
    secondary_until: datetime | None = None


class FallbackTarget(_Input):
    """A provider + model tried when the ones before it failed after their retries or are circuit-open."""

    provider: str = Field(min_length=1)
    model: str = Field(min_length=1)
    options: dict[str, Any] = Field(default_factory=dict)
    credentials: Credentials | None = None  # none: the provider's key from the worker's environment


MAX_FALLBACKS = 4
MAX_PROFILE_STAGES = 8


class StageRef(_Input):
    """An extra stage (from an installed plugin) this agent's messages go through, with its options."""

    name: str = Field(min_length=1, max_length=64)
    options: dict[str, Any] = Field(default_factory=dict)


MAX_CONTEXT_TURNS = 200  # per room, stored; a profile's max_turns can ask for at most this many


class ContextSpec(_Input):
    """How much of the room's conversation the model sees with each new message."""

    max_turns: int = Field(default=20, ge=0, le=MAX_CONTEXT_TURNS)  # 0: none (the message alone)
    max_tokens: int = Field(default=4000, ge=1, le=1_000_000)       # of earlier turns (estimated)
    ttl_seconds: int = Field(default=7 * 86400, ge=60, le=366 * 86400)  # a room idle this long is forgotten


class CacheSpec(_Input):
    """Answer a request identical to an earlier one (same provider, model, rendered prompt and options)
    from the cache, without a provider call."""

    ttl_seconds: int = Field(default=3600, ge=1, le=30 * 86400)


RANKING_CRITERIA = ("quality", "moderation", "repetition", "format")


class JudgeSpec(_Input):
    """A model that picks the best of the candidates the checks could not tell apart."""

    provider: str = Field(min_length=1)
    model: str = Field(min_length=1)
    options: dict[str, Any] = Field(default_factory=dict)


class RankingSpec(_Input):
    """Draw several answers and publish the best by the gateway's own checks (pipeline.ranking), and by a
    judge model among those tied on them, when one is named."""

    candidates: int = Field(default=3, ge=2, le=5)
    by: list[Literal["quality", "moderation", "repetition", "format"]] = Field(
        default_factory=lambda: list(RANKING_CRITERIA), min_length=1, max_length=4)
    judge: JudgeSpec | None = None


class BudgetSpec(_Input):
    """Spending limits in USD (exact decimals; strings keep them exact), per UTC day and per calendar month
    (UTC), and the model that answers once one is spent (none: the message is refused, `budget_exceeded`)."""

    usd_per_day: Decimal | None = Field(default=None, gt=0)
    usd_per_month: Decimal | None = Field(default=None, gt=0)
    fallback: FallbackTarget | None = None

    @model_validator(mode="after")
    def _a_limit(self) -> "BudgetSpec":
        if self.usd_per_day is None and self.usd_per_month is None:
            raise ValueError("a budget needs usd_per_day or usd_per_month")
        return self


class ResponseFormat(_Input):
    type: Literal["text", "markdown", "json"] = "text"
    # For json: the JSON Schema (draft 2020-12) the reply must be valid against; none: any JSON value.
    json_schema: dict[str, Any] | None = Field(default=None, validation_alias=AliasChoices("schema", "json_schema",
                                                                                           "jsonSchema"))



MAX_COLLABORATORS = 8
CONSULT_TOOL = "consult_agent"  # the tool the gateway adds for `tool` collaborators (a name profiles cannot use)


class CollaboratorSpec(_Input):
    """Another agent this one works with. `tool`: the model may ask it a question through the
    `consult_agent` tool; `always`: it drafts an answer to every message first, and this agent refines it."""

    agent_id: str = Field(min_length=1, max_length=256)
    when: Literal["always", "tool"] = "tool"
    description: str = Field(default="", max_length=500)  # what it knows, told to the model in the tool


AUTO_LANGUAGE = "auto"


def language_setting(value: str) -> str:
    """A profile's `language`: `auto`, or a BCP 47 tag in its standard form ("EN_us" -> "en-US")."""
    text = value.strip().replace("_", "-")
    if text.lower() == AUTO_LANGUAGE:
        return AUTO_LANGUAGE
    if not langcodes.tag_is_valid(text):
        raise ValueError(f"language must be 'auto' or a BCP 47 tag (e.g. 'en', 'pt-BR'), got {value!r}")
    return langcodes.standardize_tag(text)


class AgentProfile(_Input):
    """`agent-profile-created` / `agent-profile-updated`: the full profile of one agent."""

    agent_id: str = Field(min_length=1, max_length=256)
    version: int = Field(ge=0)
    name: str = ""
    provider: str = Field(min_length=1)
    model: str = Field(min_length=1)
    system_prompt: str = ""
    temperature: float = Field(default=0.7, ge=0, le=2)
    max_tokens: int = Field(default=512, ge=1, le=1_000_000)
    rate_limits: RateLimits = Field(default_factory=RateLimits)
    enabled: bool = True
    # Provider-specific knobs, e.g. {"latency_ms": 200} for echo, {"base_url": ...} for local.
    options: dict[str, Any] = Field(default_factory=dict)
    # This agent's own provider key, by reference (none: the provider's key from the environment).
    credentials: Credentials | None = None
    # Up to 4 stop sequences, and tools in the OpenAI function-tool shape
    # ({"type": "function", "function": {"name", "description", "parameters"}}); each provider maps them.
    stop: list[str] = Field(default_factory=list, max_length=4)
    tools: list[ToolSpec] = Field(default_factory=list, max_length=64)
    fallbacks: list[FallbackTarget] = Field(default_factory=list, max_length=MAX_FALLBACKS)
    # Stream the answer: chunk events on `ai-message-reply-chunks`, then the usual final reply.
    stream: bool = False
    # Extra stages from installed plugins, run in this order within their position (pre-call, post-call,
    # outputs). Built-in stages always run; a name no plugin provides is rejected at intake.
    stages: list[StageRef] = Field(default_factory=list, max_length=MAX_PROFILE_STAGES)
    # Conversation memory (absent: each message is answered on its own, as before contract 1.1).
    context: ContextSpec | None = None
    # Response cache (absent: every message calls its provider).
    cache: CacheSpec | None = None
    # What the reply must be: text (as the model wrote it), normalised Markdown, or JSON (optionally
    # valid against a JSON Schema). A plain string ("json") is accepted for `{"type": "json"}`.
    response_format: ResponseFormat = Field(default_factory=lambda: ResponseFormat())
    # Cut longer replies at a sentence boundary (the reply says `truncated: true`). Not applied to JSON.
    max_reply_chars: int | None = Field(default=None, ge=1, le=1_000_000)
    # Checks on every reply (and on input where listed), what platform signals do, a fallback reply.
    moderation: ModerationSpec = Field(default_factory=lambda: ModerationSpec())
    # The language to answer in: a BCP 47 tag ("en", "pt-BR"; always that one) or "auto" (the language of
    # each user message); an instruction in the system prompt asks for it, the reply says which. The
    # `language` check expects it. None: no instruction; the check expects the user's language.
    language: str | None = Field(default=None, min_length=2, max_length=35)
    # Built-in analyses of each answered message, never blocking it: "sentiment" (the reply's and the user's
    # tone, on the reply and on its moderation events); "summarize" (with `context`: a rolling summary of
    # the turns that fall out of the context budget, sent in their place).
    post_processing: list[Literal["sentiment", "summarize"]] = Field(default_factory=list, max_length=4)
    # Several answers drawn per message (the provider's own `n` where it has one, parallel calls where
    # not), the best published; every candidate is billed. Not with `stream`.
    ranking: RankingSpec | None = None
    # Spending limits per day and month, reserved before each call (absent: no limit; billing still counts).
    budget: BudgetSpec | None = None
    # Speak the reply too: `audio_b64` on the reply, or `ai-message-audio` records when large (absent: text
    # only). Audio messages are transcribed whether or not the profile has it.
    voice: VoiceSpec | None = None
    # Agents this one consults (pipeline.collaboration): each question is a message on the other agent's
    # partition, so its profile, limits, budget and conversation apply; each hop is billed to its agent.
    collaborators: list[CollaboratorSpec] = Field(default_factory=list, max_length=MAX_COLLABORATORS)

    @model_validator(mode="after")
    def _collaborators(self) -> "AgentProfile":
        ids = [c.agent_id for c in self.collaborators]
        if self.agent_id in ids:
            raise ValueError("an agent cannot be its own collaborator")
        if len(set(ids)) != len(ids):
            raise ValueError("collaborators name an agent twice")
        if sum(c.when == "always" for c in self.collaborators) > 1:
            raise ValueError("at most one collaborator can be `always` (it drafts every answer)")
        if self.collaborators and any(t.function.name == CONSULT_TOOL for t in self.tools):
            raise ValueError(f"the tool name {CONSULT_TOOL!r} is the gateway's own when collaborators are set")
        return self

    @model_validator(mode="after")
    def _ranking_without_stream(self) -> "AgentProfile":
        if self.ranking is not None and self.stream:
            raise ValueError("ranking draws whole answers before choosing one: it cannot be used with stream")
        return self

    @field_validator("language")
    @classmethod
    def _bcp47(cls, value: str | None) -> str | None:
        return None if value is None else language_setting(value)

    @field_validator("response_format", mode="before")
    @classmethod
    def _format_by_name(cls, value: Any) -> Any:
        return {"type": value} if isinstance(value, str) else value
