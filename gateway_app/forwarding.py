"""What the intake does with one input record: validate it against the contract, then forward it,
re-keyed by agent id, to `gateway-agent-events`, or dead-letter it (and tell the room, if it can)."""

from __future__ import annotations

import base64
import time
from typing import Callable

from gateway_app.contract import ids
from gateway_app.contract.decode import (
    InputLimits,
    Rejection,
    StageCheck,
    decode_message,
    decode_profile,
    decode_profile_deleted,
)
from gateway_app.contract.events import ErrorCode
from gateway_app.contract.internal import (
    MessageRecord,
    Origin,
    ProfileDeletedRecord,
    ProfileRecord,
    encode_agent_event,
)
from gateway_app.pipeline import records
from gateway_app.publisher import Publisher
from gateway_app.settings import Settings

Decoder = Callable[[bytes | None, Origin], MessageRecord | ProfileRecord | ProfileDeletedRecord | Rejection]


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def origin_of(event) -> Origin:
    message = event.message
    return Origin(topic=message.topic, partition=message.partition, offset=message.offset,
                  key_b64=_b64(message.key), value_b64=_b64(message.value), received_at_ms=int(time.time() * 1000))


class InputForwarder:
    """Validates one input record and sends it on, or dead-letters it."""

    def __init__(self, settings: Settings, publisher: Publisher, known_provider: Callable[[str], bool],
                 check_stage: StageCheck) -> None:
        self.publisher = publisher
        limits = InputLimits(settings.max_content_chars, settings.max_metadata_bytes)

        def message(raw: bytes | None, origin: Origin):
            decoded = decode_message(raw, limits)
            return decoded if isinstance(decoded, Rejection) else \
                MessageRecord(agent_id=decoded.agent_id, payload=decoded, origin=origin)

        def profile(raw: bytes | None, origin: Origin):
            decoded = decode_profile(raw, known_provider, check_stage)
            return decoded if isinstance(decoded, Rejection) else \
                ProfileRecord(agent_id=decoded.agent_id, payload=decoded, origin=origin)

        def deleted(raw: bytes | None, origin: Origin):
            decoded = decode_profile_deleted(raw)
            return decoded if isinstance(decoded, Rejection) else \
                ProfileDeletedRecord(agent_id=decoded.agent_id, payload=decoded, origin=origin)

        topics = settings.topics
        self.decoders: dict[str, tuple[str, Decoder]] = {
            topics.messages: ("message", message),
            topics.profile_created: ("profile", profile),
            topics.profile_updated: ("profile", profile),
            topics.profile_deleted: ("profile_deleted", deleted),
        }

    async def handle(self, event) -> None:
        kind, decoder = self.decoders[event.message.topic]
        origin = origin_of(event)
        result = decoder(event.message.value, origin)
        if isinstance(result, Rejection):
            await self.reject(kind, origin, result)
            return
        await self.publisher.forward(result.agent_id, encode_agent_event(result))

    async def reject(self, kind: str, origin: Origin, rejection: Rejection) -> None:
        message_id, agent_id = rejection.field("message_id"), rejection.field("agent_id")
        room_id = rejection.field("room_id")
        await self.publisher.dead_letter(
            records.dead_letter(origin, rejection.code, rejection.reason, message_id=message_id, agent_id=agent_id)
        )
        if kind != "message" or room_id is None:
            return
        # The room can be told: an error reply, so the user is not left waiting.
        await self.publisher.reply(records.rejected_input_reply(
            message_id=message_id or ids.source_message_id(origin.topic, origin.partition, origin.offset),
            agent_id=agent_id or "", room_id=room_id, user_id=rejection.field("user_id"),
            code=rejection.code, reason=rejection.reason))

    async def internal_error(self, event) -> None:
        await self.publisher.dead_letter(
            records.dead_letter(origin_of(event), ErrorCode.INTERNAL_ERROR, "internal error in intake"))
