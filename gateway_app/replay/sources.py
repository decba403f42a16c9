"""What a replay reads besides its range: the replies already given, and the history of agent profiles."""

from __future__ import annotations

from gateway_app.replay.answered import ReplyIndex
from gateway_app.replay.profiles import ProfileHistory
from gateway_app.replay.reader import TopicReader
from gateway_app.settings import TopicNames


async def reply_index(reader: TopicReader, topic: str, since_ms: int | None) -> ReplyIndex:
    """Every reply from `since_ms` (None: the topic's start) to now, by message id."""
    index = ReplyIndex()
    async for batch in reader.since(topic, since_ms):
        for record in batch.records:
            index.add(record.value)
    return index


async def profile_history(reader: TopicReader, topics: TopicNames) -> ProfileHistory:
    """Every profile event still in the profile topics (their retention bounds how far back this goes)."""
    history = ProfileHistory()
    for topic, deleted in ((topics.profile_created, False), (topics.profile_updated, False),
                           (topics.profile_deleted, True)):
        async for batch in reader.since(topic, None):
            for record in batch.records:
                history.add_record(record.value, record.timestamp, deleted=deleted)
    return history
