"""Provider registry: name -> "module:Class", imported lazily; one instance (and its clients) per name.

Adding a provider is one module implementing `base.Provider` plus one line here (or, for a plugin, an
entry point that inserts its "module:Class" into `PROVIDERS` at start).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from typing import Iterable

from gateway_app.providers.base import Provider, ProviderNotConfigured
from gateway_app.providers.clients import IMPORT_LOCK, SDKProvider, in_sdk_thread

log = logging.getLogger(__name__)

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


_IMPORTING = IMPORT_LOCK  # one import (or client build) at a time, see `clients.IMPORT_LOCK`


def _load(name: str, timeout: float, http_transport: str = "aiohttp") -> Provider:
    """Import and construct the provider; any failure is this provider's `ProviderNotConfigured`, so the
    message that needed it gets an error reply (and a plugin's broken import never takes the worker down)."""
    target = PROVIDERS.get(name)
    if target is None:
        raise ProviderNotConfigured(f"no provider named {name!r}")
    module_name, _, class_name = target.partition(":")
    try:
        with _IMPORTING:
            cls = getattr(importlib.import_module(module_name), class_name)
            # The transport is ours to choose for the SDK providers; a plugin's provider takes `timeout` only.
            options = {"http_transport": http_transport} if isinstance(cls, type) and issubclass(cls, SDKProvider) else {}
            return cls(timeout=timeout, **options)
    except Exception as exc:
        raise ProviderNotConfigured(
            f"provider {name!r} ({target}) failed to load: {type(exc).__name__}: {exc}"[:300]) from exc


# What an SDK's HTTP stack imports at its first connection (httpx's transport, h11, anyio's asyncio
# backend; `httpcore2` is the openai SDK's own copy of httpcore, `truststore` its certificate store).
# With the aiohttp transport: the SDKs' vendored httpx-aiohttp bridge (imported at the client's first request).
TRANSPORT_MODULES = ("anyio._backends._asyncio", "anyio.streams.tls", "h11", "httpcore", "httpcore2", "truststore",
                     "openai._vendor.httpx_aiohttp.transport", "anthropic._vendor.httpx_aiohttp.transport")


def _import_all(modules: Iterable[str]) -> None:
    """Import what is installed of `modules` (a name an SDK version does not have is skipped)."""
    with _IMPORTING:
        for module in (*modules, *TRANSPORT_MODULES):
            try:
                importlib.import_module(module)
            except ModuleNotFoundError:
                log.debug("providers.warm_module_absent module=%s", module)


class ProviderPool:
    """Creates each provider once, on first use, so its pooled connections are reused; closes them all."""

    def __init__(self, timeout: float = 60.0, http_transport: str = "aiohttp") -> None:
        self.timeout = timeout  # the SDK clients' own timeout; the gateway's per-attempt timeout is the real bound
        self.http_transport = http_transport
        self._providers: dict[str, Provider] = {}
        self._loading: dict[str, asyncio.Future[Provider]] = {}

    def get(self, name: str) -> Provider:
        if name not in self._providers:
            self._providers[name] = _load(name, self.timeout, self.http_transport)
        return self._providers[name]

    async def load(self, name: str) -> Provider:
        """`get` for the event loop: importing an SDK the first time takes up to seconds (anthropic's about
        2.5 s), which would stall every call in flight, so it happens in a thread, once per provider.
        Concurrent first calls wait for the same import; one that failed is tried again by the next call
        (a module fixed or a dependency installed meanwhile)."""
        provider = self._providers.get(name)
        if provider is not None:
            return provider
        loading = self._loading.get(name)
        if loading is None:
            loading = self._loading[name] = asyncio.ensure_future(in_sdk_thread(_load, name, self.timeout,
                                                                                   self.http_transport))
            loading.add_done_callback(lambda done: self._loaded(name, done))
        # shield: a caller cancelled while it waits must not cancel the import the others wait for.
        provider = await asyncio.shield(loading)
        return self._providers.setdefault(name, provider)

    async def preload(self, names: Iterable[str]) -> list[str]:
        """Load these providers now, one after the other, and import what their SDKs would import lazily
        at their first call (`Provider.warm_modules`, e.g. the openai SDK's `resources.chat` on the first
        `client.chat`): otherwise that import runs on the event loop during traffic, stalls every call in
        flight, and may meet another thread's SDK import halfway. Returns the names that failed (logged;
        those load lazily again on their first call)."""
        failed = []
        for name in names:
            try:
                provider = await self.load(name)
                await in_sdk_thread(_import_all, getattr(provider, "warm_modules", ()))
            except Exception as exc:  # a provider that cannot load must not stop the worker
                log.warning("providers.preload_failed provider=%s error=%s", name, str(exc)[:300])
                failed.append(name)
        return failed

    def _loaded(self, name: str, done: asyncio.Future[Provider]) -> None:
        del self._loading[name]  # forget a failure: the next call tries again
        if not done.cancelled() and done.exception() is None:
            self._providers.setdefault(name, done.result())

    async def aclose(self) -> None:
        if self._loading:  # a provider still loading is closed with the others
            await asyncio.gather(*self._loading.values(), return_exceptions=True)
        providers, self._providers = list(self._providers.values()), {}
        for provider in providers:
            await provider.aclose()
