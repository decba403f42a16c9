"""Speak: with the profile's `voice`, an ok reply with text is also spoken (text to speech through the
agent's own provider, `client.audio.speech.create`): inline on the reply (`audio_b64`, `audio_format`) when
at most GATEWAY_AUDIO_INLINE_MAX_BYTES, else as `ai-message-audio` records of GATEWAY_AUDIO_CHUNK_BYTES each
(sent, and acknowledged by the broker, before the reply), which the reply's `audio` names. Billed per
character spoken (`units: characters`).

Never fails the message: a speech failure (or a provider without speech, a reply above
GATEWAY_SPEECH_MAX_CHARS) leaves the text reply as it was, with a `skipped` note and a log line.
"""

from __future__ import annotations

import base64
import logging
import time
from typing import Any

from gateway_app.contract import ids
from gateway_app.contract.events import AudioChunk, AudioRef, StageNote
from gateway_app.errors import GatewayError
from gateway_app.pipeline import records
from gateway_app.pipeline.context import MessageContext
from gateway_app.pipeline.stage import Services
from gateway_app.pipeline.stages.provider_call import ProviderCall
from gateway_app.pipeline.stages.transcribe import voice_target
from gateway_app.settings import Settings
from gateway_app.voice.audio import billed_characters, split
from gateway_app.voice.retries import with_retries

log = logging.getLogger(__name__)


class Speak:
    name = "speak"

    def __init__(self, services: Services, call: ProviderCall) -> None:
        self.services, self.call = services, call
        self.settings = services.settings

    async def run(self, ctx: MessageContext) -> None:
        profile = ctx.require_profile()
        voice, result = profile.voice, ctx.result
        if voice is None or result is None or not result.text.strip() or ctx.speech is not None or ctx.internal:
            return  # (an answer to another agent's consultation is text for that agent, never spoken)
        text = result.text
        if len(text) > self.settings.speech_max_chars:
            return self.skip(ctx, f"the reply has {len(text)} characters; speech takes at most "
                                  f"{self.settings.speech_max_chars}")
        started = time.monotonic()
        try:
            where = await voice_target(self.services, self.call, profile)
            if where.provider is None:
                return self.skip(ctx, f"provider {where.target.provider!r} has no speech endpoint")
            provider = where.provider
            speech = await with_retries(
                lambda: provider.speak(where.request, text, voice.model, voice.voice, voice.format,
                                       self.settings.call_timeout_seconds),
                self.settings.retry_policy(), f"speech message={ctx.message.message_id}")
        except GatewayError as failed:
            return self.skip(ctx, f"speech failed ({failed.code})", failed.reason)
        except Exception as exc:  # never lose the text answer for its audio
            return self.skip(ctx, "speech failed (internal error)", repr(exc))
        ctx.speech = speech
        ctx.extra_billing.append(records.unit_billing(
            ctx.message, ids.speech_billing_id(ctx.message.message_id), where.target.provider, voice.model,
            "characters", billed_characters(text), self.services.prices, speech.request_id))
        log.debug("voice.spoken message=%s model=%s chars=%d bytes=%d elapsed_ms=%d", ctx.message.message_id,
                  voice.model, len(text), len(speech.audio), (time.monotonic() - started) * 1000)

    @staticmethod
    def skip(ctx: MessageContext, reason: str, detail: str | None = None) -> None:
        log.warning("voice.speech_skipped message=%s reason=%s detail=%s", ctx.message.message_id, reason, detail)
        ctx.notes.append(StageNote(stage="speak", action="skipped", reason=reason))


def reply_fields(ctx: MessageContext, settings: Settings) -> tuple[dict[str, Any], list[AudioChunk]]:
    """The reply's voice fields (transcript; the audio inline or by reference), and the `ai-message-audio`
    records to publish before it."""
    fields: dict[str, Any] = {"transcript": ctx.transcript}
    speech = ctx.speech
    if speech is None:
        return fields, []
    if len(speech.audio) <= settings.audio_inline_max_bytes:
        fields.update(audio_b64=base64.b64encode(speech.audio).decode(), audio_format=speech.format)
        return fields, []
    audio_id = ids.audio_id(ctx.message.message_id)
    pieces = split(speech.audio, settings.audio_chunk_bytes)
    # Under the room's message id (after a consultation, the user's message: the reply's own).
    chunks = [records.audio_chunk(ctx.room_message, audio_id, seq, seq == len(pieces) - 1, speech.format,
                                  base64.b64encode(piece).decode()) for seq, piece in enumerate(pieces)]
    fields["audio"] = AudioRef(audio_id=audio_id, format=speech.format, bytes=len(speech.audio), chunks=len(chunks))
    fields["audio_format"] = speech.format
    return fields, chunks
