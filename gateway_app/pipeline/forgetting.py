"""Forgetting, at an exact point of the agent's stream: `conversation-cleared` events (and the sweep's
requests for rooms idle past their ttl) and the sweep's expired cache entries.

A clear takes its place like a message does: the agent's turn at arrival (after every earlier message of
the agent was admitted), then the conversation's turn (after every earlier message of the room has
appended its turn). So a message read before the clear is forgotten with it, and one read after it
starts a new conversation. The rows go with changelog tombstones: they stay deleted after a restore
from an empty data directory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from agents_tables.conversations import key_of
from gateway_app.contract.internal import CacheExpiredRecord, ConversationClearedRecord
from gateway_app.pipeline.stage import Services
from gateway_app.pipeline.turns import Ticket

log = logging.getLogger(__name__)


class Forgetting:
    def __init__(self, services: Services) -> None:
        self.stores, self.turns, self.counters = services.stores, services.turns, services.counters
        self.chores: set[asyncio.Task] = set()

    def clear(self, record: ConversationClearedRecord, done: Callable[[], None]) -> None:
        """Starts the clear in a task of its own (created in this event's context: its table writes go to
        the agent's partition); `done` acks it once the rows are gone. Never waits."""
        ticket = self.turns.agents.get(record.agent_id).take()
        task = asyncio.create_task(self._clear(record, ticket, done))
        self.chores.add(task)
        task.add_done_callback(self.chores.discard)

    async def _clear(self, record: ConversationClearedRecord, ticket: Ticket, done: Callable[[], None]) -> None:
        agent_id, room_id = record.agent_id, record.payload.room_id
        turns, key = self.turns, key_of(agent_id, room_id)
        lanes = turns.conversations  # a rebalance replaces the lanes: releases go to the ones taken from
        try:
            await turns.agents.get(agent_id).wait(ticket)
            room_ticket = lanes.get(key).take()
        finally:
            turns.agents.release(agent_id, ticket)
        try:
            await lanes.get(key).wait(room_ticket)
            self._apply(record)
        except asyncio.CancelledError:
            raise  # a rebalance: not acked, the next owner does it
        except Exception:  # a bug must not stop the partition: say so loudly and go on
            log.exception("conversation.clear_failed agent=%s clear_id=%s", agent_id, record.payload.clear_id)
        finally:
            lanes.release(key, room_ticket)
        done()

    def _apply(self, record: ConversationClearedRecord) -> None:
        agent_id, room_id = record.agent_id, record.payload.room_id
        conversations = self.stores.conversations
        if record.idle_only:
            if conversations.expire_if_idle(agent_id, room_id, int(time.time() * 1000)):
                self.counters["conversations_cleared"] += 1
                log.info("conversation.expired agent=%s", agent_id)
            return
        before = record.payload.before
        gone = conversations.clear(agent_id, room_id, int(before.timestamp() * 1000) if before else None)
        self.counters["conversations_cleared"] += 1
        log.info("conversation.cleared agent=%s clear_id=%s turns=%d", agent_id, record.payload.clear_id, gone)

    def expire_cache(self, record: CacheExpiredRecord) -> None:
        """Runs in the dispatcher's event: the tombstones go to this record's (the agent's) partition."""
        try:
            self.counters["cache_expired"] += self.stores.cache.expire(record.payload.keys, int(time.time() * 1000))
        except Exception:  # never crash the worker on a row: the next sweep asks again
            log.exception("cache.expire_failed agent=%s", record.agent_id)

    async def cancel_all(self) -> int:
        """A rebalance: unfinished clears are not acked; the next owner reads them again (they repeat
        harmlessly)."""
        running = [task for task in self.chores if not task.done()]
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running, timeout=1.0)
        return len(running)
