"""The answering agent: `gateway-agent-events` -> (agent-profiles, agent-rate-windows, message-outcomes)
-> `ai-message-reply`, `ai-message-reply-chunks`, `ai-billing-events`, `ai-message-dlq`.

Acks are manual (`noack`): the dispatcher acks each partition in offset order once a message is fully
handled, so many slow provider calls can be in flight without the committed offset passing any of them.
"""

from __future__ import annotations

import logging

import faust

from gateway_app.pipeline.dispatcher import Dispatcher
from gateway_app.topics import GatewayTopics

log = logging.getLogger(__name__)


def register(app: faust.App, dispatcher: Dispatcher, topics: GatewayTopics) -> None:
    # The agent keeps its name "processor": faust names nothing durable after it, but operators grep it.
    @app.agent(topics.agent_events, name="processor")
    async def processor(stream: faust.StreamT) -> None:
        async for event in stream.noack().events():
            if await app.consumer.admit(event.message):  # in offset order, never past a missing record
                await dispatcher.on_event(event)

    @app.on_rebalance_complete.connect
    async def on_restored(sender: faust.App, **kwargs: object) -> None:
        # Tables restored, streams not resumed yet: a profile read during the restore (a web view) may
        # be older than the row the restore wrote.
        dispatcher.stores.profiles.forget_cached()
        dispatcher.stores.usage.forget_cached()

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: faust.App, revoked: set, **kwargs: object) -> None:
        cancelled = await dispatcher.reset()
        log.info("rebalance.revoked partitions=%d cancelled_jobs=%d", len(revoked), cancelled)
