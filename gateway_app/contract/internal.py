"""The internal `gateway-agent-events` record: every input, validated and re-keyed by agent id.

Profiles and messages travel on one topic so that, per agent, they are read in one order: a profile
change takes effect at an exact point in that agent's stream, and table rows and the messages that
read them always live on the same partition.

A record is a discriminated union on `kind` (message | tool results | profile | profile deleted |
conversation cleared | cache expired | moderation signal | signals expired | consultation | consulted),
decoded once with its typed payload. The last two are also
written by the gateway itself (its sweep of idle rooms and expired cache entries), so that every table
write happens at the owner, at an exact point of the agent's stream. The bytes on the topic are `{"kind", "agent_id", "payload", "origin"}` with the payload in
snake_case, as the intake wrote them since contract v1.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from functools import cached_property

from gateway_app.contract.collaboration import Consultation, Consulted
from gateway_app.contract.events import (
    AgentProfile,
    AgentProfileDeleted,
    ConversationCleared,
    MessageCreated,
    ModerationSignal,
    ToolResult,
    ToolResults,
)


class Origin(BaseModel):
    """Where the input came from, and its raw bytes, so any later DLQ record can replay it exactly."""

    model_config = ConfigDict(frozen=True)

    topic: str
    partition: int
    offset: int
    key_b64: str | None = None
    value_b64: str | None = None
    received_at_ms: int


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True)

    agent_id: str
    origin: Origin


class MessageRecord(_Record):
    kind: Literal["message"] = "message"
    payload: MessageCreated


class ProfileRecord(_Record):
    kind: Literal["profile"] = "profile"
    payload: AgentProfile


class ProfileDeletedRecord(_Record):
    kind: Literal["profile_deleted"] = "profile_deleted"
    payload: AgentProfileDeleted


def _results_as_message(event: ToolResults, when_empty: str) -> MessageCreated:
    text = "\n".join(result.content for result in event.results)
    return MessageCreated(message_id=event.message_id, agent_id=event.agent_id, room_id=event.room_id,
                          user_id=event.user_id, content=text if text.strip() else when_empty,
                          created_at=event.created_at, metadata=event.metadata)


class ToolResultsRecord(_Record):
    kind: Literal["tool_results"] = "tool_results"
    payload: ToolResults

    @cached_property
    def as_message(self) -> MessageCreated:
        """The event as the message the stages see (ids, room, user; the results' text as its content,
        for estimates and check stages). The results themselves reach the prompt as tool messages."""
        return _results_as_message(self.payload, "(empty tool results)")


class ConsultationRecord(_Record):
    """A question from another agent (contract.collaboration): answered like a message, not to the room."""

    kind: Literal["consultation"] = "consultation"
    payload: Consultation

    @cached_property
    def as_message(self) -> MessageCreated:
        event = self.payload
        return MessageCreated(message_id=event.consultation_id, agent_id=event.agent_id, room_id=event.room_id,
                              user_id=event.user_id, content=event.call.question,
                              metadata={"consulted_by": event.asked_by})


class ConsultedRecord(_Record):
    """The answers to an agent's consultations: its `consult_agent` calls' results."""

    kind: Literal["consulted"] = "consulted"
    payload: Consulted

    @cached_property
    def as_tool_results(self) -> ToolResults:
        event = self.payload
        results = [ToolResult(tool_call_id=r.tool_call_id, content=r.content, is_error=r.is_error)
                   for r in event.gathered]
        return ToolResults(message_id=event.message_id, reply_to=event.reply_to, agent_id=event.agent_id,
                           room_id=event.room_id, user_id=event.user_id, results=results)

    @cached_property
    def as_message(self) -> MessageCreated:
        return _results_as_message(self.as_tool_results, "(empty answers)")


class ConversationClearedRecord(_Record):
    kind: Literal["conversation_cleared"] = "conversation_cleared"
    payload: ConversationCleared
    idle_only: bool = False  # the sweep's: clear only if the room is still idle past its ttl


class CacheExpired(BaseModel):
    model_config = ConfigDict(frozen=True)

    agent_id: str
    keys: list[str]


class CacheExpiredRecord(_Record):
    kind: Literal["cache_expired"] = "cache_expired"
    payload: CacheExpired


class SignalRecord(_Record):
    """A moderation signal for one agent (its `agent_id` set: given, or by the room index's fan-out)."""

    kind: Literal["moderation_signal"] = "moderation_signal"
    payload: ModerationSignal


class SignalsExpired(BaseModel):
    model_config = ConfigDict(frozen=True)

    agent_id: str
    room_id: str


class SignalsExpiredRecord(_Record):
    """The sweep's: signals of this room past their ttl; the owner removes them (and says so)."""

    kind: Literal["signals_expired"] = "signals_expired"
    payload: SignalsExpired


AnyAgentEvent = Union[MessageRecord, ToolResultsRecord, ProfileRecord, ProfileDeletedRecord,
                      ConversationClearedRecord, CacheExpiredRecord, SignalRecord, SignalsExpiredRecord,
                      ConsultationRecord, ConsultedRecord]
AgentEvent = Annotated[AnyAgentEvent, Field(discriminator="kind")]
AGENT_EVENT: TypeAdapter[AgentEvent] = TypeAdapter(AgentEvent)
# What the pipeline answers (a reply per record); the other kinds change tables only.
Answerable = MessageRecord | ToolResultsRecord | ConsultationRecord | ConsultedRecord
ANSWERABLE = (MessageRecord, ToolResultsRecord, ConsultationRecord, ConsultedRecord)


def decode_agent_event(raw: bytes) -> AnyAgentEvent:
    """Raises pydantic's ValidationError: only the gateway writes this topic, so a bad record is a bug."""
    return AGENT_EVENT.validate_json(raw)


def encode_agent_event(record: AnyAgentEvent) -> bytes:
    # by_alias=False: the payload goes out in snake_case, whatever case the input used.
    return record.model_dump_json().encode()


def internal_key(line: bytes) -> str | None:
    """The agent an outcome's first line goes to, when it is an internal record (a consultation, or the
    answer to one) rather than a reply to the room. Internal records begin with their `agent_id` (their
    first field); a reply begins with `reply_id`."""
    if not line.startswith(b'{"agent_id":'):
        return None
    return json.loads(line)["agent_id"]


# ---- `gateway-room-events` (key: room id): where the room -> agents index lives -------------------

class RoomActivity(BaseModel):
    model_config = ConfigDict(frozen=True)

    room_id: str
    agent_id: str
    at_ms: int


class RoomActivityRecord(BaseModel):
    """An agent was asked something in a room (sent by the intake, at most once per refresh interval)."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["room_activity"] = "room_activity"
    payload: RoomActivity


class RoomSignalRecord(BaseModel):
    """A signal without `agent_id`: fanned out to the agents active in the room."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["room_signal"] = "room_signal"
    payload: ModerationSignal
    origin: Origin


RoomEvent = Annotated[Union[RoomActivityRecord, RoomSignalRecord], Field(discriminator="kind")]
ROOM_EVENT: TypeAdapter[RoomEvent] = TypeAdapter(RoomEvent)


def decode_room_event(raw: bytes) -> RoomActivityRecord | RoomSignalRecord:
    return ROOM_EVENT.validate_json(raw)


def encode_room_event(record: RoomActivityRecord | RoomSignalRecord) -> bytes:
    return record.model_dump_json().encode()
