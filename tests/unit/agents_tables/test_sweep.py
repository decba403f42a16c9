"""The sweep asks the owner to delete idle rooms and expired cache entries (by records on the internal
topic, never by writing a table outside an event), and the owner checks again before it deletes."""

from __future__ import annotations

import asyncio
import time

from agents_tables import sweep
from agents_tables.conversations import Turn
from agents_tables.response_cache import CachedAnswer
from gateway_app.app import COUNTERS
from gateway_app.contract.internal import CacheExpiredRecord, ConversationClearedRecord, decode_agent_event
from gateway_app.pipeline.forgetting import Forgetting
from gateway_app.pipeline.turns import Turns
from tests.unit.pipeline.conftest import memory_stores


class Forwarded:
    def __init__(self) -> None:
        self.records: list = []

    async def forward(self, agent_id: str, value: bytes) -> None:
        self.records.append((agent_id, decode_agent_event(value)))


async def test_idle_rooms_and_expired_entries_are_requested_then_deleted_by_the_owner():
    stores, tables = memory_stores()
    now = int(time.time() * 1000)
    stores.conversations.append("a", "idle", Turn("m1", "message", now - 120_000, 3, user="hi"), 60_000, 1.0)
    stores.conversations.append("a", "busy", Turn("m2", "message", now, 3, user="hi"), 60_000, 1.0)
    stores.cache.put(0, "b", "h1", CachedAnswer("x", "stop", (), 1, 1, "openai", "m", "0", 0, now - 1))
    stores.cache.put(0, "b", "h2", CachedAnswer("x", "stop", (), 1, 1, "openai", "m", "0", 0, now + 60_000))
    forwarded = Forwarded()
    assert await sweep.sweep(stores, forwarded) == (1, 1, 0)
    (agent, cleared), (owner, expired) = forwarded.records
    assert isinstance(cleared, ConversationClearedRecord) and cleared.idle_only and agent == "a"
    assert isinstance(expired, CacheExpiredRecord) and owner == "b" and expired.payload.keys == ["b\x1fh1"]

    services = type("S", (), {"stores": stores, "turns": Turns(), "counters": dict.fromkeys(COUNTERS, 0)})()
    forgetting, acked = Forgetting(services), []
    forgetting.clear(cleared, lambda: acked.append(1))
    await asyncio.gather(*forgetting.chores)
    forgetting.expire_cache(expired)
    assert acked == [1] and list(tables.conversations) == ["a\x1fbusy"] and list(tables.response_cache) == ["b\x1fh2"]
    assert services.counters["conversations_cleared"] == 1 and services.counters["cache_expired"] == 1
