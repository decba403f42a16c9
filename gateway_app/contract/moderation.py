"""The moderation part of the contract: platform signals in, moderation events out, the profile's
`moderation` section and what a reply says about what shaped it. Re-exported by `contract.events`."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from typing import Annotated

from pydantic import Field

from gateway_app.contract.model import CONTRACT_VERSION, _Input, _Output


class SignalKind(StrEnum):
    BORING = "boring"
    ENGAGEMENT = "engagement"
    REPETITIVE = "repetitive"
    INAPPROPRIATE = "inappropriate"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


# How long a signal stays active when it does not say (seconds).
DEFAULT_SIGNAL_TTL = {SignalKind.BORING: 900, SignalKind.ENGAGEMENT: 900, SignalKind.REPETITIVE: 1800,
                      SignalKind.INAPPROPRIATE: 3600}
MAX_SIGNAL_TTL = 7 * 86400


class ModerationSignal(_Input):
    """`moderation-signals` (key: room id): what the platform's moderation noticed in a room. Without
    `agent_id` it applies to every agent active in the room."""

    signal_id: str = Field(min_length=1, max_length=256)
    signal: SignalKind
    room_id: str = Field(min_length=1, max_length=256)
    agent_id: str | None = Field(default=None, min_length=1, max_length=256)
    user_id: str | None = Field(default=None, max_length=256)
    severity: Severity = Severity.MEDIUM
    score: float | None = Field(default=None, ge=0, le=1)
    categories: list[str] = Field(default_factory=list, max_length=32)  # OpenAI moderation category names
    ttl_seconds: int | None = Field(default=None, ge=1, le=MAX_SIGNAL_TTL)  # none: DEFAULT_SIGNAL_TTL
    created_at: datetime | None = None

    def ttl(self) -> int:
        return self.ttl_seconds or DEFAULT_SIGNAL_TTL[self.signal]


CheckName = Literal["wordlist", "pii", "repetition", "empty", "refusal", "truncated", "language", "too_long",
                    "provider"]
Action = Literal["pass", "flag", "mask", "regenerate", "replace", "block"]


class CheckRule(_Input):
    """What a check that does not pass does to the message, and what its own failure does."""

    action: Action = "flag"
    fail_mode: Literal["open", "closed"] = "open"  # open: publish, record `error`; closed: treat as block
    then: Action = "flag"  # after a regeneration that did not help


DEFAULT_OUTPUT_CHECKS: dict[str, dict[str, Any]] = {
    "wordlist": {"action": "flag"}, "pii": {"action": "flag"}, "empty": {"action": "flag"},
    "refusal": {"action": "flag"}, "truncated": {"action": "flag"},
}


class ProviderModerationSpec(_Input):
    """OpenAI's moderation endpoint on the input and/or the reply (opt-in; billed at its price, 0)."""

    model: str = "omni-moderation-latest"
    on: list[Literal["input", "output"]] = Field(default_factory=lambda: ["output"])
    # category -> the score (0-1) from which it counts as flagged; unnamed ones: the endpoint's own flag
    thresholds: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=dict)
    action: Action = "block"
    fail_mode: Literal["open", "closed"] = "open"
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)


class SignalEffect(_Input):
    """Overrides of what a signal of one severity does (see docs/moderation.md for the defaults)."""

    instruction: str | None = None         # added to the system prompt
    temperature_delta: float | None = Field(default=None, ge=-2, le=2)
    penalty: float | None = Field(default=None, ge=0, le=2)  # frequency/presence penalty where they exist
    max_tokens_factor: float | None = Field(default=None, gt=0, le=4)
    mute: bool | None = None
    strict: bool | None = None             # every local check on the reply blocks (inappropriate, low)
    replace_failed: bool | None = None     # a reply failing a check gets the fallback reply (or is blocked)


class ModerationSpec(_Input):
    """The profile's `moderation` section. Every reply is checked (`output_checks`, defaults: flag
    profanity, PII, empty replies, refusals and truncation); input checks run only where listed."""

    output_checks: dict[CheckName, CheckRule] = Field(
        default_factory=lambda: {name: CheckRule(**rule) for name, rule in DEFAULT_OUTPUT_CHECKS.items()})
    input_checks: dict[CheckName, CheckRule] = Field(default_factory=dict)
    words: list[str] = Field(default_factory=list, max_length=1000)      # added to the default list
    patterns: list[str] = Field(default_factory=list, max_length=100)    # regular expressions
    max_chars: int | None = Field(default=None, ge=1)                    # too_long
    repetition_last_n: int = Field(default=5, ge=1, le=20)
    repetition_threshold: float = Field(default=0.9, gt=0, le=1)
    fallback_reply: str | None = Field(default=None, max_length=4000)
    provider: ProviderModerationSpec | None = None
    on_signal: dict[SignalKind, dict[Severity, SignalEffect]] = Field(default_factory=dict)


class SignalRef(_Output):
    signal_id: str
    signal: SignalKind
    severity: Severity


class Verdict(_Output):
    stage: Literal["input", "output"]
    check: str
    verdict: Literal["flagged", "error"]
    action: str
    categories: list[str] = Field(default_factory=list)


class ModerationInfo(_Output):
    """On a reply: the signals active for it and the checks that did not pass."""

    signals: list[SignalRef] = Field(default_factory=list)
    verdicts: list[Verdict] = Field(default_factory=list)


class SentimentScore(_Output):
    label: Literal["positive", "neutral", "negative"]
    score: float  # VADER's compound score, -1 (most negative) to 1


class SentimentInfo(_Output):
    """Profile `post_processing: ["sentiment"]`: the tone of the reply and of the user's message."""

    reply: SentimentScore | None = None
    user: SentimentScore | None = None


class RankingInfo(_Output):
    """Profile `ranking`: how many answers were drawn, which one was published and why."""

    candidates: int                 # answers drawn (fewer than asked when some calls failed)
    chosen: int                     # its index among them, in the order drawn
    failed: list[list[str]]         # per candidate, the checks it failed (the fewest wins; the first drawn on a tie)
    reason: str


class ModerationEvent(_Output):
    """`ai-moderation-events` (key = room id): one per check that did not pass, and per signal applied
    or expired. No message content unless `GATEWAY_MODERATION_INCLUDE_CONTENT=true`."""

    event_id: str
    message_id: str | None
    agent_id: str
    room_id: str
    user_id: str | None
    stage: Literal["input", "output", "signal"]
    check: str                      # a check's name, or the signal kind
    verdict: str                    # flagged | error | applied | expired
    action: str                     # what was done: pass | flag | mask | regenerate | replace | block | steer | mute
    categories: list[str] = Field(default_factory=list)
    scores: dict[str, float] = Field(default_factory=dict)
    signal_id: str | None = None
    duration_ms: int = 0
    created_at: datetime
    content: str | None = None
    sentiment: SentimentInfo | None = None  # with the profile's `post_processing: ["sentiment"]`
    contract_version: Literal[1] = CONTRACT_VERSION
