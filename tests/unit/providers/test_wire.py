"""Every provider through its official SDK against a local server speaking that provider's HTTP API:
request mapping, answer and usage mapping, streaming, and how each fault is classified."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, replace
from typing import Any, Callable

import pytest

from gateway_app.contract.events import ErrorCode
from gateway_app.providers.base import ChatMessage, ChatRequest, ChatResult, ProviderError, TextDelta
from gateway_app.providers.registry import ProviderPool
from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.azure_server import FakeAzureOpenAI
from tests.fakes.base import ServerThread
from tests.fakes.cohere_server import FakeCohere
from tests.fakes.openai_server import FakeOpenAI


@dataclass
class Wire:
    name: str
    server: Any
    env: Callable[[str], dict[str, str]]
    prefix: str
    path: str = ""


WIRES = [
    Wire("openai", FakeOpenAI, lambda url: {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": url + "/v1"},
         "fake-openai says:"),
    Wire("azure", FakeAzureOpenAI, lambda url: {"AZURE_OPENAI_API_KEY": "az-test", "AZURE_OPENAI_ENDPOINT": url},
         "fake-azure says:"),
    Wire("local", lambda: FakeOpenAI("local"), lambda url: {"LOCAL_LLM_BASE_URL": url + "/v1"}, "fake-openai says:"),
    Wire("anthropic", FakeAnthropic, lambda url: {"ANTHROPIC_API_KEY": "sk-ant-test", "ANTHROPIC_BASE_URL": url},
         "fake-anthropic says:"),
    Wire("cohere", FakeCohere, lambda url: {"CO_API_KEY": "co-test", "COHERE_BASE_URL": url}, "fake-cohere says:"),
]
ALL_ENV = ["OPENAI_API_KEY", "OPENAI_BASE_URL", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT", "LOCAL_LLM_BASE_URL",
           "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "CO_API_KEY", "COHERE_API_KEY", "COHERE_BASE_URL",
           "LOCAL_LLM_ALLOWED_HOSTS", "LOCAL_LLM_API_KEY"]


@pytest.fixture(scope="module")
def servers():
    running = {}
    threads = []
    for wire in WIRES:
        server = wire.server()
        thread = ServerThread(server.app).__enter__()
        threads.append(thread)
        running[wire.name] = (wire, server, thread)
    yield running
    for thread in threads:
        thread.__exit__()


@pytest.fixture(params=[w.name for w in WIRES])
def wire(request, servers, monkeypatch):
    for name in ALL_ENV:
        monkeypatch.delenv(name, raising=False)
    spec, server, thread = servers[request.param]
    for key, value in spec.env(thread.url).items():
        monkeypatch.setenv(key, value)
    return spec, server


@pytest.fixture(params=["aiohttp", "httpx"])
async def pool(request):
    """Each SDK under both HTTP stacks it supports (GATEWAY_PROVIDER_HTTP_TRANSPORT); cohere has its own."""
    providers = ProviderPool(timeout=5, http_transport=request.param)
    yield providers
    await providers.aclose()


def request(content: str, model: str = "model-x", system: str = "be brief") -> ChatRequest:
    return ChatRequest(model, system, (ChatMessage("user", content),), 0.2, 50, stop=("END",))


async def collect(stream) -> tuple[list[str], ChatResult]:
    deltas, result = [], None
    async for event in stream:
        if isinstance(event, TextDelta):
            assert result is None, "a delta after the result"
            deltas.append(event.text)
        else:
            result = event
    assert result is not None
    return deltas, result


async def test_answer_text_usage_and_request_id(wire, pool):
    spec, server = wire
    result = await pool.get(spec.name).complete(request("hello big world"))
    assert result.text == f"{spec.prefix} hello big world"
    assert result.finish_reason == "stop" and result.request_id
    assert result.usage.input_tokens == 5  # "be brief" + 3 words
    assert result.usage.output_tokens == len(result.text.split())
    # OpenAI-protocol and Anthropic fakes report the system prompt as cached; Cohere reports 0.
    assert result.usage.cached_input_tokens == (0 if spec.name == "cohere" else 2)


async def test_stream_pieces_join_to_the_same_answer_and_usage(wire, pool):
    spec, _ = wire
    provider = pool.get(spec.name)
    plain = await provider.complete(request("stream me please"))
    deltas, result = await collect(provider.stream(request("stream me please")))
    assert len(deltas) >= 4 and "".join(deltas) == result.text == plain.text
    assert result.usage == plain.usage and result.finish_reason == "stop"


async def test_request_fields_are_mapped(wire, pool):
    spec, server = wire
    await pool.get(spec.name).complete(request("mapping check", system="sys words"))
    sent = server.requests[-1]
    if spec.name == "anthropic":
        assert sent["system"] == "sys words" and sent["max_tokens"] == 50 and sent["stop_sequences"] == ["END"]
        assert sent["messages"] == [{"role": "user", "content": "mapping check"}]
    else:
        assert sent["messages"][0] == {"role": "system", "content": "sys words"}
        assert sent["max_tokens"] == 50
        assert sent.get("stop", sent.get("stop_sequences")) == ["END"]
    if spec.name == "azure":
        assert server.deployments[-1] == "model-x" and server.api_versions[-1]


WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}


async def test_tools_are_mapped_to_each_protocol(wire, pool):
    spec, server = wire
    with_tools = ChatRequest("model-x", "", (ChatMessage("user", "weather?"),), 0, 20, tools=(WEATHER,))
    await pool.get(spec.name).complete(with_tools)
    sent = server.requests[-1]["tools"]
    if spec.name == "anthropic":
        assert sent == [{"name": "get_weather", "description": "Weather in a city",
                         "input_schema": WEATHER["function"]["parameters"]}]
    else:
        assert sent == [WEATHER]


@pytest.mark.parametrize("streamed", [False, True], ids=["plain", "stream"])
async def test_tool_calls_come_back_normalized(wire, pool, streamed):
    spec, _ = wire
    provider = pool.get(spec.name)
    asking = ChatRequest("model-x", "", (ChatMessage("user", "TOOL: weather in Paris?"),), 0, 20, tools=(WEATHER,))
    result = (await collect(provider.stream(asking)))[1] if streamed else await provider.complete(asking)
    assert result.finish_reason == "tool_calls"
    assert len(result.tool_calls) == 1
    call = result.tool_calls[0]
    assert call.name == "get_weather" and call.id and json.loads(call.arguments) == {"city": "Paris"}
    assert result.usage.output_tokens > 0


FAULTS = [
    # (fault, error code, retriable)
    ("429", ErrorCode.PROVIDER_RATE_LIMITED, True),
    ("429-bare", ErrorCode.PROVIDER_RATE_LIMITED, True),
    ("500", ErrorCode.PROVIDER_UNAVAILABLE, True),
    ("502", ErrorCode.PROVIDER_UNAVAILABLE, True),
    ("503", ErrorCode.PROVIDER_UNAVAILABLE, True),
    ("400", ErrorCode.PROVIDER_REJECTED, False),
    ("401", ErrorCode.PROVIDER_AUTH_FAILED, False),
    ("404", ErrorCode.PROVIDER_REJECTED, False),
    ("422", ErrorCode.PROVIDER_REJECTED, False),
    ("reset", ErrorCode.PROVIDER_UNAVAILABLE, True),
    ("malformed", ErrorCode.PROVIDER_BAD_RESPONSE, True),
    ("error200", ErrorCode.PROVIDER_BAD_RESPONSE, True),
    ("hollow", ErrorCode.PROVIDER_BAD_RESPONSE, True),
    ("cut", ErrorCode.PROVIDER_UNAVAILABLE, True),  # the body dropped after the headers: a connection failure
]


@pytest.mark.parametrize("fault,code,retriable", FAULTS, ids=[f[0] for f in FAULTS])
async def test_faults_are_classified(wire, pool, fault, code, retriable):
    spec, _ = wire
    with pytest.raises(ProviderError) as caught:
        await pool.get(spec.name).complete(request(f"FAULT:{fault}"))
    error = caught.value
    assert error.retriable is retriable, error
    if code is not None:
        assert error.code == code, error
    if fault == "429":
        assert error.retry_after == 1.0 and error.status == 429
    if fault == "429-bare":
        assert error.retry_after is None
    if fault == "reset":  # not "timed out": the aiohttp bridge reports a reset as a connect timeout
        assert "connection failed" in str(error), error


STREAM_FAULTS = [
    ("429", ErrorCode.PROVIDER_RATE_LIMITED),
    ("503", ErrorCode.PROVIDER_UNAVAILABLE),
    ("cut", ErrorCode.PROVIDER_STREAM_INTERRUPTED),
    ("truncate", ErrorCode.PROVIDER_STREAM_INTERRUPTED),
    ("error200", None),
    ("malformed", None),
]


@pytest.mark.parametrize("fault,code", STREAM_FAULTS, ids=[f[0] for f in STREAM_FAULTS])
async def test_broken_streams_are_retriable_failures(wire, pool, fault, code):
    spec, _ = wire
    with pytest.raises(ProviderError) as caught:
        await collect(pool.get(spec.name).stream(request(f"FAULT:{fault}")))
    assert caught.value.retriable, caught.value
    if code is not None:
        assert caught.value.code == code, caught.value
    else:
        assert caught.value.code in (ErrorCode.PROVIDER_STREAM_INTERRUPTED, ErrorCode.PROVIDER_BAD_RESPONSE,
                                     ErrorCode.PROVIDER_UNAVAILABLE), caught.value


async def test_slow_first_byte_then_answer(wire, pool):
    spec, _ = wire
    result = await asyncio.wait_for(pool.get(spec.name).complete(request("FAULT:slow:300")), 5)
    assert result.text.endswith("FAULT:slow:300")


async def test_clients_are_reused(wire, pool):
    spec, _ = wire
    provider = pool.get(spec.name)
    await provider.complete(request("one"))
    await provider.complete(request("two"))
    assert pool.get(spec.name) is provider
    clients = getattr(provider, "_clients", None)
    assert clients is not None and len(clients) == 1


async def test_sdk_retries_are_off(wire, pool):
    spec, server = wire
    before = len(server.requests)
    with pytest.raises(ProviderError):
        await pool.get(spec.name).complete(request("FAULT:503"))
    assert len(server.requests) == before + 1  # one request: the gateway's retry loop is the only one


@pytest.mark.parametrize("name", ["openai", "azure", "local", "anthropic", "cohere"])
async def test_missing_configuration_is_not_configured_and_not_retried(name, monkeypatch, pool):
    for key in ALL_ENV:
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ProviderError) as caught:
        await pool.get(name).complete(request("hi"))
    assert caught.value.code == ErrorCode.PROVIDER_NOT_CONFIGURED and not caught.value.retriable
    with pytest.raises(ProviderError) as caught:  # streamed: the first step of the stream says so
        await anext(pool.get(name).stream(request("hi")))
    assert caught.value.code == ErrorCode.PROVIDER_NOT_CONFIGURED and not caught.value.retriable


async def test_local_base_url_override_only_to_allowed_hosts(servers, monkeypatch):
    # A provider reads its environment once, when constructed: each setting gets a fresh pool.
    _, _, thread = servers["local"]
    monkeypatch.setenv("LOCAL_LLM_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens there
    override = ChatRequest("m", "", (ChatMessage("user", "via override"),), 0, 10,
                           options={"base_url": f"{thread.url}/v1"})

    async def call_with_allowed_hosts(allowed: str | None) -> ChatResult:
        if allowed is None:
            monkeypatch.delenv("LOCAL_LLM_ALLOWED_HOSTS", raising=False)
        else:
            monkeypatch.setenv("LOCAL_LLM_ALLOWED_HOSTS", allowed)
        pool = ProviderPool(timeout=5)
        try:
            return await pool.get("local").complete(override)
        finally:
            await pool.aclose()

    with pytest.raises(ProviderError) as caught:
        await call_with_allowed_hosts(None)
    assert caught.value.code == ErrorCode.PROVIDER_NOT_CONFIGURED and "LOCAL_LLM_ALLOWED_HOSTS" in str(caught.value)
    with pytest.raises(ProviderError):
        await call_with_allowed_hosts("gpu-box.internal, 127.0.0.1:1")  # another port only
    result = await call_with_allowed_hosts(f"gpu-box.internal, 127.0.0.1:{thread.port}")
    assert result.text.endswith("via override")


async def test_several_answers_from_one_call_where_the_provider_gives_them(wire, pool):
    spec, _ = wire
    provider = pool.get(spec.name)
    many = replace(request("CHOICES:first##second##third"), n=3)
    result = await provider.complete(many)
    if getattr(provider, "supports_n", False):
        # (the fake rotates the parts for each request it saw with this message: any order, all three)
        assert sorted([result.text, *(a.text for a in result.alternatives)]) == ["first", "second", "third"]
        assert all(a.usage.input_tokens == 0 for a in result.alternatives)  # the call's usage is on the first
    else:
        assert result.alternatives == () and result.text in ("first", "second", "third")
