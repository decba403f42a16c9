"""Agents that consult each other: the records a consultation travels as, and what a reply says of it.

A question from one agent to another is a record on `gateway-agent-events`, so it is answered at its
exact place in the other agent's stream, by that agent's own pipeline (its profile, limits, budget and
conversation), and survives any worker's crash like every other record:

    consultation  (key: the collaborator)      one question, answered by the collaborator's pipeline; the
                                               answer goes back to the asker, never to the room
    consulted     (key: the agent that asked)  the results so far of the asking turn's tool calls; the
                                               asker asks its next collaborator, or calls its model with
                                               them (a tool round trip, as with the platform's tools)

Both carry the chain of agents from the room's to the asker (loops and depth are cut on it) and the
`frame`: where the asking agent's own final answer goes (the room, as a reply to the user's message, or
back to the agent that consulted it).
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from gateway_app.contract.model import _Output

Mode = Literal["always", "tool"]


class CollaborationHop(_Output):
    """One consultation of a message's chain, as its reply reports it."""

    agent_id: str                       # the collaborator asked
    asked_by: str                       # the agent that asked it
    mode: Mode                          # `always` (it drafted the answer) or `tool` (the model asked it)
    status: Literal["ok", "failed", "refused"]  # answered; failed (its own error, e.g. rate limited); not asked
    error_code: str | None = None       # failed: the collaborator's error code; refused: why it was not asked
    reason: str | None = None
    depth: int                          # 1: asked by the room's agent; 2: by an agent that agent consulted


class CollaborationInfo(_Output):
    """Profile `collaborators`: every consultation the answer drew on, in order."""

    consulted: list[CollaborationHop]


class _Internal(BaseModel):
    model_config = ConfigDict(frozen=True)


class ConsultCall(_Internal):
    """A `consult_agent` call (or an `always` collaborator's draft request) still to be asked."""

    tool_call_id: str
    agent_id: str
    question: str
    mode: Mode = "tool"


class GatheredResult(_Internal):
    tool_call_id: str
    content: str
    is_error: bool = False


class Frame(_Internal):
    """Where an agent's final answer goes: a reply to the room's message, or (`consultation` set) back
    to the agent that consulted it."""

    message_id: str                     # the room's message the whole chain answers
    consultation: Optional["Consultation"] = None


class _Round(_Internal):
    """What the asking agent's consultation round carries from hop to hop."""

    agent_id: str                       # the record's agent (its key)
    room_id: str
    user_id: str | None = None
    asked_by: str                       # the agent whose turn made the calls
    reply_to: str                       # that turn's id (its message id): the results answer its calls
    remaining: list[ConsultCall] = Field(default_factory=list)  # calls still to ask, after this record
    gathered: list[GatheredResult] = Field(default_factory=list)  # results of that turn's calls so far
    hops: list[CollaborationHop] = Field(default_factory=list)    # of the whole chain, in order
    chain: list[str]                    # agents from the room's down to the asker (the asker last)
    round: int = Field(ge=1)            # the asker's consultation rounds for this answer, this one included
    frame: Frame                        # the asker's


class Consultation(_Round):
    """`kind: consultation`, for the collaborator (`agent_id`)."""

    consultation_id: str                # the collaborator's message id for it (deterministic)
    call: ConsultCall                   # the call it answers
    asked_at_ms: int                    # a collaborator reading it later than the timeout does not call


class Consulted(_Round):
    """`kind: consulted`, for the asker (`agent_id` == `asked_by`): answered like tool results."""

    message_id: str                     # this continuation's id (the asker's turn id for the results)


Frame.model_rebuild()
