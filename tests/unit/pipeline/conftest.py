"""Factories for the pipeline's parts: settings, a Caller over scripted providers on a fake clock, and a
Dispatcher over in-memory tables."""

from __future__ import annotations

import asyncio
import random
from typing import AsyncIterator, Callable

import pytest

from agents_tables.tables import Stores
from gateway_app.pipeline.caller import Caller
from gateway_app.pipeline.dispatcher import Dispatcher
from gateway_app.pipeline.stage import Services
from gateway_app.pipeline.turns import Turns
from gateway_app.plugins.discovery import Plugins
from gateway_app.providers import errors
from gateway_app.providers.base import ChatRequest, ChatResult, TextDelta, TokenUsage
from gateway_app.resilience.endpoints import Endpoints
from gateway_app.settings import Settings

# Fast retries and short timeouts: the Caller's tests run in milliseconds.
TEST_SETTINGS = dict(retry_max_attempts=3, retry_base_delay_seconds=0.001, retry_max_delay_seconds=0.01,
                     call_timeout_seconds=0.5, first_token_timeout_seconds=0.2, message_deadline_seconds=10,
                     breaker_consecutive_failures=5, breaker_open_seconds=60, rate_limit_pause_seconds=0.2)


class FakeClock:
    """Monotonic time that moves only when a sleeper sleeps: `sleep(s)` yields to the other tasks once,
    then moves the clock to at least its own wake time (concurrent sleeps overlap, they do not add up).
    Pass `clock` as the Caller's `clock=` and `clock.sleep` as its `sleep=`."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.slept: list[float] = []  # every sleep asked for, in order

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        wake = self.now + seconds
        self.slept.append(seconds)
        await asyncio.sleep(0)
        self.now = max(self.now, wake)


class Scripted:
    """A provider that plays a script of steps, one per call: 'ok', an exception to raise, 'hang'; streamed
    also 'cut' (broken after the first piece) and 'no-result' (ends without a result)."""

    name = "scripted"

    def __init__(self, script: list, url: str = "http://scripted") -> None:
        self.script, self.url, self.calls = list(script), url, 0

    def endpoint(self, request: ChatRequest) -> str:
        return self.url

    def _next(self):
        self.calls += 1
        return self.script.pop(0) if self.script else "ok"

    async def complete(self, request: ChatRequest) -> ChatResult:
        step = self._next()
        if step == "hang":
            await asyncio.sleep(3600)  # a provider that never answers: the attempt timeout must cut it
        if isinstance(step, Exception):
            raise step
        return ChatResult(f"{self.url} answered", "stop", TokenUsage(3, 2))

    async def stream(self, request: ChatRequest) -> AsyncIterator:
        step = self._next()
        if step == "hang":
            await asyncio.sleep(3600)  # no first token ever: the first-token timeout must cut it
        yield TextDelta("part one")
        if step == "cut":
            raise errors.stream_interrupted("cut")
        yield TextDelta(" part two")
        if step == "no-result":
            return
        yield ChatResult("part one part two", "stop", TokenUsage(3, 4))

    async def aclose(self) -> None:
        pass


class Pool:
    """The provider pool the Caller loads from: scripted providers by name."""

    def __init__(self, providers: dict[str, Scripted]) -> None:
        self.providers = providers

    def get(self, name: str) -> Scripted:
        return self.providers[name]

    async def load(self, name: str) -> Scripted:
        return self.get(name)


@pytest.fixture
def settings_factory() -> Callable[..., Settings]:
    """`settings_factory(**overrides)`: Settings with the tests' fast retries and short timeouts."""
    return lambda **overrides: Settings(**{**TEST_SETTINGS, **overrides})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def caller_factory(settings_factory, clock) -> Callable[..., Caller]:
    """`caller_factory({"a": script, ...}, **settings)`: a Caller over scripted providers (its `providers`
    is the Pool: `caller.providers.get("a").calls`), timed by the `clock` fixture. `real_time=True` keeps
    the real clock, for tests where the deadline meets `asyncio.timeout` (which runs on the loop's clock)."""

    def make(scripts: dict[str, list], *, real_time: bool = False, **overrides) -> Caller:
        settings = settings_factory(**overrides)
        timing = {} if real_time else {"clock": clock, "sleep": clock.sleep}
        return Caller(settings, Pool({name: Scripted(script) for name, script in scripts.items()}),
                      Endpoints(settings.breaker_policy(), settings.provider_caps()), asyncio.Semaphore(10),
                      random.Random(1), **timing)

    return make


class NoTable(dict):
    pass


TABLES = ("profiles", "rate_windows", "outcomes", "conversations", "response_cache", "cache_stats",
          "room_moderation", "room_agents", "usage")


def memory_stores(settings: Settings | None = None) -> tuple[Stores, object]:
    """Stores over plain dicts (the tables' read/write surface), and the tables object."""
    tables = type("T", (), {name: NoTable() for name in TABLES})()
    return Stores.over(tables, settings or Settings(**{**TEST_SETTINGS, "dedupe_per_partition": 100,
                                                       "profile_cache_size": 10})), tables


@pytest.fixture
def dispatcher_factory(settings_factory) -> Callable[..., Dispatcher]:
    """`dispatcher_factory(**settings)`: a Dispatcher over empty in-memory tables, with no caller."""

    def make(**overrides) -> Dispatcher:
        settings = settings_factory(**overrides)
        services = Services(settings, memory_stores(settings)[0], Turns(), caller=None,
                            publisher=None, prices=None, plugins=Plugins(), counters={})
        return Dispatcher(services)

    return make
