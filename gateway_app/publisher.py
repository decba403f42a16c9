"""Sends output events. Sends are buffered by the producer, which faust flushes before every commit,
so anything sent before an input is acked is durable once that input's offset is committed. Each send
returns its delivery: awaiting it waits for the broker's acknowledgement (the pipeline does, before it
records a message's outcome)."""

from __future__ import annotations

import logging

from typing import Awaitable, Sequence

from faust.types import ProducerT
from pydantic import BaseModel

from gateway_app.contract.events import (
    AudioChunk,
    BillingEvent,
    ConversationCleared,
    DeadLetter,
    MessageReply,
    ModerationEvent,
    ReplyChunk,
)
from gateway_app.observability import tracing
from gateway_app.observability.metrics import GatewayMetrics
from gateway_app.topics import GatewayTopics

log = logging.getLogger(__name__)
Headers = Sequence[tuple[str, bytes]] | None  # a traced message's records carry its `traceparent`


def encode(event: BaseModel) -> bytes:
    return event.model_dump_json().encode()


class Publisher:
    """Sends straight to the app's producer: the records are raw bytes, so faust's channel layer (futures,
    serializers, sensors per record) would only add work on the hottest path."""

    def __init__(self, topics: GatewayTopics, producer: ProducerT, metrics: GatewayMetrics | None = None) -> None:
        self.producer = producer
        self.metrics = metrics if metrics is not None else GatewayMetrics()  # DLQ records, the intake's replies
        self.names = {name: getattr(topics, name).get_topic_name()
                      for name in ("agent_events", "replies", "reply_chunks", "billing", "dlq",
                                                                "conversation_cleared", "moderation_events",
                                                                "room_events", "provider_capacity",
                                                                "provider_grants", "audio")}

    async def _send(self, topic: str, key: bytes, value: bytes, headers: Headers = None, *,
                    span: bool = True) -> Awaitable:
        name = self.names[topic]
        if headers is None or not span:  # tracing off, a record of no traced message, or no send span wanted
            return await self.producer.send(name, key, value, partition=None, timestamp=None, headers=headers)
        with tracing.producing(name, headers) as sent_with:  # a send span; the record carries its traceparent
            return await self.producer.send(name, key, value, partition=None, timestamp=None, headers=sent_with)

    async def forward(self, agent_id: str, value: bytes, headers: Headers = None) -> Awaitable:
        return await self._send("agent_events", agent_id.encode(), value, headers)

    async def clear_conversation(self, event: ConversationCleared) -> Awaitable:
        """Onto the input topic, like any chat service's clear: it takes its place in the agent's stream."""
        return await self._send("conversation_cleared", event.agent_id.encode(), encode(event))

    async def to_room(self, room_id: str, value: bytes, headers: Headers = None) -> Awaitable:
        """Onto `gateway-room-events`, keyed by room id (where the room -> agents index lives)."""
        return await self._send("room_events", room_id.encode(), value, headers)

    async def moderation_event(self, event: ModerationEvent, headers: Headers = None) -> Awaitable:
        return await self._send("moderation_events", event.room_id.encode(), encode(event), headers)

    async def reply(self, reply: MessageReply, headers: Headers = None) -> Awaitable:
        self.metrics.reply(reply.status, reply.error.code if reply.error else None)  # the pipeline counts its own
        return await self.send_reply_bytes(reply.room_id, encode(reply), headers)

    async def send_reply_bytes(self, room_id: str, value: bytes, headers: Headers = None) -> Awaitable:
        return await self._send("replies", room_id.encode(), value, headers)

    async def reply_chunk(self, chunk: ReplyChunk, headers: Headers = None) -> Awaitable:
        # Keyed like the reply: all chunks of a message, and its reply, stay in one partition, in order.
        # Each carries the trace's headers as they are: a send span per piece would flood the trace.
        return await self._send("reply_chunks", chunk.room_id.encode(), encode(chunk), headers, span=False)

    async def audio_chunk(self, chunk: AudioChunk, headers: Headers = None) -> Awaitable:
        """A piece of a spoken reply, onto `ai-message-audio`, keyed by room id like the reply."""
        return await self._send("audio", chunk.room_id.encode(), encode(chunk), headers, span=False)

    async def billing(self, event: BillingEvent, headers: Headers = None) -> Awaitable:
        return await self.send_billing_bytes(event.agent_id, encode(event), headers)

    async def send_billing_bytes(self, agent_id: str, value: bytes, headers: Headers = None) -> Awaitable:
        return await self._send("billing", agent_id.encode(), value, headers)

    async def dead_letter(self, record: DeadLetter, headers: Headers = None) -> Awaitable:
        log.warning(
            "dlq.write code=%s source=%s/%s/%s reason=%s",
            record.error_code, record.source_topic, record.source_partition, record.source_offset, record.reason,
        )
        self.metrics.dlq(record.error_code)
        return await self._send("dlq", (record.agent_id or record.source_topic).encode(), encode(record), headers)

    async def to_capacity_owner(self, endpoint: str, value: bytes) -> Awaitable:
        """A lease ask or a 429 pause, onto `gateway-provider-capacity` keyed by the endpoint (its owner)."""
        return await self._send("provider_capacity", endpoint.encode(), value)

    async def to_every_worker(self, endpoint: str, value: bytes) -> Awaitable:
        """A grant or a pause announcement, onto `gateway-provider-grants` (every worker reads it whole)."""
        return await self._send("provider_grants", endpoint.encode(), value)

    async def flush(self) -> None:
        """Wait until every record sent so far is acknowledged (or failed)."""
        await self.producer.flush()
