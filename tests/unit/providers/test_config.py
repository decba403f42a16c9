"""Keys and endpoints: read once at construction, the key never printed, per-request seam `config_for`."""

from __future__ import annotations

import dataclasses

import pytest

from gateway_app.contract.events import ErrorCode
from gateway_app.providers.anthropic import AnthropicProvider
from gateway_app.providers.azure import AzureOpenAIProvider
from gateway_app.providers.base import ChatMessage, ChatRequest, ProviderError
from gateway_app.providers.clients import ClientConfig
from gateway_app.providers.cohere import CohereProvider
from gateway_app.providers.local import LocalProvider
from gateway_app.providers.openai import OpenAIProvider

ENV = ["OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_API_VERSION", "AZURE_OPENAI_API_KEY",
       "AZURE_OPENAI_ENDPOINT", "LOCAL_LLM_BASE_URL", "LOCAL_LLM_API_KEY", "LOCAL_LLM_ALLOWED_HOSTS",
       "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "CO_API_KEY", "COHERE_API_KEY", "COHERE_BASE_URL", "CO_API_URL"]
MISSING = [
    (OpenAIProvider, "OPENAI_API_KEY is not set"),
    (AzureOpenAIProvider, "AZURE_OPENAI_API_KEY is not set"),
    (LocalProvider, "LOCAL_LLM_BASE_URL is not set"),
    (AnthropicProvider, "ANTHROPIC_API_KEY is not set"),
    (CohereProvider, "COHERE_API_KEY (or CO_API_KEY) is not set"),
]


def ask(model: str = "m", **options) -> ChatRequest:
    return ChatRequest(model, "", (ChatMessage("user", "hi"),), 0, 10, options=options)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("cls,message", MISSING, ids=[m[0].__name__ for m in MISSING])
async def test_constructed_without_keys_and_a_call_says_what_is_missing(cls, message):
    provider = cls(timeout=3)  # the worker starts without any provider keys
    with pytest.raises(ProviderError) as caught:
        await provider.complete(ask())
    assert caught.value.code == ErrorCode.PROVIDER_NOT_CONFIGURED and str(caught.value) == message


async def test_azure_without_endpoint_says_so_once_the_key_is_there(monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "az")
    provider = AzureOpenAIProvider()
    for attempt in (provider.complete(ask()), provider._client(ask())):
        with pytest.raises(ProviderError, match="^AZURE_OPENAI_ENDPOINT is not set$"):
            await attempt
    with pytest.raises(ProviderError, match="^AZURE_OPENAI_ENDPOINT is not set$"):
        provider.endpoint(ask())


def test_the_environment_is_read_once_at_construction(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-first")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://first/v1")
    provider = OpenAIProvider()
    monkeypatch.setenv("OPENAI_BASE_URL", "http://second/v1")
    monkeypatch.delenv("OPENAI_API_KEY")
    assert provider.endpoint(ask()) == "http://first/v1"
    assert provider.config.secret() == "sk-first"


def test_the_key_is_never_in_a_repr(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-very-secret")
    config = AnthropicProvider().config
    assert "very-secret" not in repr(config) and "very-secret" not in str(config)
    assert config.secret() == "sk-ant-very-secret"


def test_each_provider_reads_its_variables(monkeypatch):
    for name, value in {"OPENAI_ORG_ID": "org-1", "OPENAI_API_VERSION": "2025-01-01", "CO_API_URL": "http://co",
                        "CO_API_KEY": "co", "AZURE_OPENAI_ENDPOINT": "https://res.example/"}.items():
        monkeypatch.setenv(name, value)
    assert OpenAIProvider().config.setting("organization") == "org-1"
    assert OpenAIProvider().endpoint(ask()) == "https://api.openai.com/v1"
    azure = AzureOpenAIProvider()
    assert azure.config.setting("api_version") == "2025-01-01"
    assert azure.endpoint(ask("gpt-dep")) == "https://res.example/openai/deployments/gpt-dep"
    cohere = CohereProvider()
    assert cohere.endpoint(ask()) == "http://co" and cohere.config.secret() == "co"
    assert LocalProvider().config.secret() == "not-needed"  # the SDK insists on a key; local servers do not


async def test_local_override_is_resolved_per_request_and_gets_its_own_client(monkeypatch):
    monkeypatch.setenv("LOCAL_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("LOCAL_LLM_ALLOWED_HOSTS", "gpu-box")
    provider = LocalProvider()
    assert provider.endpoint(ask(base_url="http://gpu-box:8000/v1")) == "http://gpu-box:8000/v1"
    with pytest.raises(ProviderError, match="not in LOCAL_LLM_ALLOWED_HOSTS"):
        provider.endpoint(ask(base_url="http://elsewhere/v1"))
    first = await provider._client(ask())
    assert await provider._client(ask(base_url="http://gpu-box:8000/v1")) is not first
    assert await provider._client(ask()) is first and len(provider._clients) == 2
    await provider.aclose()


class PerAgentKeys(OpenAIProvider):
    """What a per-agent credential would look like: only `config_for` changes."""

    def config_for(self, request: ChatRequest) -> ClientConfig:
        key = request.options.get("agent_key")
        return ClientConfig.of(self.config.endpoint, key) if key else self.config


async def test_config_for_is_the_seam_the_client_cache_is_keyed_on(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    provider = PerAgentKeys()
    env_client = await provider._client(ask())
    agent_client = await provider._client(ask(agent_key="sk-agent"))
    assert agent_client is not env_client and agent_client.api_key == "sk-agent" and env_client.api_key == "sk-env"
    assert await provider._client(ask(agent_key="sk-agent")) is agent_client and len(provider._clients) == 2
    await provider.aclose()


def test_client_config_is_frozen_and_empty_values_are_unset():
    config = ClientConfig.of("", "", organization="", api_version="v")
    assert config.endpoint is None and config.key is None and config.extras == (("api_version", "v"),)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.endpoint = "http://elsewhere"  # type: ignore[misc]
