"""The openai provider through the official SDK against a local server speaking the real HTTP API."""

import pytest

from gateway_app.contract.events import ErrorCode
from gateway_app.providers.base import ChatMessage, ChatRequest, ProviderError, ProviderNotConfigured
from gateway_app.providers.openai import OpenAIProvider
from tests.fakes.openai_server import FakeOpenAI, ServerThread


@pytest.fixture(scope="module")
def fake():
    server = FakeOpenAI()
    with ServerThread(server.app) as thread:
        yield server, thread


@pytest.fixture
def provider(fake, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", fake[1].url)
    return OpenAIProvider()


def request(content: str) -> ChatRequest:
    return ChatRequest("gpt-4o-mini", "be brief", (ChatMessage("user", content),), 0.2, 50, stop=("END",))


async def test_completion_maps_text_usage_and_request_fields(fake, provider):
    result = await provider.complete(request("hello world"))
    assert result.text == "fake-openai says: hello world" and result.finish_reason == "stop"
    assert result.usage.input_tokens == 4 and result.usage.output_tokens == 4
    assert result.request_id
    sent = fake[0].requests[-1]
    assert sent["messages"][0] == {"role": "system", "content": "be brief"}
    assert sent["max_tokens"] == 50 and sent["temperature"] == 0.2 and sent["stop"] == ["END"]
    await provider.aclose()


@pytest.mark.parametrize("status, retriable", [(429, True), (500, True), (503, True), (400, False), (404, False)])
async def test_http_errors_are_classified_once(provider, status, retriable):
    with pytest.raises(ProviderError) as caught:
        await provider.complete(request(f"FAULT:{status}"))
    assert caught.value.status == status and caught.value.retriable is retriable
    assert caught.value.code == ErrorCode.PROVIDER_ERROR
    await provider.aclose()


async def test_missing_key_is_not_configured(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ProviderNotConfigured) as caught:
        await OpenAIProvider().complete(request("hi"))
    assert caught.value.code == ErrorCode.PROVIDER_NOT_CONFIGURED and not caught.value.retriable


async def test_sdk_retries_are_off(fake, provider):
    before = len(fake[0].requests)
    with pytest.raises(ProviderError):
        await provider.complete(request("FAULT:503"))
    assert len(fake[0].requests) == before + 1
    await provider.aclose()
