"""Sends output events. Sends are buffered by the producer, which faust flushes before every commit,
so anything sent before an input is acked is durable once that input's offset is committed."""

from __future__ import annotations

import logging

from pydantic import BaseModel

from gateway_app.contract.events import BillingEvent, DeadLetter, MessageReply, ReplyChunk
from gateway_app.topics import GatewayTopics

log = logging.getLogger(__name__)


def encode(event: BaseModel) -> bytes:
    return event.model_dump_json().encode()


class Publisher:
    def __init__(self, topics: GatewayTopics) -> None:
        self.topics = topics

    async def reply(self, reply: MessageReply) -> None:
        await self.send_reply_bytes(reply.room_id, encode(reply))

    async def send_reply_bytes(self, room_id: str, value: bytes) -> None:
        await self.topics.replies.send(key=room_id.encode(), value=value)

    async def reply_chunk(self, chunk: ReplyChunk) -> None:
        # Keyed like the reply: all chunks of a message, and its reply, stay in one partition, in order.
        await self.topics.reply_chunks.send(key=chunk.room_id.encode(), value=encode(chunk))

    async def billing(self, event: BillingEvent) -> None:
        await self.send_billing_bytes(event.agent_id, encode(event))

    async def send_billing_bytes(self, agent_id: str, value: bytes) -> None:
        await self.topics.billing.send(key=agent_id.encode(), value=value)

    async def dead_letter(self, record: DeadLetter) -> None:
        log.warning(
            "dlq.write code=%s source=%s/%s/%s reason=%s",
            record.error_code, record.source_topic, record.source_partition, record.source_offset, record.reason,
        )
        key = (record.agent_id or record.source_topic).encode()
        await self.topics.dlq.send(key=key, value=encode(record))
