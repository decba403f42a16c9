"""The internal `gateway-agent-events` record: every input, validated and re-keyed by agent id.

Profiles and messages travel on one topic so that, per agent, they are read in one order: a profile
change takes effect at an exact point in that agent's stream, and table rows and the messages that
read them always live on the same partition.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class Origin(BaseModel):
    """Where the input came from, and its raw bytes, so any later DLQ record can replay it exactly."""

    model_config = ConfigDict(frozen=True)

    topic: str
    partition: int
    offset: int
    key_b64: str | None = None
    value_b64: str | None = None
    received_at_ms: int


class AgentEvent(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["message", "profile", "profile_deleted"]
    agent_id: str
    payload: dict[str, Any]
    origin: Origin
