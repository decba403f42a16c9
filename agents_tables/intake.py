"""Intake agents: input topics -> validated, re-keyed by agent id -> `gateway-agent-events`; bad input
-> `ai-message-dlq` (gateway_app.forwarding says how).

Upstream producers key by anything (room id, nothing) with any partitioner; forwarding with the agent
id as key puts every event of one agent on one internal partition, where its table rows live.
Each input is acked by hand, one at a time in offset order, only after its forward or its DLQ record
was sent, so nothing is lost and a bad record never stops the partition.
"""

from __future__ import annotations

import logging
from typing import Callable

import faust

from gateway_app.forwarding import InputForwarder
from gateway_app.topics import GatewayTopics

log = logging.getLogger(__name__)


def register(app: faust.App, forwarder: InputForwarder, topics: GatewayTopics) -> None:
    """One agent per input topic: a slow topic never holds back another."""
    sources = {
        "intake-messages": topics.messages,
        "intake-profile-created": topics.profile_created,
        "intake-profile-updated": topics.profile_updated,
        "intake-profile-deleted": topics.profile_deleted,
        "intake-tool-results": topics.tool_results,
        "intake-conversation-cleared": topics.conversation_cleared,
        "intake-moderation-signals": topics.moderation_signals,
    }
    for name, topic in sources.items():
        app.agent(topic, name=name)(_intake_loop(app, forwarder))


def _intake_loop(app: faust.App, forwarder: InputForwarder) -> Callable:
    async def intake_loop(stream: faust.StreamT) -> None:
        async for event in stream.noack().events():
            if not await app.consumer.admit(event.message):  # in offset order, never past a missing record
                continue
            try:
                await forwarder.handle(event)
            except Exception:  # a bug must not stop the partition: dead-letter what we could not handle
                log.exception("intake.internal_error topic=%s offset=%s", event.message.topic, event.message.offset)
                await forwarder.internal_error(event)
            event.ack()

    return intake_loop
