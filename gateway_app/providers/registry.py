"""Provider registry: name -> "module:Class", imported lazily; one instance (and its clients) per name.

Adding a provider is one module implementing `base.Provider` plus one line here.
"""

from __future__ import annotations

import asyncio
import importlib

from gateway_app.providers.base import Provider

PROVIDERS: dict[str, str] = {
    "echo": "gateway_app.providers.echo:EchoProvider",
    "openai": "gateway_app.providers.openai:OpenAIProvider",
    "azure": "gateway_app.providers.azure:AzureOpenAIProvider",
    "local": "gateway_app.providers.local:LocalProvider",
    "anthropic": "gateway_app.providers.anthropic:AnthropicProvider",
    "cohere": "gateway_app.providers.cohere:CohereProvider",
}


def is_known(name: str) -> bool:
    return name in PROVIDERS


def _load(name: str, timeout: float) -> Provider:
    module_name, _, class_name = PROVIDERS[name].partition(":")
    return getattr(importlib.import_module(module_name), class_name)(timeout=timeout)


class ProviderPool:
    """Creates each provider once, on first use, so its pooled connections are reused; closes them all."""

    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = timeout  # the SDK clients' own timeout; the gateway's per-attempt timeout is the real bound
        self._providers: dict[str, Provider] = {}
        self._loading: dict[str, asyncio.Future[Provider]] = {}

    def get(self, name: str) -> Provider:
        if name not in self._providers:
            self._providers[name] = _load(name, self.timeout)
        return self._providers[name]

    async def load(self, name: str) -> Provider:
        """`get` for the event loop: importing an SDK the first time takes up to seconds (anthropic's about
        2.5 s), which would stall every call in flight, so it happens in a thread, once per provider."""
        provider = self._providers.get(name)
        if provider is not None:
            return provider
        loading = self._loading.get(name)
        if loading is None:
            loading = self._loading[name] = asyncio.ensure_future(asyncio.to_thread(_load, name, self.timeout))
        provider = await asyncio.shield(loading)
        self._providers.setdefault(name, provider)
        return self._providers[name]

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()
        self._providers.clear()
