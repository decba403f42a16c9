"""Every provider fake at once (one server each, in threads), and the environment that points a worker's
provider SDKs at them."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from tests.fakes.anthropic_server import FakeAnthropic
from tests.fakes.azure_server import FakeAzureOpenAI
from tests.fakes.base import FakeServer, ServerThread
from tests.fakes.cohere_server import FakeCohere
from tests.fakes.openai_server import FakeOpenAI

PROVIDERS = ["openai", "azure", "local", "anthropic", "cohere"]
MODEL = {"openai": "gpt-4o-mini", "azure": "gpt4o-prod", "local": "llama-3.1-8b", "anthropic": "claude-haiku-4-5",
         "cohere": "command-r-08-2024"}


@contextmanager
def running_fakes() -> Iterator[tuple[dict[str, FakeServer], dict[str, ServerThread]]]:
    servers = {"openai": FakeOpenAI(), "azure": FakeAzureOpenAI(), "local": FakeOpenAI("local"),
               "anthropic": FakeAnthropic(), "cohere": FakeCohere()}
    threads = {name: ServerThread(server.app).__enter__() for name, server in servers.items()}
    try:
        yield servers, threads
    finally:
        for thread in threads.values():
            thread.__exit__()


def provider_env(threads: dict[str, ServerThread]) -> dict[str, str]:
    return {
        "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": threads["openai"].url + "/v1",
        "AZURE_OPENAI_API_KEY": "az-test", "AZURE_OPENAI_ENDPOINT": threads["azure"].url,
        "LOCAL_LLM_BASE_URL": threads["local"].url + "/v1",
        "ANTHROPIC_API_KEY": "sk-ant-test", "ANTHROPIC_BASE_URL": threads["anthropic"].url,
        "CO_API_KEY": "co-test", "COHERE_BASE_URL": threads["cohere"].url,
        "GATEWAY_PRELOAD_PROVIDERS": ",".join(PROVIDERS),  # as in production: every SDK loaded before /ready
    }
