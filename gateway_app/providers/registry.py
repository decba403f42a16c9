"""Provider registry: name -> "module:Class", imported lazily; one instance (and client) per name."""

from __future__ import annotations

import importlib

from gateway_app.providers.base import Provider

PROVIDERS: dict[str, str] = {
    "echo": "gateway_app.providers.echo:EchoProvider",
    "openai": "gateway_app.providers.openai:OpenAIProvider",
}


def is_known(name: str) -> bool:
    return name in PROVIDERS


def _load(name: str) -> Provider:
    module_name, _, class_name = PROVIDERS[name].partition(":")
    return getattr(importlib.import_module(module_name), class_name)()


class ProviderPool:
    """Creates each provider once, on first use, so its pooled connections are reused; closes them all."""

    def __init__(self) -> None:
        self._providers: dict[str, Provider] = {}

    def get(self, name: str) -> Provider:
        if name not in self._providers:
            self._providers[name] = _load(name)
        return self._providers[name]

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()
        self._providers.clear()
