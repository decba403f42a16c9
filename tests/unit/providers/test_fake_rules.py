"""The fake servers' own rules, without a server: the scripted answers, the text of any message form,
and the tool-call sequences Chat Completions and Chat v2 refuse."""

from __future__ import annotations

import pytest

from tests.fakes.anthropic_server import request_problem, user_texts
from tests.fakes.base import content_text, scripted_reply, tool_sequence_problem
from tests.fakes.cohere_server import response_format_problem as cohere_format_problem
from tests.fakes.openai_server import response_format_problem as openai_format_problem


@pytest.mark.parametrize("users,reply", [
    ([], None),
    (["hello"], None),
    (["REPLY:exact text"], "exact text"),
    (["REPLY:", "more"], ""),
    (["REPLY:a||b"], "a"),
    (["REPLY:a||b", "fix it"], "b"),
    (["REPLY:a||b||c", "fix it"], "b||c"),  # only the first `||` splits
    (["hello", "REPLY:late"], None),        # only the first user message scripts
])
def test_scripted_reply(users, reply):
    assert scripted_reply(users) == reply


def test_content_text_reads_every_form():
    assert content_text(None) == "" and content_text("plain") == "plain"
    blocks = [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "21 degrees"}]},
              {"type": "tool_result", "tool_use_id": "u", "content": "sunny"},
              {"type": "tool_use", "id": "x", "name": "f", "input": {}},
              {"type": "text", "text": "thanks"}]
    assert content_text(blocks) == "21 degrees sunny thanks"


def test_anthropic_user_messages_are_the_turns_with_words():
    messages = [{"role": "user", "content": "REPLY:a||b"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "x"}]}]
    assert user_texts(messages) == ["REPLY:a||b"]  # tool results alone are not the user's words
    assert request_problem({"model": "m", "max_tokens": 5, "messages": messages}) is None


CALL = {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
                                                              "function": {"name": "f", "arguments": "{}"}}]}


@pytest.mark.parametrize("messages,problem", [
    ([{"role": "user", "content": "a"}], None),
    ([{"role": "user", "content": "a"}, CALL, {"role": "tool", "tool_call_id": "c1", "content": "x"}], None),
    ([{"role": "user", "content": "a"}, CALL, {"role": "user", "content": "b"},
      {"role": "tool", "tool_call_id": "c1", "content": "x"}], "did not have response messages: c1"),
    ([CALL, {"role": "tool", "tool_call_id": "c1", "content": "x"},
      {"role": "tool", "tool_call_id": "c2", "content": "y"}], "unknown tool_call_id 'c2'"),
])
def test_tool_sequence_problem(messages, problem):
    found = tool_sequence_problem(messages)
    assert found == problem if problem is None else problem in found


def test_json_mode_shapes():
    assert openai_format_problem({"type": "json_object"}) is None
    assert openai_format_problem({"type": "json_schema", "json_schema": {"name": "reply", "schema": {}}}) is None
    assert openai_format_problem({"type": "json_schema", "json_schema": {"schema": {}}}) is not None
    assert openai_format_problem({"type": "xml"}) is not None
    assert cohere_format_problem({"type": "json_object", "json_schema": {"type": "object"}}) is None
    assert cohere_format_problem({"type": "text", "json_schema": {"type": "object"}}) is not None
    assert cohere_format_problem({"type": "json_schema"}) is not None
