"""The collaboration rules (pipeline.collaboration): the tool, which calls are asked or refused, how a
round travels from agent to agent, and the profile's `collaborators` contract."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from agents_tables.outcomes import Outcome
from gateway_app.contract import ids
from gateway_app.contract.collaboration import Frame
from gateway_app.contract.events import AgentProfile
from gateway_app.contract.internal import (
    ConsultationRecord,
    ConsultedRecord,
    MessageRecord,
    Origin,
    decode_agent_event,
    encode_agent_event,
    internal_key,
)
from gateway_app.observability.tracing import TraceState
from gateway_app.pipeline import collaboration
from gateway_app.pipeline.collaboration import DRAFT_CALL_PREFIX, Limits, Position
from gateway_app.pipeline.stages.outputs import send_outcome
from gateway_app.providers.base import ToolCall

ORIGIN = Origin(topic="ai-message-created", partition=0, offset=7, received_at_ms=1)
LIMITS = Limits(max_depth=2, max_rounds=3, timeout_ms=60_000)


def profile(agent_id: str = "a", *collaborators: dict, **extra) -> AgentProfile:
    return AgentProfile(agent_id=agent_id, version=1, provider="openai", model="gpt-4o-mini",
                        collaborators=list(collaborators), **extra)


def consult(call_id: str, agent_id: str, question: str = "why?") -> ToolCall:
    return ToolCall(call_id, "consult_agent", json.dumps({"agent_id": agent_id, "question": question}))


def at_root(agent_id: str = "a") -> Position:
    return Position((agent_id,), 0, Frame(message_id="m1"))


def test_the_tool_lists_the_collaborators_and_is_absent_without_them():
    tool = collaboration.consult_tool(profile("a", {"agentId": "b", "description": "knows parcels"}, {"agentId": "c"}))
    function = tool["function"]
    assert function["name"] == "consult_agent"
    assert function["parameters"]["properties"]["agent_id"]["enum"] == ["b", "c"]
    assert function["parameters"]["required"] == ["agent_id", "question"]
    assert "b (knows parcels); c" in function["description"]
    assert collaboration.consult_tool(profile("a")) is None


@pytest.mark.parametrize("collaborators, error", [
    ([{"agentId": "a"}], "its own collaborator"),
    ([{"agentId": "b"}, {"agentId": "b"}], "name an agent twice"),
    ([{"agentId": "b", "when": "always"}, {"agentId": "c", "when": "always"}], "at most one"),
    ([{"agentId": "b", "when": "sometimes"}], "always"),
])
def test_the_profile_refuses_collaborators_that_cannot_work(collaborators, error):
    with pytest.raises(ValidationError, match=error):
        profile("a", *collaborators)


def test_the_profile_refuses_a_tool_of_the_gateways_name():
    tool = {"type": "function", "function": {"name": "consult_agent"}}
    with pytest.raises(ValidationError, match="gateway's own"):
        profile("a", {"agentId": "b"}, tools=[tool])
    assert profile("a", tools=[tool]).tools  # without collaborators the name is free


def test_the_plan_asks_listed_agents_and_refuses_the_rest_with_a_result_for_every_call():
    plan = collaboration.plan(
        [consult("c1", "b"), consult("c2", "x"), ToolCall("c3", "get_weather", "{}"),
         ToolCall("c4", "consult_agent", '{"agent_id": "b"}'), consult("c5", "c", "and you?")],
        profile("a", {"agentId": "b"}, {"agentId": "c"}), at_root(), LIMITS)
    assert [(a.tool_call_id, a.agent_id, a.question, a.mode) for a in plan.asks] == \
        [("c1", "b", "why?", "tool"), ("c5", "c", "and you?", "tool")]
    assert [(g.tool_call_id, g.is_error) for g in plan.gathered] == [("c2", True), ("c3", True), ("c4", True)]
    assert [h.error_code for h in plan.hops] == ["collaborator_unknown", "collaboration_invalid_call"]
    assert plan.gathered[1].content == collaboration.NOT_RUN  # another tool in the same answer is not run


def test_loops_and_depth_are_cut_on_the_chain():
    b = profile("b", {"agentId": "a"}, {"agentId": "c"})
    deep = profile("c", {"agentId": "d"})
    assert collaboration.refusal("a", b, Position(("a", "b"), 0, Frame(message_id="m")), LIMITS)[0] == \
        "collaboration_loop"
    assert collaboration.refusal("c", b, Position(("a", "b"), 0, Frame(message_id="m")), LIMITS) is None  # hop 2
    code, reason = collaboration.refusal("d", deep, Position(("a", "b", "c"), 0, Frame(message_id="m")), LIMITS)
    assert code == "collaboration_depth" and "hop 3; the limit is 2" in reason


def test_a_round_asks_one_agent_at_a_time_and_comes_back_with_every_result():
    asks = collaboration.plan([consult("c1", "b"), consult("c2", "c")], profile("a", {"agentId": "b"}, {"agentId": "c"}),
                              at_root(), LIMITS).asks
    first = collaboration.next_record(asker="a", room_id="r", user_id="u", reply_to="m1", asks=asks, gathered=[],
                                      hops=[], chain=("a",), round_=1, frame=Frame(message_id="m1"), origin=ORIGIN,
                                      now_ms=1000)
    assert isinstance(first, ConsultationRecord) and first.agent_id == "b"
    assert first.payload.consultation_id == ids.consultation_id("m1", "c1")
    assert [r.agent_id for r in first.payload.remaining] == ["c"]
    second = collaboration.answered(first.payload, [], "b says hi", error=None, origin=ORIGIN, now_ms=2000)
    assert isinstance(second, ConsultationRecord) and second.agent_id == "c"  # b passes the round on to c
    assert second.payload.asked_at_ms == 2000
    done = collaboration.answered(second.payload, second.payload.hops, "", error=("rate_limited", "slow down"),
                                  origin=ORIGIN, now_ms=3000)
    assert isinstance(done, ConsultedRecord) and done.agent_id == "a"
    assert done.payload.message_id == ids.consulted_id("m1")
    results = done.as_tool_results
    assert (results.reply_to, [r.tool_call_id for r in results.results]) == ("m1", ["c1", "c2"])
    assert results.results[1].is_error and "agent c could not answer (rate_limited): slow down" in results.results[1].content
    assert [(h.agent_id, h.status, h.error_code) for h in done.payload.hops] == \
        [("b", "ok", None), ("c", "failed", "rate_limited")]


def test_records_travel_as_json_and_say_which_agent_they_are_for():
    record = collaboration.next_record(asker="a", room_id="r", user_id=None, reply_to="m1",
                                       asks=[collaboration.plan([consult("c1", "b")], profile("a", {"agentId": "b"}),
                                                                at_root(), LIMITS).asks[0]],
                                       gathered=[], hops=[], chain=("a",), round_=1, frame=Frame(message_id="m1"),
                                       origin=ORIGIN, now_ms=1)
    raw = encode_agent_event(record)
    assert internal_key(raw) == "b" and decode_agent_event(raw) == record
    assert internal_key(b'{"reply_id": "x"}') is None
    message = record.as_message
    assert (message.agent_id, message.content, message.message_id) == ("b", "why?", record.payload.consultation_id)


def test_positions_follow_the_chain():
    msg = MessageRecord.model_validate({"agent_id": "a", "origin": ORIGIN.model_dump(), "payload": {
        "message_id": "m1", "agent_id": "a", "room_id": "r", "content": "hi"}})
    assert collaboration.position_of(msg) == Position(("a",), 0, Frame(message_id="m1"))
    asked = collaboration.next_record(asker="a", room_id="r", user_id=None, reply_to="m1",
                                      asks=collaboration.plan([consult("c1", "b")], profile("a", {"agentId": "b"}),
                                                              at_root(), LIMITS).asks,
                                      gathered=[], hops=[], chain=("a",), round_=1, frame=Frame(message_id="m1"),
                                      origin=ORIGIN, now_ms=1)
    at_b = collaboration.position_of(asked)
    assert at_b.chain == ("a", "b") and at_b.round == 0 and at_b.consultation == asked.payload
    assert at_b.frame.message_id == "m1"


def test_a_draft_is_asked_of_the_always_collaborator_and_refined_after():
    drafting = profile("a", {"agentId": "b", "when": "always"})
    call = collaboration.draft_call(drafting, "m1", "Write a poem")
    assert call.id.startswith(DRAFT_CALL_PREFIX) and json.loads(call.arguments) == {"agent_id": "b", "question": "Write a poem"}
    assert re.fullmatch(r"[A-Za-z0-9_]+", call.id)  # every provider takes it as a call id
    assert collaboration.draft_call(drafting, "m2", "Write a poem").id != call.id  # unique in the conversation
    assert collaboration.draft_call(profile("a", {"agentId": "b"}), "m1", "x") is None
    (ask,) = collaboration.plan([call], profile("a", {"agentId": "b", "when": "always"}), at_root(), LIMITS).asks
    assert ask.mode == "always"
    asked = collaboration.next_record(asker="a", room_id="r", user_id=None, reply_to="m1", asks=[ask], gathered=[],
                                      hops=[], chain=("a",), round_=1, frame=Frame(message_id="m1"), origin=ORIGIN,
                                      now_ms=1)
    drafted = collaboration.answered(asked.payload, [], "Roses are red", error=None, origin=ORIGIN, now_ms=2)
    assert "Refine it" in collaboration.refine_instruction(drafted)
    failed = collaboration.answered(asked.payload, [], "", error=("agent_disabled", "off"), origin=ORIGIN, now_ms=2)
    assert "yourself" in collaboration.refine_instruction(failed)


def test_a_question_past_the_timeout_is_expired():
    asked = collaboration.next_record(asker="a", room_id="r", user_id=None, reply_to="m1",
                                      asks=collaboration.plan([consult("c1", "b")], profile("a", {"agentId": "b"}),
                                                              at_root(), LIMITS).asks,
                                      gathered=[], hops=[], chain=("a",), round_=1, frame=Frame(message_id="m1"),
                                      origin=ORIGIN, now_ms=1_000)
    assert not collaboration.expired(asked.payload, 61_000, LIMITS)
    assert collaboration.expired(asked.payload, 61_001, LIMITS)


async def test_a_passed_on_record_goes_to_its_agent_with_the_messages_traceparent():
    """The hop between agents carries the asker's trace context, so the collaborator's spans join its trace;
    a reply still goes to the room."""
    sent = []

    class Publisher:
        async def forward(self, agent_id, value, headers=None):
            sent.append(("forward", agent_id, headers))

        async def send_reply_bytes(self, room_id, value, headers=None):
            sent.append(("reply", room_id, headers))

    headers = [("traceparent", b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01")]
    ctx = SimpleNamespace(trace=TraceState(span=None, context=None, headers=headers),
                          message=SimpleNamespace(room_id="r"))
    record = collaboration.next_record(asker="a", room_id="r", user_id=None, reply_to="m1",
                                       asks=collaboration.plan([consult("c1", "b")], profile("a", {"agentId": "b"}),
                                                               at_root(), LIMITS).asks,
                                       gathered=[], hops=[], chain=("a",), round_=1, frame=Frame(message_id="m1"),
                                       origin=ORIGIN, now_ms=1)
    await send_outcome(Publisher(), ctx, Outcome(encode_agent_event(record)))
    await send_outcome(Publisher(), ctx, Outcome(b'{"reply_id": "x"}'))
    assert sent == [("forward", "b", headers), ("reply", "r", headers)]
