"""Agents that consult each other (profile `collaborators`). Pure: the `consult_agent` tool, which of an
answer's calls are asked and which refused, and the records that carry a round of consultations from
agent to agent (contract.collaboration says how they travel).

A round: the asking agent's answer calls `consult_agent` (a `tool` collaborator), or the gateway asks
its `always` collaborator for a draft before the agent's own call. Each call is checked (a listed
collaborator, not already in the chain, within the depth); refused calls and any other tool calls of
the same answer get an error result at once. The first call to ask becomes a `consultation` for that
agent; whoever answers it passes the round on (to the next collaborator to ask, or, when none is left,
back to the asker as `consulted`: the results of every call of the turn). Calls are asked one after
another, so no agent waits on several answers at once and no table holds a round: its records do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable

from gateway_app.contract import ids
from gateway_app.contract.collaboration import (
    CollaborationHop,
    CollaborationInfo,
    Consultation,
    ConsultCall,
    Consulted,
    Frame,
    GatheredResult,
)
from gateway_app.contract.events import AgentProfile, ErrorCode
from gateway_app.contract.internal import ConsultationRecord, ConsultedRecord, Origin
from gateway_app.contract.profile import CONSULT_TOOL
from gateway_app.providers.base import ToolCall

# The call the gateway makes for an `always` collaborator's draft: this prefix and the message's own id (a
# call id must be unique in its conversation: a later message's draft is another call).
DRAFT_CALL_PREFIX = "consult_draft_"
NOT_RUN = ("not run: consult_agent was called in the same answer, and the gateway runs it on its own; "
           "call this tool again if it is still needed")
MAX_QUESTION_CHARS = 20_000


@dataclass(frozen=True)
class Limits:
    max_depth: int
    max_rounds: int
    timeout_ms: int

    @classmethod
    def of(cls, settings: Any) -> "Limits":
        return cls(settings.collaboration_max_depth, settings.collaboration_max_rounds,
                   int(settings.collaboration_timeout_seconds * 1000))


@dataclass(frozen=True)
class Position:
    """Where an answer stands in its chain."""

    chain: tuple[str, ...]                 # agents from the room's down to this one (this one last)
    round: int                             # this agent's consultation rounds for this answer so far
    frame: Frame                           # where this agent's answer goes
    hops: tuple[CollaborationHop, ...] = ()  # of the whole chain so far

    @property
    def consultation(self) -> Consultation | None:
        return self.frame.consultation


def position_of(record: Any) -> Position:
    """The chain position of an answerable record (a message, tool results, a consultation, consulted)."""
    if isinstance(record, ConsultationRecord):
        asked = record.payload
        return Position((*asked.chain, asked.agent_id), 0,
                        Frame(message_id=asked.frame.message_id, consultation=asked), tuple(asked.hops))
    if isinstance(record, ConsultedRecord):
        done = record.payload
        return Position(tuple(done.chain), done.round, done.frame, tuple(done.hops))
    return Position((record.agent_id,), 0, Frame(message_id=record.payload.message_id))


def consult_tool(profile: AgentProfile) -> dict[str, Any] | None:
    """The tool the model gets when its profile lists collaborators (also `always` ones: an earlier
    draft is a call of it in the conversation, and some providers refuse a history whose tools are not
    declared)."""
    if not profile.collaborators:
        return None
    listed = "; ".join(f"{c.agent_id} ({c.description})" if c.description else c.agent_id
                       for c in profile.collaborators)
    return {"type": "function", "function": {
        "name": CONSULT_TOOL,
        "description": ("Ask another AI agent a question and get its answer as this tool's result. "
                        f"Agents: {listed}. Call it on its own, not together with other tools."),
        "parameters": {
            "type": "object",
            "properties": {
                "agent_id": {"type": "string", "enum": [c.agent_id for c in profile.collaborators]},
                "question": {"type": "string", "description": "The whole question, with what it needs."},
            },
            "required": ["agent_id", "question"],
        },
    }}


def has_consults(calls: Iterable[ToolCall]) -> bool:
    return any(call.name == CONSULT_TOOL for call in calls)


def refusal(agent_id: str, profile: AgentProfile, position: Position,
            limits: Limits) -> tuple[ErrorCode, str] | None:
    """Why `agent_id` may not be asked from here, or None."""
    if all(c.agent_id != agent_id for c in profile.collaborators):
        return ErrorCode.COLLABORATOR_UNKNOWN, f"{agent_id!r} is not a collaborator of {profile.agent_id!r}"
    if agent_id in position.chain:
        return ErrorCode.COLLABORATION_LOOP, f"{agent_id!r} is already in this chain ({' > '.join(position.chain)})"
    if len(position.chain) > limits.max_depth:
        return ErrorCode.COLLABORATION_DEPTH, (f"consulting {agent_id!r} would be hop {len(position.chain)}; "
                                               f"the limit is {limits.max_depth}")
    return None


def parsed(call: ToolCall) -> tuple[str, str] | None:
    """The call's (agent_id, question), or None when its arguments are not those of the tool."""
    try:
        arguments = json.loads(call.arguments or "{}")
    except ValueError:
        return None
    if not isinstance(arguments, dict):
        return None
    agent_id, question = arguments.get("agent_id"), arguments.get("question")
    if not isinstance(agent_id, str) or not isinstance(question, str) or not agent_id or not question.strip():
        return None
    return agent_id, question[:MAX_QUESTION_CHARS]


@dataclass
class Plan:
    asks: list[ConsultCall] = field(default_factory=list)          # in order
    gathered: list[GatheredResult] = field(default_factory=list)   # answered at once (errors)
    hops: list[CollaborationHop] = field(default_factory=list)     # the refused consultations


