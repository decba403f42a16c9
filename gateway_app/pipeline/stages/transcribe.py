"""Transcribe: an audio message (`audio: {url | b64, format}`) is turned into text before anything else
reads its content. The audio is decoded (checked at intake) or fetched (`voice.fetch`: allow-listed hosts
only, bounded, no redirects), then sent to the speech-to-text endpoint of the agent's own provider (its
profile provider, with the agent's key: the client its chat calls use); providers without one refuse it
(`transcription_unavailable`). The transcript becomes the message's content for every later stage, and
the reply carries it. Retried on the retry policy (`voice.retries`), no fallbacks: a failure is an error
reply and a DLQ record (replayable).

Billed per second of audio (`units: seconds`): from the WAV header for wav, else the answer's duration.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from gateway_app.contract import ids
from gateway_app.contract.events import AgentProfile, AudioInput, ErrorCode
from gateway_app.contract.voice import decode_b64
from gateway_app.errors import GatewayError
from gateway_app.pipeline import records
from gateway_app.pipeline.caller import Target, targets_of
from gateway_app.pipeline.context import MessageContext
from gateway_app.pipeline.stage import Services
from gateway_app.pipeline.stages.provider_call import ProviderCall
from gateway_app.providers.base import ChatRequest, VoiceProvider
from gateway_app.voice import fetch
from gateway_app.voice.audio import billed_seconds, wav_duration
from gateway_app.voice.retries import with_retries

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VoiceTarget:
    """Where an agent's speech calls go: its profile's provider, with the request that picks its client."""

    target: Target
    provider: VoiceProvider | None  # None: the provider has no speech endpoints
    request: ChatRequest


async def voice_target(services: Services, call: ProviderCall, profile: AgentProfile) -> VoiceTarget:
    """Raises `GatewayError` (the provider does not load, the agent's key does not resolve)."""
    target = targets_of(profile)[0]
    provider = await services.caller.providers.load(target.provider)
    request = await call.for_target(ChatRequest(target.model, "", (), 0.0, 0), target, profile.agent_id)
    return VoiceTarget(target, provider if isinstance(provider, VoiceProvider) else None, request)


class Transcribe:
    name = "transcribe"

    def __init__(self, services: Services, call: ProviderCall) -> None:
        self.services, self.call = services, call
        self.settings = services.settings

    async def run(self, ctx: MessageContext) -> None:
        audio = ctx.message.audio if ctx.tool_results is None else None
        if audio is None or ctx.transcript is not None:
            return
        profile = ctx.require_profile()
        data = await self.audio_bytes(audio)
        seconds = wav_duration(data) if audio.format == "wav" else None
        if audio.format == "wav" and seconds is None:
            raise GatewayError(ErrorCode.AUDIO_INVALID, "audio is not a readable WAV file (format wav)")
        model = (profile.voice.transcription_model if profile.voice else None) or self.settings.transcription_model
        try:
            where = await voice_target(self.services, self.call, profile)
        except GatewayError as failed:
            raise self.failed(ctx, profile.provider, model, failed) from None
        if where.provider is None:
            raise GatewayError(ErrorCode.TRANSCRIPTION_UNAVAILABLE,
                               f"provider {where.target.provider!r} has no transcription endpoint; "
                               "audio messages need an OpenAI-compatible provider (openai, azure, local)")
        started = time.monotonic()
        try:
            heard = await with_retries(
                lambda: where.provider.transcribe(where.request, data, audio.format, model,
                                                  self.settings.call_timeout_seconds),
                self.settings.retry_policy(), f"transcription message={ctx.message.message_id}")
        except GatewayError as failed:
            raise self.failed(ctx, where.target.provider, model, failed) from None
        billed = billed_seconds(seconds if seconds is not None else heard.duration)
        ctx.extra_billing.append(records.unit_billing(
            ctx.message, ids.transcription_billing_id(ctx.message.message_id), where.target.provider, model,
            "seconds", billed, self.services.prices, heard.request_id))
        log.debug("voice.transcribed message=%s model=%s bytes=%d seconds=%d chars=%d elapsed_ms=%d",
                  ctx.message.message_id, model, len(data), billed, len(heard.text),
                  (time.monotonic() - started) * 1000)
        text = heard.text.strip()
        if not text:
            raise GatewayError(ErrorCode.TRANSCRIPTION_FAILED, "the transcription heard no speech in the audio")
        if len(text) > self.settings.max_content_chars:
            raise GatewayError(ErrorCode.CONTENT_TOO_LONG, f"the transcript has {len(text)} characters; the limit "
                                                           f"is {self.settings.max_content_chars}")
        ctx.use_transcript(text)

    async def audio_bytes(self, audio: AudioInput) -> bytes:
        if audio.b64 is not None:
            try:
                return decode_b64(audio.b64)
            except ValueError as exc:  # checked at intake; a replayed record may predate the check
                raise GatewayError(ErrorCode.AUDIO_INVALID, str(exc)) from None
        url = audio.url or ""
        return await fetch.fetch(url, self.settings.audio_hosts(), timeout=self.settings.audio_fetch_timeout_seconds,
                                 max_bytes=self.settings.audio_max_bytes)

    @staticmethod
    def failed(ctx: MessageContext, provider: str, model: str, error: GatewayError) -> GatewayError:
        log.warning("voice.transcription_failed message=%s provider=%s model=%s code=%s reason=%s",
                    ctx.message.message_id, provider, model, error.code, error.reason)
        return GatewayError(ErrorCode.TRANSCRIPTION_FAILED, f"transcription failed ({error.code}): {error.reason}")
