"""SDK clients: what one is built from (`ClientConfig`), the built ones (`ClientCache`), and the base of
the providers that call an SDK (`SDKProvider`). See `base` for how configuration flows per call.
"""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Awaitable, Callable, Generic, Hashable, Mapping, TypeVar

from pydantic import SecretStr

from gateway_app.providers.base import ChatRequest, ProviderNotConfigured

C = TypeVar("C")

# Held by whatever may import SDK modules in a thread (loading a provider, building a client: an SDK
# client's constructor imports parts of its HTTP stack lazily). Two threads importing at once can meet
# halfway in a shared dependency (httpx, anyio), and one of them then sees a partially initialised module.
IMPORT_LOCK = threading.RLock()  # reentrant: a load run on the SDK thread takes it again
# The one thread that does that work: a queue of builds waits here, not in the event loop's default pool,
# which credential lookups and the SSRF check's DNS resolution share (a burst of first calls with
# distinct keys would otherwise fill it with threads blocked on the lock).
SDK_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sdk-load")


async def in_sdk_thread(work: Callable[..., C], *args: Any) -> C:
    """`work(*args)` on the SDK thread, under the import lock."""

    def locked() -> C:
        with IMPORT_LOCK:
            return work(*args)

    return await asyncio.get_running_loop().run_in_executor(SDK_THREAD, locked)


def sdk_http_client(sdk: Any, transport: str, **options: Any) -> Any:
    """The HTTP client an openai or anthropic SDK client is built with: the SDK's own aiohttp-backed
    `DefaultAioHttpClient` or its httpx `DefaultAsyncHttpxClient`, both with the SDK's defaults (pool
    limits, timeout, redirects) unless `options` say otherwise. Both raise the SDK's httpx exceptions, so
    the error tables are the same for either."""
    if transport == "aiohttp":
        return sdk.DefaultAioHttpClient(**options)
    return sdk.DefaultAsyncHttpxClient(**options)


def first_set(environ: Mapping[str, str], *names: str) -> str | None:
    """The first of these variables that is set; an empty one counts as unset (as the SDKs treat them)."""
    return next((environ[name] for name in names if environ.get(name)), None)


@dataclass(frozen=True)
class ClientConfig:
    """What one SDK client is built from. Frozen and hashable: the client cache is keyed on it."""

    endpoint: str | None  # base URL; None: none configured
    key: SecretStr | None = None  # SecretStr: printed or logged, the config shows '**********', not the key
    extras: tuple[tuple[str, str], ...] = ()  # further SDK settings by name (organization, API version)

    @classmethod
    def of(cls, endpoint: str | None, key: str | None, **extras: str | None) -> ClientConfig:
        """Empty values count as unset."""
        return cls(endpoint or None, SecretStr(key) if key else None,
                   tuple(sorted((name, value) for name, value in extras.items() if value)))

    def setting(self, name: str) -> str | None:
        return dict(self.extras).get(name)

    def secret(self) -> str | None:
        """The key itself: for handing to the SDK, nowhere else."""
        return self.key.get_secret_value() if self.key is not None else None


class ClientCache(Generic[C]):
    """SDK clients, one per key (a `ClientConfig`), created on first use and reused (pooled connections).

    A client is built in a thread: loading CA certificates and setting up a connection pool takes
    0.1-1 s of CPU (measured: openai up to 0.3 s, cohere up to 1.2 s), which on the event loop would
    stall every call in flight. Concurrent first calls
    wait for the same build; a build that fails is tried again by the next call.
    Bounded: past `max_clients` distinct configurations (endpoints, per-agent keys) a new one is refused
    rather than another pool opened.
    """

    def __init__(self, close: Callable[[C], Awaitable[None]], max_clients: int = 256) -> None:
        self._clients: dict[Hashable, C] = {}
        self._building: dict[Hashable, asyncio.Future[C]] = {}
        self._close = close
        self.max_clients = max_clients

    async def get(self, key: Hashable, create: Callable[[], C]) -> C:
        client = self._clients.get(key)
        if client is not None:
            return client
        building = self._building.get(key)
        if building is None:
            if len(self._clients) + len(self._building) >= self.max_clients:
                raise ProviderNotConfigured(f"already {self.max_clients} distinct endpoints in use; refusing another")
            building = self._building[key] = asyncio.ensure_future(in_sdk_thread(create))
            building.add_done_callback(lambda done: self._built(key, done))
        # shield: a caller cancelled while it waits must not cancel the build the others wait for.
        return await asyncio.shield(building)

    def _built(self, key: Hashable, done: asyncio.Future[C]) -> None:
        del self._building[key]
        if not done.cancelled() and done.exception() is None:
            self._clients[key] = done.result()

    def __len__(self) -> int:
        return len(self._clients)

    async def aclose(self) -> None:
        if self._building:
            await asyncio.gather(*self._building.values(), return_exceptions=True)
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await self._close(client)


class SDKProvider(Generic[C]):
    """Base of the providers that call an SDK: configuration read once, one client per `ClientConfig`.

    A subclass says how it reads its environment, how a client is built and closed, and what to say when
    the key or the endpoint is missing; it implements `complete` and `stream` with `await self._client(...)`.
    """

    name = ""
    missing_key: str | None = None  # ProviderNotConfigured's message without a key; None: the key is optional
    missing_endpoint = "no endpoint is configured"

    def __init__(self, timeout: float = 60.0, http_transport: str = "aiohttp") -> None:
        self.timeout = timeout
        self.http_transport = http_transport  # `aiohttp` or `httpx` (settings.provider_http_transport)
        # Here, once: no environment lookups per call. Nothing missing is an error yet: the worker must
        # start without provider keys, and only the calls that need one fail.
        self.config = self.read_config(os.environ)
        self._clients: ClientCache[C] = ClientCache(self.close_client)

    def read_config(self, environ: Mapping[str, str]) -> ClientConfig:
        raise NotImplementedError

    def build_client(self, config: ClientConfig) -> C:
        """Runs in a thread (see `ClientCache`); `config` is complete (key and endpoint checked)."""
        raise NotImplementedError

    async def close_client(self, client: C) -> None:
        raise NotImplementedError

    def config_for(self, request: ChatRequest) -> ClientConfig:
        """The configuration this request's client is built from: the worker's, with the agent's own key
        when its profile names one (one client per key; the environment's key is then not used)."""
        if request.credential is not None:
            return replace(self.config, key=request.credential)
        return self.config

    def endpoint(self, request: ChatRequest) -> str:
        endpoint = self.config_for(request).endpoint
        if endpoint is None:
            raise ProviderNotConfigured(self.missing_endpoint)
        return endpoint

    async def _client(self, request: ChatRequest) -> C:
        config = self.config_for(request)
        if config.key is None and self.missing_key is not None:
            raise ProviderNotConfigured(self.missing_key)
        if config.endpoint is None:
            raise ProviderNotConfigured(self.missing_endpoint)
        return await self._clients.get(config, lambda: self.build_client(config))

    async def aclose(self) -> None:
        await self._clients.aclose()
