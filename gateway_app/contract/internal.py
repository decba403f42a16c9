"""The internal `gateway-agent-events` record: every input, validated and re-keyed by agent id.

Profiles and messages travel on one topic so that, per agent, they are read in one order: a profile
change takes effect at an exact point in that agent's stream, and table rows and the messages that
read them always live on the same partition.

A record is a discriminated union on `kind` (message | profile | profile deleted), decoded once with its
typed payload. The bytes on the topic are `{"kind", "agent_id", "payload", "origin"}` with the payload in
snake_case, as the intake wrote them since contract v1.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from gateway_app.contract.events import AgentProfile, AgentProfileDeleted, MessageCreated


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


AgentEvent = Annotated[Union[MessageRecord, ProfileRecord, ProfileDeletedRecord], Field(discriminator="kind")]
AGENT_EVENT: TypeAdapter[AgentEvent] = TypeAdapter(AgentEvent)


def decode_agent_event(raw: bytes) -> MessageRecord | ProfileRecord | ProfileDeletedRecord:
    """Raises pydantic's ValidationError: only the gateway writes this topic, so a bad record is a bug."""
    return AGENT_EVENT.validate_json(raw)


def encode_agent_event(record: MessageRecord | ProfileRecord | ProfileDeletedRecord) -> bytes:
    # by_alias=False: the payload goes out in snake_case, whatever case the input used.
    return record.model_dump_json().encode()
