"""Kafka topics: inputs and outputs carry raw bytes; the gateway does its own (contract) (de)coding."""

from __future__ import annotations

from dataclasses import dataclass

import faust

from gateway_app.settings import Settings

GRANTS_RETENTION_SECONDS = 3600.0  # a grant is useless after its window; an hour keeps the topic small
RAW = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}


@dataclass(frozen=True)
class GatewayTopics:
    messages: faust.TopicT
    profile_created: faust.TopicT
    profile_updated: faust.TopicT
    profile_deleted: faust.TopicT
    tool_results: faust.TopicT
    conversation_cleared: faust.TopicT
    moderation_signals: faust.TopicT
    agent_events: faust.TopicT
    replies: faust.TopicT
    reply_chunks: faust.TopicT
    billing: faust.TopicT
    dlq: faust.TopicT
    moderation_events: faust.TopicT
    room_events: faust.TopicT
    provider_capacity: faust.TopicT
    provider_grants: faust.TopicT
    audio: faust.TopicT  # spoken replies too large to go inline (profile `voice`)


def define_topics(app: faust.App, settings: Settings) -> GatewayTopics:
    names = settings.topics

    def owned(name: str) -> faust.TopicT:
        # Topics the gateway owns are declared with the configured partition count at start-up.
        return app.topic(
            name, partitions=settings.topic_partitions, replicas=settings.topic_replication, internal=True, **RAW
        )

    # Inputs are declared too (created if missing, never altered): a worker subscribed to a topic that
    # does not exist yet would not see it until its next metadata refresh, minutes later.
    return GatewayTopics(
        messages=owned(names.messages),
        profile_created=owned(names.profile_created),
        profile_updated=owned(names.profile_updated),
        profile_deleted=owned(names.profile_deleted),
        tool_results=owned(names.tool_results),
        conversation_cleared=owned(names.conversation_cleared),
        moderation_signals=owned(names.moderation_signals),
        agent_events=owned(names.agent_events),
        replies=owned(names.replies),
        reply_chunks=owned(names.reply_chunks),
        billing=owned(names.billing),
        dlq=owned(names.dlq),
        moderation_events=owned(names.moderation_events),
        room_events=owned(names.room_events),
        provider_capacity=owned(names.provider_capacity),
        audio=owned(names.audio),
        # One partition: every worker reads all of it (grants name their worker; pauses are for everyone).
        provider_grants=app.topic(names.provider_grants, partitions=1, replicas=settings.topic_replication,
                                  internal=True, retention=GRANTS_RETENTION_SECONDS, **RAW),
    )


async def declare_outputs(topics: GatewayTopics) -> None:
    """Create the output topics at start-up (agents declare their own sources)."""
    for topic in (topics.replies, topics.reply_chunks, topics.billing, topics.dlq, topics.moderation_events,
                  topics.provider_grants, topics.audio):
        await topic.maybe_declare()
