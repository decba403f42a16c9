"""SDK clients: built once per key, off the event loop, bounded, closed at shutdown."""

from __future__ import annotations

import asyncio
import threading

import pytest

from gateway_app.providers.base import ProviderNotConfigured
from gateway_app.providers.clients import ClientCache


class Client:
    def __init__(self, name: str) -> None:
        self.name = name
        self.thread = threading.get_ident()
        self.closed = False


async def close(client: Client) -> None:
    client.closed = True


async def test_concurrent_first_calls_share_one_build_made_off_the_event_loop():
    cache: ClientCache[Client] = ClientCache(close)
    builds = 0

    def create() -> Client:
        nonlocal builds
        builds += 1
        return Client("a")

    clients = await asyncio.gather(*(cache.get("a", create) for _ in range(5)))
    assert builds == 1 and all(c is clients[0] for c in clients)
    assert clients[0].thread != threading.get_ident()
    assert await cache.get("a", create) is clients[0] and builds == 1


async def test_a_failed_build_is_tried_again_by_the_next_call():
    cache: ClientCache[Client] = ClientCache(close)
    attempts = 0

    def create() -> Client:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ValueError("bad certificate file")
        return Client("a")

    with pytest.raises(ValueError):
        await cache.get("a", create)
    assert (await cache.get("a", create)).name == "a" and attempts == 2 and len(cache) == 1


async def test_a_cancelled_caller_does_not_cancel_the_build_others_wait_for():
    cache: ClientCache[Client] = ClientCache(close)
    started, release = threading.Event(), threading.Event()

    def create() -> Client:
        started.set()
        release.wait(5)
        return Client("a")

    first = asyncio.create_task(cache.get("a", create))
    second = asyncio.create_task(cache.get("a", create))
    assert await asyncio.to_thread(started.wait, 5)  # both callers now wait on the one build, in its thread
    first.cancel()
    release.set()
    assert (await second).name == "a"
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_past_the_bound_a_new_endpoint_is_refused():
    cache: ClientCache[Client] = ClientCache(close, max_clients=2)
    await cache.get("a", lambda: Client("a"))
    await cache.get("b", lambda: Client("b"))
    with pytest.raises(ProviderNotConfigured):
        await cache.get("c", lambda: Client("c"))
    assert (await cache.get("a", lambda: Client("x"))).name == "a"


async def test_aclose_closes_every_client_including_one_still_being_built():
    cache: ClientCache[Client] = ClientCache(close)
    ready = await cache.get("a", lambda: Client("a"))
    started, release = threading.Event(), threading.Event()

    def slow() -> Client:
        started.set()
        release.wait(5)
        return Client("b")

    building = asyncio.create_task(cache.get("b", slow))
    assert await asyncio.to_thread(started.wait, 5)  # the build is under way in its thread
    release.set()
    await cache.aclose()
    assert ready.closed and (await building).closed and len(cache) == 0
