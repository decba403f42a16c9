"""The sweep: every `sweep_interval_seconds`, each worker looks through the rows of the partitions it
owns for rooms idle past their ttl, cache entries past their expiry and moderation signals past their
ttl, and asks the owner to delete
them by a record on `gateway-agent-events` (keyed by agent id). Tables can only be written from the
agent's own events (see FAUST_NOTES: a write outside an event has no partition), and that way the
deletion also takes an exact place in the agent's stream; the owner checks again before it deletes.

Only row headers are read (last activity, ttl, expiry), never the turns.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Iterable

import faust

from agents_tables.tables import Stores
from gateway_app.contract.events import ConversationCleared
from gateway_app.contract.internal import (
    CacheExpired,
    CacheExpiredRecord,
    ConversationClearedRecord,
    Origin,
    SignalsExpired,
    SignalsExpiredRecord,
    encode_agent_event,
)
from gateway_app.publisher import Publisher

log = logging.getLogger(__name__)
YIELD_EVERY = 2000     # rows read between two yields to the event loop
KEYS_PER_RECORD = 500  # expired cache keys per record


def sweep_origin(now_ms: int) -> Origin:
    """Records the sweep writes have no input record behind them."""
    return Origin(topic="gateway-sweep", partition=-1, offset=-1, received_at_ms=now_ms)


async def paced(rows: Iterable) -> list:
    found = []
    for index, row in enumerate(rows):
        found.append(row)
        if index % YIELD_EVERY == YIELD_EVERY - 1:
            await asyncio.sleep(0)
    return found


async def sweep(stores: Stores, publisher: Publisher) -> tuple[int, int, int]:
    """Ask for the deletions; returns (idle rooms, expired cache entries, rooms with expired signals)."""
    now_ms = int(time.time() * 1000)
    origin = sweep_origin(now_ms)
    rooms = await paced(stores.conversations.idle_rooms(now_ms))
    for agent_id, room_id in rooms:
        record = ConversationClearedRecord(agent_id=agent_id, origin=origin, idle_only=True,
                                           payload=ConversationCleared(agent_id=agent_id, room_id=room_id))
        await publisher.forward(agent_id, encode_agent_event(record))
    keys: dict[str, list[str]] = defaultdict(list)
    for agent_id, key in await paced(stores.cache.expired(now_ms)):
        keys[agent_id].append(key)
    for agent_id, agent_keys in keys.items():
        for start in range(0, len(agent_keys), KEYS_PER_RECORD):
            payload = CacheExpired(agent_id=agent_id, keys=agent_keys[start:start + KEYS_PER_RECORD])
            await publisher.forward(agent_id, encode_agent_event(
                CacheExpiredRecord(agent_id=agent_id, origin=origin, payload=payload)))
    signal_rooms = await paced(stores.moderation.rooms_to_sweep(now_ms))
    for agent_id, room_id in signal_rooms:
        await publisher.forward(agent_id, encode_agent_event(SignalsExpiredRecord(
            agent_id=agent_id, origin=origin, payload=SignalsExpired(agent_id=agent_id, room_id=room_id))))
    return len(rooms), sum(map(len, keys.values())), len(signal_rooms)


def register(app: faust.App, stores: Stores, publisher: Publisher, interval_seconds: float) -> None:
    @app.timer(interval=interval_seconds)
    async def sweep_idle_rows() -> None:
        if app.rebalancing:
            return  # the rows may be moving; the next sweep sees them where they are
        try:
            rooms, entries, signal_rooms = await sweep(stores, publisher)
        except Exception:  # a sweep that fails is tried again at the next interval
            log.exception("sweep.failed")
            return
        if rooms or entries or signal_rooms:
            log.info("sweep.requested idle_rooms=%d expired_cache_entries=%d rooms_with_expired_signals=%d",
                     rooms, entries, signal_rooms)
