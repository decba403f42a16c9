"""Processor: `gateway-agent-events` -> (agent-profiles, agent-rate-windows, message-outcomes) ->
`ai-message-reply`, `ai-billing-events`, `ai-message-dlq`.

Acks are manual (`noack`): `MessageFlow` acks each partition in offset order once a message is fully
handled, so many slow provider calls can be in flight without the committed offset passing any of them.
"""

from __future__ import annotations

import logging

import faust

from gateway_app.flow.processor import MessageFlow
from gateway_app.topics import GatewayTopics

log = logging.getLogger(__name__)


def register(app: faust.App, flow: MessageFlow, topics: GatewayTopics) -> None:
    @app.agent(topics.agent_events, name="processor")
    async def processor(stream: faust.StreamT) -> None:
        async for event in stream.noack().events():
            if await app.consumer.admit(event.message):  # in offset order, never past a missing record
                await flow.on_event(event)

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: faust.App, revoked: set, **kwargs: object) -> None:
        cancelled = flow.reset()
        log.info("rebalance.revoked partitions=%d cancelled_jobs=%d", len(revoked), cancelled)
