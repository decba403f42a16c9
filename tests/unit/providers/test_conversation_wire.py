"""Conversations through the official SDKs against the fake servers: a multi-turn history with a tool
round trip is accepted, a history the real API would refuse is refused with a 400, JSON mode reaches the
wire, and the fakes' scripted answers (`REPLY:`) work plain and streamed."""

from __future__ import annotations

import json

import anthropic
import pytest

from gateway_app.contract.events import ErrorCode
from gateway_app.providers.base import ChatMessage, ChatRequest, ChatResult, ProviderError, TextDelta, ToolCall
from gateway_app.providers.registry import ProviderPool
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.azure_server import FakeAzureOpenAI
from tests.fakes.base import ServerThread
from tests.fakes.cohere_server import FakeCohere
from tests.fakes.openai_server import FakeOpenAI

FAKES = {
    "openai": (FakeOpenAI, lambda url: {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": url + "/v1"},
               "fake-openai says:"),
    "azure": (FakeAzureOpenAI, lambda url: {"AZURE_OPENAI_API_KEY": "az-test", "AZURE_OPENAI_ENDPOINT": url},
              "fake-azure says:"),
    "anthropic": (FakeAnthropic, lambda url: {"ANTHROPIC_API_KEY": "sk-ant-test", "ANTHROPIC_BASE_URL": url},
                  "fake-anthropic says:"),
    "cohere": (FakeCohere, lambda url: {"CO_API_KEY": "co-test", "COHERE_BASE_URL": url}, "fake-cohere says:"),
}
CITY = {"type": "object", "properties": {"city": {"type": "string"}}}
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city", "parameters": CITY}}
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}


@pytest.fixture(scope="module")
def servers():
    running = {name: (server := make(), ServerThread(server.app).__enter__()) for name, (make, _, _) in FAKES.items()}
    yield running
    for _, thread in running.values():
        thread.__exit__()


@pytest.fixture(params=list(FAKES))
def wire(request, servers, monkeypatch):
    """(provider name, its fake, its answer prefix) with only that provider's environment set."""
    for _, env, _ in FAKES.values():
        for key in env(""):
            monkeypatch.delenv(key, raising=False)
    server, thread = servers[request.param]
    for key, value in FAKES[request.param][1](thread.url).items():
        monkeypatch.setenv(key, value)
    return request.param, server, FAKES[request.param][2]


@pytest.fixture
async def pool():
    providers = ProviderPool(timeout=5)
    yield providers
    await providers.aclose()


def chat(*messages: ChatMessage, **fields) -> ChatRequest:
    return ChatRequest("model-x", "be brief", messages, 0.2, 50, tools=(WEATHER,), **fields)


async def call(provider, request: ChatRequest, streamed: bool) -> ChatResult:
    if not streamed:
        return await provider.complete(request)
    deltas, result = [], None
    async for event in provider.stream(request):
        if isinstance(event, TextDelta):
            deltas.append(event.text)
        else:
            result = event
    assert result is not None and "".join(deltas) == result.text
    return result


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "stream"])
async def test_a_tool_round_trip_and_the_next_turn_are_accepted(wire, pool, streamed):
    name, server, prefix = wire
    provider = pool.get(name)
    history = [ChatMessage("user", "TOOL: weather in Paris?")]
    asked = await call(provider, chat(*history), streamed)
    assert asked.finish_reason == "tool_calls" and len(asked.tool_calls) == 1
    # The model's own call ids come back with the results (one failed), then the user goes on.
    history += [ChatMessage("assistant", asked.text, tool_calls=asked.tool_calls),
                ChatMessage("tool", '{"temp": 21}', tool_call_id=asked.tool_calls[0].id)]
    answered = await call(provider, chat(*history), streamed)
    assert answered.text == f'{prefix} {{"temp": 21}}' and answered.finish_reason == "stop"
    history += [ChatMessage("assistant", answered.text), ChatMessage("user", "and tomorrow?")]
    next_turn = await call(provider, chat(*history), streamed)
    assert next_turn.text == f"{prefix} and tomorrow?"
    assert len(server.requests[-1]["messages"]) == len(history) + (0 if name == "anthropic" else 1)  # + system


async def test_a_tool_result_may_ask_for_another_tool(wire, pool):
    name, _, _ = wire
    first = ToolCall("call_a", "get_weather", '{"city": "Paris"}')
    again = await pool.get(name).complete(chat(
        ChatMessage("user", "weather?"), ChatMessage("assistant", "", tool_calls=(first,)),
        ChatMessage("tool", "TOOL: need the country too", tool_call_id="call_a")))
    assert again.finish_reason == "tool_calls" and json.loads(again.tool_calls[0].arguments) == {"city": "Paris"}


