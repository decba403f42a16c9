"""What the model sees: the newest whole exchanges within the profile's budget, the continued tool
exchange last, tool calls only where their results follow; tool results checked against the calls."""

from __future__ import annotations

import pytest

from agents_tables.conversations import ToolOutput, Turn, conversation as conv_of
from gateway_app.contract.events import ContextSpec, ErrorCode, ToolResults
from gateway_app.errors import GatewayError
from gateway_app.pipeline import conversation as cw
from gateway_app.providers.base import ChatMessage, ToolCall

CALL = ToolCall("call_1", "weather", '{"city": "Paris"}')
NEW = [ChatMessage("user", "and now?")]


def msg(turn_id: str, tokens: int = 10, calls=(), reply: str = "") -> Turn:
    return Turn(turn_id, "message", 0, tokens, user=f"user {turn_id}", reply=reply or f"agent {turn_id}",
                tool_calls=tuple(calls))


def res(turn_id: str, reply_to: str, ids=("call_1",), tokens: int = 10) -> Turn:
    return Turn(turn_id, "tool_results", 0, tokens, results=tuple(ToolOutput(i, f"result {i}") for i in ids),
                reply_to=reply_to, reply=f"agent {turn_id}")


def roles(messages) -> list[str]:
    return [m.role for m in messages]


def test_without_context_the_model_sees_the_new_message_alone():
    conv = conv_of([msg("m1"), msg("m2")], 0, 0, 1.0)
    assert cw.window(conv, None, "m3", NEW).messages == tuple(NEW)
    assert cw.window(conv, ContextSpec(max_turns=0), "m3", NEW).messages == tuple(NEW)


def test_history_in_order_before_the_new_message():
    conv = conv_of([msg("m1"), msg("m2")], 0, 0, 1.0)
    window = cw.window(conv, ContextSpec(max_turns=10, max_tokens=1000), "m3", NEW)
    assert [m.content for m in window.messages] == ["user m1", "agent m1", "user m2", "agent m2", "and now?"]
    assert window.history_turns == 2


def test_the_token_budget_drops_the_oldest_turns_first():
    conv = conv_of([msg("m1", 50), msg("m2", 50), msg("m3", 50)], 0, 0, 1.0)
    window = cw.window(conv, ContextSpec(max_turns=10, max_tokens=120), "m4", NEW)
    assert [m.content for m in window.messages if m.role == "user"] == ["user m2", "user m3", "and now?"]


def test_the_turn_budget_never_cuts_an_exchange_in_half():
    conv = conv_of([msg("m1"), msg("m2", calls=[CALL]), res("t1", "m2")], 0, 0, 1.0)
    window = cw.window(conv, ContextSpec(max_turns=1, max_tokens=1000), "m3", NEW)
    assert window.messages == tuple(NEW)  # the newest exchange has 2 turns: it does not fit, m1 is older
    window = cw.window(conv, ContextSpec(max_turns=2, max_tokens=1000), "m3", NEW)
    assert roles(window.messages) == ["user", "assistant", "tool", "assistant", "user"]
    assert window.messages[1].tool_calls == (CALL,) and window.messages[2].tool_call_id == "call_1"


def test_calls_without_results_are_sent_as_text_only():
    conv = conv_of([msg("m1", calls=[CALL])], 0, 0, 1.0)
    window = cw.window(conv, ContextSpec(), "m2", NEW)
    assert window.messages[1] == ChatMessage("assistant", "agent m1")  # no dangling tool call


def test_tool_results_continue_their_exchange_last_even_when_others_came_between():
    conv = conv_of([msg("m1", calls=[CALL]), msg("m2")], 0, 0, 1.0)
    new = cw.tool_messages([ToolOutput("call_1", "sunny")])
    window = cw.window(conv, ContextSpec(), "t1", new, continued="m1")
    assert [m.content for m in window.messages] == ["user m2", "agent m2", "user m1", "agent m1", "sunny"]
    assert window.messages[3].tool_calls == (CALL,)
    alone = cw.window(conv, None, "t1", new, continued="m1")  # no context: the exchange alone
    assert roles(alone.messages) == ["user", "assistant", "tool"]


def test_a_redelivered_message_is_not_its_own_history():
    conv = conv_of([msg("m1"), msg("m2")], 0, 0, 1.0)
    window = cw.window(conv, ContextSpec(), "m2", NEW)
    assert [m.content for m in window.messages] == ["user m1", "agent m1", "and now?"]


def event(*ids: str, reply_to: str = "m1") -> ToolResults:
    return ToolResults(message_id="t9", reply_to=reply_to, agent_id="a", room_id="r",
                       results=[{"tool_call_id": i, "content": f"out {i}"} for i in ids])


def test_results_cover_every_call_in_order_a_missing_one_is_an_error_result():
    two = ToolCall("call_2", "time", "{}")
    conv = conv_of([msg("m1", calls=[CALL, two])], 0, 0, 1.0)
    outputs = cw.checked_results(conv, event("call_2"))
    assert outputs == (ToolOutput("call_1", cw.NO_RESULT, True), ToolOutput("call_2", "out call_2"))


@pytest.mark.parametrize("conv, ev, code", [
    (None, event("call_1"), ErrorCode.UNKNOWN_TOOL_CALL),
    (conv_of([msg("m1")], 0, 0, 1.0), event("call_1"), ErrorCode.UNKNOWN_TOOL_CALL),
    (conv_of([msg("m1", calls=[CALL])], 0, 0, 1.0), event("call_x"), ErrorCode.UNKNOWN_TOOL_CALL),
    (conv_of([msg("m1", calls=[CALL])], 0, 0, 1.0), event("call_1", "call_1"), ErrorCode.TOOL_CALL_ANSWERED),
    (conv_of([msg("m1", calls=[CALL]), res("t1", "m1")], 0, 0, 1.0), event("call_1"), ErrorCode.TOOL_CALL_ANSWERED),
])
def test_results_for_unknown_or_answered_calls_are_refused(conv, ev, code):
    with pytest.raises(GatewayError) as refused:
        cw.checked_results(conv, ev)
    assert refused.value.code is code


def test_the_ratio_follows_the_reported_count_within_bounds():
    assert cw.new_ratio(150, 100, 1.0) == 1.5
    assert cw.new_ratio(0, 100, 1.2) == 1.2  # nothing reported: keep what we had
    assert cw.new_ratio(10_000, 10, 1.0) == cw.MAX_RATIO
    assert cw.corrected(1.5, 10) == 15
