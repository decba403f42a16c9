"""What the intake does with one input record: validate it against the contract, then forward it,
re-keyed by agent id, to `gateway-agent-events`, or dead-letter it (and tell the room, if it can).

A key carried by value anywhere in an input event (a key-shaped string, even inside a message's text; a
secret-named field without a reference scheme) is refused with
`plaintext_secret` before anything is forwarded: the DLQ record carries the event with each such value
replaced by a redaction marker and a fingerprint, never the key. Credential references are checked for
shape here too (`invalid_credentials_ref`); whether they resolve is known only when a call needs them.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections import OrderedDict
from typing import Callable

from gateway_app.contract import ids
from gateway_app.contract.decode import (
    InputLimits,
    Rejection,
    StageCheck,
    decode_conversation_cleared,
    decode_message,
    decode_moderation_signal,
    decode_profile,
    decode_profile_deleted,
    decode_tool_results,
)
from gateway_app.contract.events import AgentProfile, ErrorCode
from gateway_app.credentials.refs import find_plaintext_secrets, parse_ref, redact_plaintext
from gateway_app.credentials.secret import fingerprint
from gateway_app.log_redaction import KEY_SHAPES
from gateway_app.observability import tracing
from gateway_app.contract.internal import (
    AnyAgentEvent,
    ConversationClearedRecord,
    MessageRecord,
    Origin,
    ProfileDeletedRecord,
    ProfileRecord,
    RoomActivity,
    RoomActivityRecord,
    RoomSignalRecord,
    SignalRecord,
    ToolResultsRecord,
    encode_agent_event,
    encode_room_event,
)
from gateway_app.pipeline import records
from gateway_app.publisher import Publisher
from gateway_app.settings import Settings

Decoder = Callable[[bytes | None, Origin], AnyAgentEvent | RoomSignalRecord | Rejection]


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
        self.rooms = RoomAnnouncer(publisher, int(settings.room_announce_seconds * 1000))
        limits = InputLimits(settings.max_content_chars, settings.max_metadata_bytes, settings.audio_max_bytes)

        def message(raw: bytes | None, origin: Origin):
            decoded = decode_message(raw, limits)
            return decoded if isinstance(decoded, Rejection) else \
                MessageRecord(agent_id=decoded.agent_id, payload=decoded, origin=origin)

        def profile(raw: bytes | None, origin: Origin):
            decoded = decode_profile(raw, known_provider, check_stage)
            if isinstance(decoded, Rejection):
                return decoded
            return bad_credential_refs(decoded) or \
                ProfileRecord(agent_id=decoded.agent_id, payload=decoded, origin=origin)

        def deleted(raw: bytes | None, origin: Origin):
            decoded = decode_profile_deleted(raw)
            return decoded if isinstance(decoded, Rejection) else \
                ProfileDeletedRecord(agent_id=decoded.agent_id, payload=decoded, origin=origin)

        def tool_results(raw: bytes | None, origin: Origin):
            decoded = decode_tool_results(raw, limits)
            return decoded if isinstance(decoded, Rejection) else \
                ToolResultsRecord(agent_id=decoded.agent_id, payload=decoded, origin=origin)

        def cleared(raw: bytes | None, origin: Origin):
            decoded = decode_conversation_cleared(raw)
            return decoded if isinstance(decoded, Rejection) else \
                ConversationClearedRecord(agent_id=decoded.agent_id, payload=decoded, origin=origin)

        def signal(raw: bytes | None, origin: Origin):
            decoded = decode_moderation_signal(raw)
            if isinstance(decoded, Rejection):
                return decoded
            if decoded.agent_id is None:  # to the room index, which knows the agents of the room
                return RoomSignalRecord(payload=decoded, origin=origin)
            return SignalRecord(agent_id=decoded.agent_id, payload=decoded, origin=origin)

        topics = settings.topics
        self.decoders: dict[str, tuple[str, Decoder]] = {
            topics.messages: ("message", message),
            topics.profile_created: ("profile", profile),
            topics.profile_updated: ("profile", profile),
            topics.profile_deleted: ("profile_deleted", deleted),
            topics.tool_results: ("tool_results", tool_results),
            topics.conversation_cleared: ("conversation_cleared", cleared),
            topics.moderation_signals: ("moderation_signal", signal),
        }

    async def handle(self, event) -> None:
        with tracing.consumed(event.message):  # the input's trace (its `traceparent` header) goes on
            await self._handle(event)

    async def _handle(self, event) -> None:
        kind, decoder = self.decoders[event.message.topic]
        origin = origin_of(event)
        leak = plaintext_leak(kind, event.message.value)
        if leak is not None:
            redacted, rejection = leak
            await self.reject(kind, origin.model_copy(update={"value_b64": _b64(redacted)}), rejection)
            return
        result = decoder(event.message.value, origin)
        if isinstance(result, Rejection):
            if result.code is ErrorCode.AUDIO_TOO_LARGE:  # the DLQ copy must fit a record too
                origin = origin.model_copy(update={"value_b64": _b64(without_inline_audio(event.message.value))})
            await self.reject(kind, origin, result)
            return
        if isinstance(result, RoomSignalRecord):
            await self.publisher.to_room(result.payload.room_id, encode_room_event(result), tracing.current_headers())
            return
        await self.publisher.forward(result.agent_id, encode_agent_event(result), tracing.current_headers())
        if isinstance(result, (MessageRecord, ToolResultsRecord)):
            await self.rooms.seen(result.agent_id, result.payload.room_id, origin.received_at_ms)

    async def reject(self, kind: str, origin: Origin, rejection: Rejection) -> None:
        message_id, agent_id = rejection.field("message_id"), rejection.field("agent_id")
        room_id = rejection.field("room_id")
        await self.publisher.dead_letter(
            records.dead_letter(origin, rejection.code, rejection.reason, message_id=message_id, agent_id=agent_id),
            tracing.current_headers(),
        )
        if kind not in ("message", "tool_results") or room_id is None:
            return
        # The room can be told: an error reply, so the user is not left waiting.
        await self.publisher.reply(records.rejected_input_reply(
            message_id=message_id or ids.source_message_id(origin.topic, origin.partition, origin.offset),
            agent_id=agent_id or "", room_id=room_id, user_id=rejection.field("user_id"),
            code=rejection.code, reason=rejection.reason), tracing.current_headers())

    async def internal_error(self, event) -> None:
        with tracing.consumed(event.message):  # `handle`'s span ended with the error: the DLQ send gets its own
            await self.publisher.dead_letter(
                records.dead_letter(origin_of(event), ErrorCode.INTERNAL_ERROR, "internal error in intake"),
                tracing.current_headers())


class RoomAnnouncer:
    """Tells the room index (on `gateway-room-events`) that an agent was asked something in a room: at
    most once per `interval_ms` per agent and room (remembered for `capacity` pairs, the least recently
    announced forgotten first), so the index costs one record per active pair and interval, not one per
    message."""

    def __init__(self, publisher: Publisher, interval_ms: int, capacity: int = 100_000) -> None:
        self.publisher, self.interval_ms, self.capacity = publisher, interval_ms, capacity
        self.announced: OrderedDict[tuple[str, str], int] = OrderedDict()

    async def seen(self, agent_id: str, room_id: str, at_ms: int) -> None:
        pair = (agent_id, room_id)
        last = self.announced.get(pair)
        if last is not None and at_ms - last < self.interval_ms:
            return
        self.announced[pair] = at_ms
        self.announced.move_to_end(pair)
        while len(self.announced) > self.capacity:
            self.announced.popitem(last=False)
        record = RoomActivityRecord(payload=RoomActivity(room_id=room_id, agent_id=agent_id, at_ms=at_ms))
        await self.publisher.to_room(room_id, encode_room_event(record))


# Cheap first look: only a record with one of these bytes is parsed again and searched.
_SUSPICIOUS = re.compile(rb"(?i)sk-|akia|asia|bearer|key|secret|token|passw|authori|credential")


def plaintext_leak(kind: str, raw: bytes | None) -> tuple[bytes, Rejection] | None:
    """The record with its plaintext keys redacted, and its rejection; None if it carries none."""
    if not raw or not _SUSPICIOUS.search(raw):
        return None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return None  # not JSON: the decoder rejects it with its own reason
    if not isinstance(data, dict):
        return None
    found = find_plaintext_secrets(data)
    texts = _texts(kind, data)
    for path, text in texts:
        keys_in_text = KEY_SHAPES.findall(text)
        if keys_in_text and all(where != path for where, _ in found):
            found.append((path, fingerprint(next(part for part in keys_in_text[0] if part))))
    if not found:
        return None
    where = ", ".join(f"{path} (fp={fp})" for path, fp in found[:5])
    reason = f"a key was sent by value, not by reference, at {where}; send a credential reference instead"
    redacted = redact_plaintext(data)
    for path, text in texts:
        _put(redacted, path, KEY_SHAPES.sub(
            lambda m: f"[redacted plaintext secret fp={fingerprint(m.group(0))}]", text))
    return json.dumps(redacted).encode(), Rejection(ErrorCode.PLAINTEXT_SECRET, reason, redacted)


def without_inline_audio(raw: bytes | None) -> bytes | None:
    """A message's record with its `audio.b64` replaced by a note of its size: the DLQ copy of inline audio
    too large to forward (it could not be replayed as it was anyway)."""
    try:
        data = json.loads(raw or b"")
    except (ValueError, RecursionError):
        return raw
    audio = data.get("audio") if isinstance(data, dict) else None
    if isinstance(audio, dict) and isinstance(audio.get("b64"), str):
        audio["b64"] = f"[removed: {len(audio['b64'])} base64 characters]"
        return json.dumps(data).encode()
    return raw


def _texts(kind: str, data: dict) -> list[tuple[str, str]]:
    """The free texts of an input that may carry a key pasted by someone: a message's content, each
    tool result's content."""
    if kind == "message" and isinstance(data.get("content"), str):
        return [("$.content", data["content"])]
    results = data.get("results")
    if kind != "tool_results" or not isinstance(results, list):
        return []
    return [(f"$.results[{i}].content", r["content"]) for i, r in enumerate(results)
            if isinstance(r, dict) and isinstance(r.get("content"), str)]


def _put(data: dict, path: str, value: str) -> None:
    """Set the text at one of `_texts`' paths in the (redacted copy of the) event."""
    if path == "$.content":
        data["content"] = value
        return
    index = int(path[len("$.results["):path.index("]")])
    results = data.get("results")
    if isinstance(results, list) and index < len(results) and isinstance(results[index], dict):
        results[index]["content"] = value


def bad_credential_refs(profile: AgentProfile) -> Rejection | None:
    """A profile whose credential references have no known scheme or shape (they are not resolved here)."""
    specs = [("credentials", profile.credentials)] + [
        (f"fallbacks[{i}].credentials", f.credentials) for i, f in enumerate(profile.fallbacks)]
    if profile.budget is not None and profile.budget.fallback is not None:
        specs.append(("budget.fallback.credentials", profile.budget.fallback.credentials))
    for where, spec in specs:
        for name in ("key_ref", "secondary_key_ref"):
            ref = getattr(spec, name) if spec is not None else None
            if ref is None:
                continue
            try:
                parse_ref(ref)
            except ValueError as exc:
                return Rejection(ErrorCode.INVALID_CREDENTIALS_REF, f"{where}.{name}: {exc}",
                                 profile.model_dump(mode="json"))
    return None