async def test_a_failed_tool_result_is_accepted(wire, pool):
    name, _, prefix = wire
    failing = ToolCall("call_f", "get_weather", '{"city": "Paris"}')
    result = await pool.get(name).complete(chat(
        ChatMessage("user", "weather?"), ChatMessage("assistant", "", tool_calls=(failing,)),
        ChatMessage("tool", "timeout", tool_call_id="call_f", is_error=True)))
    # OpenAI and Cohere have no error flag: the failure is said in the text.
    assert result.text == (f"{prefix} timeout" if name == "anthropic" else f"{prefix} error: timeout")


WRONG = {
    "unknown call id": (ChatMessage("user", "weather?"),
                        ChatMessage("assistant", "", tool_calls=(ToolCall("call_1", "get_weather", "{}"),)),
                        ChatMessage("tool", "sunny", tool_call_id="call_other")),
    "unanswered call": (ChatMessage("user", "weather?"),
                        ChatMessage("assistant", "", tool_calls=(ToolCall("call_1", "get_weather", "{}"),
                                                                 ToolCall("call_2", "get_weather", "{}"))),
                        ChatMessage("tool", "sunny", tool_call_id="call_1"),
                        ChatMessage("user", "well?")),
    "call at the end": (ChatMessage("user", "weather?"),
                        ChatMessage("assistant", "", tool_calls=(ToolCall("call_1", "get_weather", "{}"),))),
    "result without a call": (ChatMessage("user", "weather?"), ChatMessage("tool", "sunny", tool_call_id="call_1")),
}


@pytest.mark.parametrize("case", list(WRONG))
async def test_a_history_the_api_refuses_is_a_400(wire, pool, case):
    name, server, _ = wire
    before = len(server.requests)
    with pytest.raises(ProviderError) as caught:
        await pool.get(name).complete(chat(*WRONG[case]))
    assert caught.value.status == 400 and caught.value.code == ErrorCode.PROVIDER_REJECTED
    assert not caught.value.retriable and "tool" in str(caught.value)
    assert len(server.requests) == before + 1  # recorded even when refused


async def test_anthropic_refuses_a_first_assistant_turn(servers, monkeypatch, pool):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", servers["anthropic"][1].url)
    with pytest.raises(ProviderError) as caught:
        await pool.get("anthropic").complete(chat(ChatMessage("assistant", "hello"), ChatMessage("user", "hi")))
    assert caught.value.status == 400 and "first message" in str(caught.value)


@pytest.mark.parametrize("body,says", [
    ({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}, "alternate"),
    ({"messages": [{"role": "user", "content": "a"}], "response_format": {"type": "json_object"}}, "response_format"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]}, "non-empty"),
    ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": [
        {"type": "tool_use", "id": "t1", "name": "f", "input": {}}]}, {"role": "user", "content": [
        {"type": "text", "text": "first"}, {"type": "tool_result", "tool_use_id": "t1", "content": "x"}]}]},
     "tool_result"),  # the results must open the next turn
])
async def test_the_anthropic_fake_refuses_what_the_api_refuses(servers, body, says):
    client = anthropic.AsyncAnthropic(api_key="sk-ant-test", base_url=servers["anthropic"][1].url, max_retries=0)
    async with client:
        with pytest.raises(anthropic.BadRequestError) as caught:
            await client.messages.create(model="m", max_tokens=10, messages=body["messages"],
                                         extra_body={k: v for k, v in body.items() if k != "messages"})
    assert caught.value.status_code == 400 and says in caught.value.message
    assert caught.value.body["error"]["type"] == "invalid_request_error"


async def test_json_mode_reaches_the_wire(wire, pool):
    name, server, _ = wire
    provider = pool.get(name)
    await provider.complete(chat(ChatMessage("user", "as JSON"), response_format="json"))
    plain = server.requests[-1].get("response_format")
    await provider.complete(chat(ChatMessage("user", "as JSON"), response_format="json", json_schema=SCHEMA))
    with_schema = server.requests[-1].get("response_format")
    if name == "anthropic":  # no such parameter: the system prompt says it
        assert plain is None and with_schema is None
    elif name == "cohere":
        assert plain == {"type": "json_object"} and with_schema == {"type": "json_object", "json_schema": SCHEMA}
    else:
        assert plain == {"type": "json_object"}
        assert with_schema == {"type": "json_schema", "json_schema": {"name": "reply", "schema": SCHEMA,
                                                                      "strict": False}}


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "stream"])
async def test_scripted_replies(wire, pool, streamed):
    name, _, _ = wire
    provider = pool.get(name)
    exact = await call(provider, chat(ChatMessage("user", 'REPLY:{"answer": "yes"}')), streamed)
    assert exact.text == '{"answer": "yes"}'
    script = 'REPLY:not json||{"answer": "fixed"}'
    first = await call(provider, chat(ChatMessage("user", script)), streamed)
    assert first.text == "not json"
    repair = chat(ChatMessage("user", script), ChatMessage("assistant", first.text),
                  ChatMessage("user", "That was not valid JSON: reply again."))
    second = await call(provider, repair, streamed)
    assert second.text == '{"answer": "fixed"}'
    assert second.usage.output_tokens == 2  # usage counted as for any answer: its words
