"""What a plugin package imports: the stage interface, what a stage sees, and the verdicts it returns.

A stage plugin is a class (or factory) registered under the entry-point group `ai_gateway.stages`; the
gateway creates one instance at start and calls `run` for every message of every agent whose profile
names it (`"stages": [{"name": ..., "options": {...}}]`). A stage never changes the message itself: it
sees a frozen `StageInput` and answers with a verdict, which the pipeline applies. That is the whole of
what a plugin may do, and it is visible in these types.

| position    | sees                         | may return                                              |
|-------------|------------------------------|---------------------------------------------------------|
| `pre_call`  | message, profile, request    | `Pass`, `Answer` (no provider call), `Block`            |
| `post_call` | ... and the answer           | `Pass`, `Modify`, `Replace`, `Regenerate` (once), `Block` |
| `outputs`   | ... and the reply to be sent | `Pass` (observe only: audit, notify)                    |

`None` counts as `Pass`. Anything else, an exception, or running past `time_limit_seconds` is a failure:
with `failure_mode = "closed"` the message fails (an `error` reply with code `stage_failed` naming the
stage, and a DLQ record); with `"open"` the stage is skipped, logged (`stage.failed_open`) and counted.
Delivery is at least once: a stage may see the same message again after a crash.

A provider plugin is a class registered under `ai_gateway.providers` implementing
`gateway_app.providers.base.Provider`; profiles name it like a built-in provider.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Protocol, runtime_checkable

from gateway_app.contract.events import AgentProfile, MessageCreated, MessageReply
from gateway_app.providers.base import ChatRequest, ChatResult

Position = Literal["pre_call", "post_call", "outputs"]
FailureMode = Literal["closed", "open"]
POSITIONS: tuple[Position, ...] = ("pre_call", "post_call", "outputs")
DEFAULT_TIME_LIMIT_SECONDS = 2.0
MAX_TIME_LIMIT_SECONDS = 30.0  # a stage holds its conversation's turn: keep it far below call timeouts


@dataclass(frozen=True)
class StageInput:
    """Everything a stage may look at, frozen."""

    message: MessageCreated
    profile: AgentProfile
    request: ChatRequest
    options: Mapping[str, Any]            # this profile's options for this stage
    result: ChatResult | None = None      # post_call, outputs: the answer (after earlier stages' changes)
    reply: MessageReply | None = None     # outputs: the reply about to be sent
    regenerated: bool = False             # post_call: this answer is the one regeneration


@dataclass(frozen=True)
class Pass:
    """Let the message go on unchanged."""


@dataclass(frozen=True)
class Answer:
    """pre_call: answer the message with this text; no provider is called (e.g. a cache hit)."""

    content: str
    reason: str = ""


@dataclass(frozen=True)
class Modify:
    """post_call: the answer's text becomes `content` (e.g. redacted); tool calls and usage are kept."""

    content: str
    reason: str = ""


@dataclass(frozen=True)
class Replace:
    """post_call: the answer is replaced by `content` (finish reason `content_filter`, no tool calls)."""

    content: str
    reason: str = ""


@dataclass(frozen=True)
class Regenerate:
    """post_call: ask the provider again, once. A second `Regenerate` for one message blocks it."""

    reason: str = ""


@dataclass(frozen=True)
class Block:
    """Refuse the message: the reply has status `blocked`, code `blocked_by_stage`, and this reason."""

    reason: str = ""


Verdict = Pass | Answer | Modify | Replace | Regenerate | Block
ALLOWED: dict[Position, tuple[type, ...]] = {
    "pre_call": (Pass, Answer, Block),
    "post_call": (Pass, Modify, Replace, Regenerate, Block),
    "outputs": (Pass,),
}


@runtime_checkable
class StagePlugin(Protocol):
    """What an `ai_gateway.stages` entry point gives (after calling it with no arguments if it is a class)."""

    name: str
    position: Position
    time_limit_seconds: float
    failure_mode: FailureMode

    async def run(self, stage_input: StageInput) -> Verdict | None: ...


@dataclass(frozen=True)
class StageSpec:
    """A loaded stage plugin, its declarations checked."""

    name: str
    position: Position
    time_limit_seconds: float
    failure_mode: FailureMode
    plugin: StagePlugin = field(repr=False, compare=False)

    def check_options(self, options: Mapping[str, Any]) -> str | None:
        """Why these profile options are refused, or None. A plugin may define `validate_options(options)`
        raising ValueError; it runs at intake, so a bad profile is refused before any message needs it."""
        validate = getattr(self.plugin, "validate_options", None)
        if validate is None:
            return None
        try:
            validate(dict(options))
        except Exception as exc:  # a plugin's validator must not crash the intake either
            return f"stage {self.name!r} refused its options: {exc}"[:300]
        return None
