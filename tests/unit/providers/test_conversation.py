"""How each provider module renders a conversation (user, assistant, tool calls, tool results, failed
tool results) and JSON mode in its own wire form: pure mapping, no I/O."""

from __future__ import annotations

import pytest

from gateway_app.providers import anthropic as anthropic_provider
from gateway_app.providers import cohere as cohere_provider
from gateway_app.providers import openai_compat
from gateway_app.providers.base import ChatMessage, ChatRequest, ToolCall
from gateway_app.providers.echo import EchoProvider

WEATHER = ToolCall("call_1", "get_weather", '{"city": "Paris"}')
CLOCK = ToolCall("call_2", "get_time", "not json")
TOMORROW = ToolCall("call_3", "get_weather", '{"city": "Paris", "day": "tomorrow"}')
CONVERSATION = (
    ChatMessage("user", "weather and time in Paris?"),
    ChatMessage("assistant", "Let me check.", tool_calls=(WEATHER, CLOCK)),
    ChatMessage("tool", '{"temp": 21}', tool_call_id="call_1"),
    ChatMessage("tool", "clock broken", tool_call_id="call_2", is_error=True),
    ChatMessage("assistant", "21 degrees; the time is unknown."),
    ChatMessage("user", "and tomorrow?"),
    ChatMessage("assistant", "", tool_calls=(TOMORROW,)),
    ChatMessage("tool", "sunny", tool_call_id="call_3"),
)
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}


def request(messages=CONVERSATION, **fields) -> ChatRequest:
    return ChatRequest("model-x", "be brief", tuple(messages), 0.2, 50, **fields)


def openai_call(call: ToolCall) -> dict:
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}


def test_openai_renders_tool_calls_and_tool_messages():
    assert openai_compat.to_params(request(), stream=False)["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "weather and time in Paris?"},
        {"role": "assistant", "content": "Let me check.", "tool_calls": [openai_call(WEATHER), openai_call(CLOCK)]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
        {"role": "tool", "tool_call_id": "call_2", "content": "error: clock broken"},
        {"role": "assistant", "content": "21 degrees; the time is unknown."},
        {"role": "user", "content": "and tomorrow?"},
        {"role": "assistant", "content": None, "tool_calls": [openai_call(TOMORROW)]},
        {"role": "tool", "tool_call_id": "call_3", "content": "sunny"},
    ]


def test_openai_json_mode():
    assert "response_format" not in openai_compat.to_params(request(), stream=False)
    plain = openai_compat.to_params(request(response_format="json"), stream=False)
    assert plain["response_format"] == {"type": "json_object"}
    schema = openai_compat.to_params(request(response_format="json", json_schema=SCHEMA), stream=True)
    assert schema["response_format"] == {"type": "json_schema",
                                         "json_schema": {"name": "reply", "schema": SCHEMA, "strict": False}}
    # A schema without JSON mode asks for nothing.
    assert "response_format" not in openai_compat.to_params(request(json_schema=SCHEMA), stream=False)


def test_anthropic_renders_tool_blocks_in_alternating_turns():
    params = anthropic_provider.to_params(request())
    assert params["system"] == "be brief"
    assert params["messages"] == [
        {"role": "user", "content": "weather and time in Paris?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {}},  # invalid JSON -> {}
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": '{"temp": 21}', "is_error": False},
            {"type": "tool_result", "tool_use_id": "call_2", "content": "clock broken", "is_error": True},
        ]},
        {"role": "assistant", "content": "21 degrees; the time is unknown."},
        {"role": "user", "content": "and tomorrow?"},
        {"role": "assistant", "content": [  # no empty text block before the call
            {"type": "tool_use", "id": "call_3", "name": "get_weather", "input": {"city": "Paris", "day": "tomorrow"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_3", "content": "sunny", "is_error": False}]},
    ]


def test_anthropic_merges_the_user_words_after_tool_results_and_same_role_runs():
    messages = (
        ChatMessage("user", "first"), ChatMessage("user", "second"),
        ChatMessage("assistant", "", tool_calls=(WEATHER,)),
        ChatMessage("tool", "rain", tool_call_id="call_1"),
        ChatMessage("user", "thanks"),
    )
    assert anthropic_provider.to_params(request(messages))["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "call_1", "name": "get_weather",
                                           "input": {"city": "Paris"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "rain", "is_error": False},
            {"type": "text", "text": "thanks"},
        ]},
    ]


@pytest.mark.parametrize("arguments", ["", "[1, 2]", "{broken", "null"])
def test_anthropic_tool_input_is_always_an_object(arguments):
    messages = (ChatMessage("user", "hi"), ChatMessage("assistant", "", tool_calls=(ToolCall("c", "f", arguments),)),
                ChatMessage("tool", "ok", tool_call_id="c"))
    assert anthropic_provider.to_params(request(messages))["messages"][1]["content"][0]["input"] == {}


def test_anthropic_sends_no_json_parameter():
    params = anthropic_provider.to_params(request(response_format="json", json_schema=SCHEMA))
    assert set(params) == {"model", "max_tokens", "messages", "system"}


def test_cohere_renders_tool_plan_tool_calls_and_tool_messages():
    assert cohere_provider.to_params(request())["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "weather and time in Paris?"},
        {"role": "assistant", "tool_calls": [openai_call(WEATHER), openai_call(CLOCK)], "tool_plan": "Let me check."},
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": '{"temp": 21}'}]},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "error: clock broken"}]},
        {"role": "assistant", "content": "21 degrees; the time is unknown."},
        {"role": "user", "content": "and tomorrow?"},
        {"role": "assistant", "tool_calls": [openai_call(TOMORROW)]},  # no empty tool_plan
        {"role": "tool", "tool_call_id": "call_3", "content": [{"type": "text", "text": "sunny"}]},
    ]


def test_cohere_json_mode():
    assert "response_format" not in cohere_provider.to_params(request())
    assert cohere_provider.to_params(request(response_format="json"))["response_format"] == {"type": "json_object"}
    with_schema = cohere_provider.to_params(request(response_format="json", json_schema=SCHEMA))
    assert with_schema["response_format"] == {"type": "json_object", "json_schema": SCHEMA}


async def test_echo_answers_a_tool_result_and_counts_the_conversation():
    result = await EchoProvider().complete(request())
    assert result.text == "sunny" and result.finish_reason == "stop" and result.tool_calls == ()
    words = "be brief " + " ".join(m.content for m in CONVERSATION)
    assert result.usage.input_tokens == len(words.split())
    deltas = [event async for event in EchoProvider().stream(request())]
    assert deltas[-1] == result