def refused_hop(agent_id: str, asker: str, mode: str, depth: int, code: ErrorCode, reason: str) -> CollaborationHop:
    return CollaborationHop(agent_id=agent_id, asked_by=asker, mode=mode, status="refused",
                            error_code=str(code), reason=reason, depth=depth)


def plan(calls: Iterable[ToolCall], profile: AgentProfile, position: Position, limits: Limits) -> Plan:
    out, depth, asker = Plan(), len(position.chain), profile.agent_id
    for call in calls:
        if call.name != CONSULT_TOOL:
            out.gathered.append(GatheredResult(tool_call_id=call.id, content=NOT_RUN, is_error=True))
            continue
        mode = "always" if call.id.startswith(DRAFT_CALL_PREFIX) else "tool"
        wanted = parsed(call)
        if wanted is None:
            reason = "consult_agent needs a listed agent_id and a non-empty question"
            out.hops.append(refused_hop("?", asker, mode, depth, ErrorCode.COLLABORATION_INVALID_CALL, reason))
            out.gathered.append(GatheredResult(tool_call_id=call.id, content=f"not asked: {reason}", is_error=True))
            continue
        agent_id, question = wanted
        refused = refusal(agent_id, profile, position, limits)
        if refused is not None:
            out.hops.append(refused_hop(agent_id, asker, mode, depth, *refused))
            out.gathered.append(GatheredResult(tool_call_id=call.id, content=f"not asked: {refused[1]}",
                                               is_error=True))
            continue
        out.asks.append(ConsultCall(tool_call_id=call.id, agent_id=agent_id, question=question, mode=mode))
    return out


def draft_call(profile: AgentProfile, message_id: str, question: str) -> ToolCall | None:
    """The call that asks the profile's `always` collaborator for a draft of the answer to `message_id`.
    Its id is made of letters, digits and underscores only (what every provider accepts in a call id)."""
    drafter = next((c for c in profile.collaborators if c.when == "always"), None)
    if drafter is None:
        return None
    arguments = json.dumps({"agent_id": drafter.agent_id, "question": question[:MAX_QUESTION_CHARS]})
    return ToolCall(DRAFT_CALL_PREFIX + ids.consultation_id(message_id, "draft").replace("-", ""), CONSULT_TOOL,
                    arguments)


def next_record(*, asker: str, room_id: str, user_id: str | None, reply_to: str, asks: list[ConsultCall],
                gathered: list[GatheredResult], hops: list[CollaborationHop], chain: tuple[str, ...], round_: int,
                frame: Frame, origin: Origin, now_ms: int) -> ConsultationRecord | ConsultedRecord:
    """The round's next record: a consultation for the next agent to ask, or (none left) the results of
    every call of the asking turn, back to the asker."""
    common = dict(room_id=room_id, user_id=user_id, asked_by=asker, reply_to=reply_to, gathered=gathered,
                  hops=hops, chain=list(chain), round=round_, frame=frame)
    if asks:
        first, rest = asks[0], asks[1:]
        asked = Consultation(agent_id=first.agent_id, remaining=rest, call=first, asked_at_ms=now_ms,
                             consultation_id=ids.consultation_id(reply_to, first.tool_call_id), **common)
        return ConsultationRecord(agent_id=first.agent_id, origin=origin, payload=asked)
    done = Consulted(agent_id=asker, message_id=ids.consulted_id(reply_to), **common)
    return ConsultedRecord(agent_id=asker, origin=origin, payload=done)


def answered(asked: Consultation, hops: Iterable[CollaborationHop], content: str, *, error: tuple[str, str] | None,
             origin: Origin, now_ms: int) -> ConsultationRecord | ConsultedRecord:
    """What a collaborator's answer (or its failure: `error` = (code, reason)) passes on."""
    depth = len(asked.chain)
    if error is None:
        hop = CollaborationHop(agent_id=asked.agent_id, asked_by=asked.asked_by, mode=asked.call.mode,
                               status="ok", depth=depth)
        result = GatheredResult(tool_call_id=asked.call.tool_call_id, content=content)
    else:
        code, reason = error
        hop = CollaborationHop(agent_id=asked.agent_id, asked_by=asked.asked_by, mode=asked.call.mode,
                               status="failed", error_code=code, reason=reason, depth=depth)
        result = GatheredResult(tool_call_id=asked.call.tool_call_id, is_error=True,
                                content=f"agent {asked.agent_id} could not answer ({code}): {reason}")
    return next_record(asker=asked.asked_by, room_id=asked.room_id, user_id=asked.user_id, reply_to=asked.reply_to,
                       asks=list(asked.remaining), gathered=[*asked.gathered, result], hops=[*hops, hop],
                       chain=tuple(asked.chain), round_=asked.round, frame=asked.frame, origin=origin, now_ms=now_ms)


def refine_instruction(record: Any) -> str | None:
    """For the answer after an `always` collaborator's draft: what the model is to do with it."""
    if not isinstance(record, ConsultedRecord):
        return None
    draft = next((r for r in record.payload.gathered if r.tool_call_id.startswith(DRAFT_CALL_PREFIX)), None)
    if draft is None:
        return None
    if draft.is_error:
        return "The colleague asked for a draft could not give one: answer the user's last message yourself."
    return ("A colleague drafted an answer to the user's last message: it is the result of your consult_agent "
            "call. Refine it into your own answer; do not consult again for this message.")


def info(hops: Iterable[CollaborationHop]) -> CollaborationInfo | None:
    listed = list(hops)
    return CollaborationInfo(consulted=listed) if listed else None


def expired(asked: Consultation, now_ms: int, limits: Limits) -> bool:
    return now_ms - asked.asked_at_ms > limits.timeout_ms
