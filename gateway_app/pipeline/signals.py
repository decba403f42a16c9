"""Moderation signals at their place in the agent's stream: applied to the `room-moderation` table when
the dispatcher reads them (a message read after a signal sees it, one read before does not: the
dispatcher gives each message the signals active when it was read), and removed when the sweep finds
them past their ttl. Each application and expiry is published on `ai-moderation-events`."""

from __future__ import annotations

import logging
import time

from gateway_app.contract.internal import SignalRecord, SignalsExpiredRecord
from gateway_app.moderation.records import signal_event
from gateway_app.moderation.steering import effect, label
from gateway_app.pipeline.stage import Services

log = logging.getLogger(__name__)


class SignalLog:
    def __init__(self, services: Services) -> None:
        self.stores, self.publisher, self.counters = services.stores, services.publisher, services.counters

    async def apply(self, record: SignalRecord) -> None:
        """Runs in the dispatcher's event: the row goes to this record's (the agent's) partition."""
        signal, agent_id = record.payload, record.agent_id
        active = self.stores.moderation.apply(signal, agent_id, int(time.time() * 1000))
        if active is None:
            return  # the same signal again (a redelivery, or the fan-out sent twice)
        profile = self.stores.profiles.live(agent_id)
        action = label(effect(profile, active.kind, active.severity)) if profile else "steer"
        self.counters["signals_applied"] += 1
        log.info("moderation.signal_applied agent=%s signal=%s kind=%s severity=%s action=%s", agent_id,
                 active.signal_id, active.kind.value, active.severity.value, action)
        await self.publisher.moderation_event(signal_event(agent_id, signal.room_id, active, "applied", action,
                                                           signal.user_id))

    async def expire(self, record: SignalsExpiredRecord) -> None:
        agent_id, room_id = record.payload.agent_id, record.payload.room_id
        for gone in self.stores.moderation.expire(agent_id, room_id, int(time.time() * 1000)):
            self.counters["signals_expired"] += 1
            await self.publisher.moderation_event(signal_event(agent_id, room_id, gone, "expired", "expire"))
