"""The one typed object a message's stages work on.

Fields are grouped by the stage that sets them; a stage reads what earlier stages set through the
`require_*` accessors, which fail loudly if the declared order was broken. Plugins never see this
object: they get a frozen `plugins.api.StageInput` and answer with a verdict.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from gateway_app.contract.events import AgentProfile, MessageCreated, StageNote
from agents_tables.conversations import Conversation, Turn
from agents_tables.moderation import ActiveSignal
from agents_tables.response_cache import CachedAnswer
from gateway_app.contract.events import BillingEvent, ModerationEvent, RankingInfo, SentimentInfo, ToolResults
from gateway_app.contract.moderation import Verdict
from gateway_app.moderation.steering import NOTHING, Steering
from gateway_app.observability.tracing import TraceState
from gateway_app.contract.collaboration import CollaborationHop
from gateway_app.contract.internal import Answerable, ConsultedRecord, MessageRecord, Origin, ToolResultsRecord
from gateway_app.pipeline.acker import AckSlot
from gateway_app.pipeline.caller import Answer, CallLog
from gateway_app.pipeline.collaboration import Position, position_of
from gateway_app.pipeline.turns import Ticket
from gateway_app.providers.base import ChatRequest, ChatResult, Speech


@dataclass(frozen=True)
class Reservation:
    """Tokens reserved in the agent's rate window before the call, corrected by real usage after it."""

    window_start_ms: int
    tokens: int


@dataclass(frozen=True)
class StageAnswer:
    """An answer that did not come from a provider (a pre-call stage's, e.g. a cache hit)."""

    stage: str
    result: ChatResult


