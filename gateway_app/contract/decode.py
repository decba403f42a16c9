"""Turn raw input records into contract models, or into a named rejection. Never raises on input."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from pydantic import BaseModel, ValidationError

from gateway_app.errors import GatewayError
from gateway_app.contract.events import (
    AgentProfile,
    AgentProfileDeleted,
    ConversationCleared,
    ErrorCode,
    MessageCreated,
    ModerationSignal,
    ToolResults,
)
from gateway_app.contract.voice import decode_b64
from gateway_app.pipeline.formats import check_schema

M = TypeVar("M", bound=BaseModel)


class Rejection(GatewayError):
    """Why an input was refused, plus whatever routing fields could still be read from it. Returned,
    not raised: the intake dead-letters it and goes on with the next record."""

    def __init__(self, code: ErrorCode, reason: str, fields: dict[str, Any]) -> None:
        super().__init__(code, reason)
        self.fields = fields

    def field(self, name: str) -> str | None:
        """A routing field (snake or camel case) if present as a non-empty string."""
        for key in (name, _camel(name)):
            value = self.fields.get(key)
            if isinstance(value, str) and value:
                return value
        return None


# Inline audio travels in the message's record, and the intake forwards that record with the message AND its
# original bytes in base64 (for a DLQ replay): 256 KiB of audio makes a record of about 820 KB, under the
# producer's 1 MB request size with room for content and metadata. Larger audio goes by URL.
INLINE_AUDIO_MAX_BYTES = 256 * 1024


@dataclass(frozen=True)
class InputLimits:
    max_content_chars: int
    max_metadata_bytes: int
    max_audio_bytes: int = 4 * 1024 * 1024  # decoded `audio.b64` (GATEWAY_AUDIO_MAX_BYTES)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _parse_json(raw: bytes | None) -> dict[str, Any] | Rejection:
    if raw is None:
        return Rejection(ErrorCode.INVALID_EVENT, "record has no value (tombstone)", {})
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection(ErrorCode.UNDECODABLE, f"value is not UTF-8: {exc.reason} at byte {exc.start}", {})
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return Rejection(ErrorCode.INVALID_JSON, f"value is not JSON: {exc.msg} at char {exc.pos}", {})
    except RecursionError:  # the stdlib parser recurses per nesting level
        return Rejection(ErrorCode.INVALID_JSON, "value is JSON nested too deeply to parse", {})
    if not isinstance(data, dict):
        return Rejection(ErrorCode.INVALID_EVENT, f"value is a JSON {type(data).__name__}, not an object", {})
    return data


def _validate(model: type[M], data: dict[str, Any]) -> M | Rejection:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        return Rejection(ErrorCode.INVALID_EVENT, _summarise(exc), data)


def _summarise(exc: ValidationError) -> str:
    """One line per failing field, capped: a reason an operator can read in a DLQ record."""
    parts = [f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']}" for err in exc.errors()[:5]]
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def decode(model: type[M], raw: bytes | None) -> M | Rejection:
    data = _parse_json(raw)
    return data if isinstance(data, Rejection) else _validate(model, data)


def decode_message(raw: bytes | None, limits: InputLimits) -> MessageCreated | Rejection:
    result = decode(MessageCreated, raw)
    if isinstance(result, Rejection):
        return result
    return _check_message_bounds(result, limits)


def _check_message_bounds(message: MessageCreated, limits: InputLimits) -> MessageCreated | Rejection:
    if len(message.content) > limits.max_content_chars:
        reason = f"content has {len(message.content)} characters; the limit is {limits.max_content_chars}"
        return Rejection(ErrorCode.CONTENT_TOO_LONG, reason, message.model_dump(mode="json"))
    size = len(json.dumps(message.metadata).encode()) if message.metadata else 0
    if size > limits.max_metadata_bytes:
        reason = f"metadata is {size} bytes as JSON; the limit is {limits.max_metadata_bytes}"
        return Rejection(ErrorCode.METADATA_TOO_LARGE, reason, message.model_dump(mode="json"))
    return _check_audio(message, limits)


def _check_audio(message: MessageCreated, limits: InputLimits) -> MessageCreated | Rejection:
    """Inline audio must be base64 and, decoded, within the limit (checked on its length before decoding)."""
    audio = message.audio
    if audio is None or audio.b64 is None:
        return message
    fields = message.model_dump(mode="json", exclude={"audio"})
    if len(audio.b64) // 4 * 3 > INLINE_AUDIO_MAX_BYTES + 2 and INLINE_AUDIO_MAX_BYTES < limits.max_audio_bytes:
        reason = (f"audio.b64 is about {len(audio.b64) // 4 * 3} bytes decoded; inline audio is limited to "
                  f"{INLINE_AUDIO_MAX_BYTES} (it must fit a Kafka record once forwarded): send it by audio.url")
        return Rejection(ErrorCode.AUDIO_TOO_LARGE, reason, fields)
    if len(audio.b64) // 4 * 3 > limits.max_audio_bytes + 2:
        reason = f"audio.b64 is about {len(audio.b64) // 4 * 3} bytes decoded; the limit is {limits.max_audio_bytes}"
        return Rejection(ErrorCode.AUDIO_TOO_LARGE, reason, fields)
    try:
        data = decode_b64(audio.b64)
    except ValueError as exc:
        return Rejection(ErrorCode.AUDIO_INVALID, str(exc), fields)
    if len(data) > limits.max_audio_bytes:
        reason = f"audio.b64 is {len(data)} bytes decoded; the limit is {limits.max_audio_bytes}"
        return Rejection(ErrorCode.AUDIO_TOO_LARGE, reason, fields)
    if not data:
        return Rejection(ErrorCode.AUDIO_INVALID, "audio.b64 is empty", fields)
    return message


# (stage name, its options) -> why the profile may not use it, or None.
StageCheck = Callable[[str, dict[str, Any]], tuple[ErrorCode, str] | None]


def no_stages_installed(name: str, options: dict[str, Any]) -> tuple[ErrorCode, str]:
    return ErrorCode.UNKNOWN_STAGE, f"stage {name!r} is not installed"


def decode_profile(
    raw: bytes | None, known_provider: Callable[[str], bool], check_stage: StageCheck = no_stages_installed
) -> AgentProfile | Rejection:
    result = decode(AgentProfile, raw)
    if isinstance(result, Rejection):
        return result
    budget_fallback = [result.budget.fallback.provider] if result.budget and result.budget.fallback else []
    judge = [result.ranking.judge.provider] if result.ranking and result.ranking.judge else []
    for name in [result.provider, *(target.provider for target in result.fallbacks), *budget_fallback, *judge]:
        if not known_provider(name):
            return Rejection(ErrorCode.UNKNOWN_PROVIDER, f"provider {name!r} is not supported", result.model_dump())
    names = [ref.name for ref in result.stages]
    if len(set(names)) != len(names):
        return Rejection(ErrorCode.INVALID_EVENT, "stages: a stage is named more than once", result.model_dump())
    for ref in result.stages:
        problem = check_stage(ref.name, ref.options)
        if problem is not None:
            return Rejection(problem[0], problem[1], result.model_dump())
    schema = result.response_format.json_schema
    problem = None if schema is None else check_schema(schema) or _remote_refs(schema)
    if problem is not None:
        return Rejection(ErrorCode.INVALID_EVENT, f"response_format.schema: {problem}", result.model_dump())
    return result


def _remote_refs(schema: Any) -> str | None:
    """A `$ref` outside the schema would be fetched by nobody (the gateway never fetches): refuse it here
    rather than fail every reply."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            return f"$ref {ref[:100]!r} points outside the schema; only local references (#...) are resolved"
        return next((p for p in map(_remote_refs, schema.values()) if p), None)
    if isinstance(schema, list):
        return next((p for p in map(_remote_refs, schema) if p), None)
    return None


def decode_tool_results(raw: bytes | None, limits: InputLimits) -> ToolResults | Rejection:
    result = decode(ToolResults, raw)
    if isinstance(result, Rejection):
        return result
    size = sum(len(r.content) for r in result.results)
    if size > limits.max_content_chars:
        reason = f"results have {size} characters of content; the limit is {limits.max_content_chars}"
        return Rejection(ErrorCode.CONTENT_TOO_LONG, reason, result.model_dump(mode="json"))
    return result


def decode_conversation_cleared(raw: bytes | None) -> ConversationCleared | Rejection:
    return decode(ConversationCleared, raw)


def decode_profile_deleted(raw: bytes | None) -> AgentProfileDeleted | Rejection:
    return decode(AgentProfileDeleted, raw)


def decode_moderation_signal(raw: bytes | None) -> ModerationSignal | Rejection:
    return decode(ModerationSignal, raw)
