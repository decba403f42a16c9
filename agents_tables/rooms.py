"""The rooms agent: `gateway-room-events` (key: room id) -> the `room-agents` index, and agent-less
moderation signals fanned out to `gateway-agent-events` (one record per agent active in the room, keyed
by agent id), where each takes its exact place in that agent's stream.

Room activity and agent-less signals are both keyed by room id by the gateway itself, so they meet on one
partition whatever keys and partitioners the chat services used, and the index a signal reads holds every
activity read before it on that partition. Acked one at a time in offset order after its writes.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust
from pydantic import ValidationError

from agents_tables.ordered import register_ordered
from agents_tables.tables import Stores
from gateway_app.contract.internal import (
    RoomActivityRecord,
    RoomSignalRecord,
    SignalRecord,
    decode_room_event,
    encode_agent_event,
)
from gateway_app.publisher import Publisher
from gateway_app.topics import GatewayTopics

log = logging.getLogger(__name__)


async def fan_out(record: RoomSignalRecord, stores: Stores, publisher: Publisher, now_ms: int) -> int:
    """One signal record per agent active in the room; returns how many."""
    signal = record.payload
    agents = stores.rooms.agents(signal.room_id, now_ms)
    for agent_id in agents:
        one = SignalRecord(agent_id=agent_id, origin=record.origin, payload=signal.model_copy(update={"agent_id": agent_id}))
        await publisher.forward(agent_id, encode_agent_event(one))
    if not agents:
        log.info("moderation.signal_unrouted signal=%s (no agent active in the room)", signal.signal_id)
    return len(agents)


async def handle(raw: bytes, stores: Stores, publisher: Publisher) -> None:
    record = decode_room_event(raw)
    if isinstance(record, RoomActivityRecord):
        stores.rooms.seen(record.payload.room_id, record.payload.agent_id, record.payload.at_ms)
        return
    count = await fan_out(record, stores, publisher, int(time.time() * 1000))
    log.info("moderation.signal_fanned_out signal=%s agents=%d", record.payload.signal_id, count)


def register(app: faust.App, stores: Stores, publisher: Publisher, topics: GatewayTopics) -> None:
    async def one(event: Any) -> None:
        await handle(event.value, stores, publisher)

    register_ordered(app, topics.room_events, "rooms", one, (ValidationError,))