@dataclass(eq=False)
class MessageContext:
    # Read from the stream (the dispatcher): never changed.
    record: Answerable  # a message, or tool results (answered like one)
    partition: int
    slot: AckSlot
    arrived: float = field(default_factory=time.monotonic)
    task: asyncio.Task | None = field(default=None, repr=False)
    # Read with the message (the dispatcher): the room's moderation signals active at its place in the
    # agent's stream; a signal applied later does not reach it.
    signals: tuple[ActiveSignal, ...] = ()
    # The message's trace (None: tracing off): its span, and the `traceparent` its output records carry.
    trace: TraceState | None = field(default=None, repr=False)
    # Admission: the agent's turn (taken at arrival), the profile, the rate-window reservation.
    agent_turn: Ticket | None = None
    profile: AgentProfile | None = None
    reservation: Reservation | None = None
    budget_hold: object | None = None  # the budget reservation (pipeline.budgets.Hold), given back at the end
    deferred: bool = False  # it waited for a rate window or the budget (the usage rows count deferrals)
    # Transcribe (an audio message): what was heard; from then on `message` is the message with it as content.
    transcript: str | None = None
    transcribed: MessageCreated | None = field(default=None, repr=False)
    # Conversation turn: one call at a time per agent + room.
    conversation_turn: Ticket | None = None
    # Prompt: the normalized request (the model and options are the target's, set per target), the
    # conversation it was built from, the turn an ok reply appends, and the prompt's raw token estimate.
    request: ChatRequest | None = None
    conversation_row: Conversation | None = None
    conversation_read: bool = False  # conversation_row is the room's row (read under the room's turn)
    new_turn: Turn | None = None
    prompt_estimate: int = 0
    input_estimate: int = 0  # of the new input alone (the turn's input tokens, once corrected)
    # What the signals do to it (set by the prompt stage, which steers the request).
    steering: Steering = NOTHING
    # The language the reply was asked for (profile `language`: its tag, or the user's under `auto`).
    reply_language: str | None = None
    sentiment: SentimentInfo | None = None  # post-processing: the reply's and the user's tone
    ranking: RankingInfo | None = None  # the candidates drawn, and which one the reply is
    chosen: Answer | None = None  # the answer the ranking chose (None: the last answer is the reply's)
    window_dropped: tuple[Turn, ...] = ()  # stored turns the context budget left out (the prompt stage)
    new_summary: tuple[str, str] | None = None  # a new conversation summary, and the id of its newest turn
    # Moderation: the checks that did not pass (for the reply), the events to publish, and the billing
    # of provider moderation calls.
    verdicts: list[Verdict] = field(default_factory=list)
    moderation_events: list[ModerationEvent] = field(default_factory=list)
    extra_billing: list[BillingEvent] = field(default_factory=list)
    stream_pipe: object | None = field(default=None, repr=False)  # a held stream (moderation.gate.HeldPipe)
    # Response cache: the request's hash (when the profile caches) and the entry that answered.
    cache_key: str | None = None
    cache_hit: CachedAnswer | None = None
    # Pre-call checks may answer; otherwise the provider call does. Post-call checks may change `result`.
    stage_answer: StageAnswer | None = None
    answers: list[Answer] = field(default_factory=list)  # every provider answer (a regeneration adds one)
    result: ChatResult | None = None                      # what the reply will say
    truncated: bool = False  # the reply format stage cut `result` to the profile's max_reply_chars
    calls: CallLog | None = None  # set by the first provider call: its deadline starts then, not at arrival
    # What non-passing stages did (for the reply), and how long each stage took (ms).
    notes: list[StageNote] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    # Where the message is: the stage running now, and whether its outputs are on their way (from then
    # on a rebalance lets it finish instead of cancelling it).
    stage: str | None = None
    publishing: bool = False
    usage_plan: object | None = None  # what the outcome adds to the usage rows (pipeline.usage.Plan)
    speech: Speech | None = field(default=None, repr=False)  # speak: the reply spoken (profile `voice`)
    copy_in_flight: bool = False  # another copy of this message was in progress when it was read
    rerun: str | None = None  # this input record's origin, when the message had failed before (a replay)
    # Collaboration: where the answer stands in its chain of consultations (read from the record), the
    # consultations refused on the way that travel no further (for the reply), and whether this run
    # passed its answer on to a collaborator instead of answering (stages.collaborate).
    position: Position = field(init=False, repr=False)
    extra_hops: list[CollaborationHop] = field(default_factory=list)
    delegated: bool = False

    def __post_init__(self) -> None:
        self.position = position_of(self.record)

    @property
    def message(self) -> MessageCreated:
        if self.transcribed is not None:
            return self.transcribed
        record = self.record
        return record.payload if isinstance(record, MessageRecord) else record.as_message

    def use_transcript(self, text: str) -> None:
        """An audio message's transcript becomes its content for every later stage."""
        self.transcript = text
        self.transcribed = self.message.model_copy(update={"content": text})

    @property
    def tool_results(self) -> ToolResults | None:
        record = self.record
        if isinstance(record, ConsultedRecord):
            return record.as_tool_results
        return record.payload if isinstance(record, ToolResultsRecord) else None

    @property
    def internal(self) -> bool:
        """The answer goes back to the agent that consulted this one, not to the room (nothing streamed)."""
        return self.position.consultation is not None

    @property
    def room_message(self) -> MessageCreated:
        """The message as the room knows it: the results of consultations answer the user's message."""
        message, root = self.message, self.position.frame.message_id
        return message if message.message_id == root else message.model_copy(update={"message_id": root})

    @property
    def hops(self) -> list[CollaborationHop]:
        return [*self.position.hops, *self.extra_hops]

    @property
    def origin(self) -> Origin:
        return self.record.origin

    @property
    def conversation(self) -> str:
        return f"{self.message.agent_id}\x1f{self.message.room_id}"

    def latency_ms(self) -> int:
        return int((time.monotonic() - self.arrived) * 1000)

    def require_profile(self) -> AgentProfile:
        if self.profile is None:
            raise RuntimeError("a stage needs the profile before admission set it")
        return self.profile

    def require_request(self) -> ChatRequest:
        if self.request is None:
            raise RuntimeError("a stage needs the request before the prompt stage built it")
        return self.request

    @property
    def attempts(self) -> int:
        return self.calls.attempts if self.calls else 0

    @property
    def history(self) -> list[dict]:
        return self.calls.history if self.calls else []

    @property
    def answer(self) -> Answer | None:
        """The provider answer the reply is built from: the ranking's choice, else the last one."""
        if self.chosen is not None:
            return self.chosen
        return self.answers[-1] if self.answers else None
