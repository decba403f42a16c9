"""Intake: input topics -> validated, re-keyed by agent id -> `gateway-agent-events`; bad input -> DLQ.

Upstream producers key by anything (room id, nothing) with any partitioner; forwarding with the agent
id as key puts every event of one agent on one internal partition, where its table rows live.
Each input is acked (by faust, when the loop asks for the next one) only after its forward or its
DLQ record was sent, so nothing is lost and a bad record never stops the partition.
"""

from __future__ import annotations

import base64
import logging
import time
from typing import Any, Callable

import faust
from pydantic import BaseModel

from gateway_app.contract import ids
from gateway_app.contract.decode import (
    InputLimits,
    Rejection,
    decode_message,
    decode_profile,
    decode_profile_deleted,
)
from gateway_app.contract.events import ErrorCode, ReplyStatus
from gateway_app.contract.internal import AgentEvent, Origin
from gateway_app.flow import records
from gateway_app.providers.registry import is_known
from gateway_app.publisher import Publisher
from gateway_app.settings import Settings
from gateway_app.topics import GatewayTopics

log = logging.getLogger(__name__)


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def origin_of(event: faust.types.EventT) -> Origin:
    message = event.message
    return Origin(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key_b64=_b64(message.key),
        value_b64=_b64(message.value),
        received_at_ms=int(time.time() * 1000),
    )


class Intake:
    """Validates one input record and sends it on, or dead-letters it."""

    def __init__(self, settings: Settings, publisher: Publisher) -> None:
        self.publisher = publisher
        self.limits = InputLimits(settings.max_content_chars, settings.max_metadata_bytes)
        self.decoders: dict[str, tuple[str, Callable[[bytes | None], BaseModel | Rejection]]] = {
            settings.topics.messages: ("message", lambda raw: decode_message(raw, self.limits)),
            settings.topics.profile_created: ("profile", lambda raw: decode_profile(raw, is_known)),
            settings.topics.profile_updated: ("profile", lambda raw: decode_profile(raw, is_known)),
            settings.topics.profile_deleted: ("profile_deleted", decode_profile_deleted),
        }

    async def handle(self, event: faust.types.EventT) -> None:
        kind, decoder = self.decoders[event.message.topic]
        origin = origin_of(event)
        result = decoder(event.message.value)
        if isinstance(result, Rejection):
            await self.reject(kind, origin, result)
            return
        payload: dict[str, Any] = result.model_dump(mode="json")
        forward = AgentEvent(kind=kind, agent_id=payload["agent_id"], payload=payload, origin=origin)
        await self.publisher.forward(forward.agent_id, forward.model_dump_json().encode())

    async def reject(self, kind: str, origin: Origin, rejection: Rejection) -> None:
        message_id = rejection.field("message_id")
        agent_id = rejection.field("agent_id")
        room_id = rejection.field("room_id")
        await self.publisher.dead_letter(
            records.dead_letter(origin, rejection.code, rejection.reason, message_id=message_id, agent_id=agent_id)
        )
        if kind != "message" or room_id is None:
            return
        # The room can be told: an error reply, so the user is not left waiting.
        reply = records.failed_reply(
            message_id=message_id or ids.source_message_id(origin.topic, origin.partition, origin.offset),
            agent_id=agent_id or "",
            room_id=room_id,
            user_id=rejection.field("user_id"),
            status=ReplyStatus.ERROR,
            code=rejection.code,
            reason=rejection.reason,
        )
        await self.publisher.reply(reply)


def register(app: faust.App, intake: Intake, topics: GatewayTopics) -> None:
    """One agent per input topic: a slow topic never holds back another."""
    sources = {
        "intake-messages": topics.messages,
        "intake-profile-created": topics.profile_created,
        "intake-profile-updated": topics.profile_updated,
        "intake-profile-deleted": topics.profile_deleted,
    }
    for name, topic in sources.items():
        app.agent(topic, name=name)(_intake_loop(app, intake))


def _intake_loop(app: faust.App, intake: Intake) -> Callable:
    async def intake_loop(stream: faust.StreamT) -> None:
        # Acked by hand, one at a time in offset order, only records the consumer admits.
        async for event in stream.noack().events():
            if not await app.consumer.admit(event.message):
                continue
            try:
                await intake.handle(event)
            except Exception:  # a bug must not stop the partition: dead-letter what we could not handle
                log.exception("intake.internal_error topic=%s offset=%s", event.message.topic, event.message.offset)
                await intake.publisher.dead_letter(
                    records.dead_letter(origin_of(event), ErrorCode.INTERNAL_ERROR, "internal error in intake")
                )
            event.ack()

    return intake_loop
