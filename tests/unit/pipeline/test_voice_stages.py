"""The transcribe and speak stages over stub providers: what they put on the context, what they bill, and
how each failure ends (or, for speech, does not end) the message."""

from __future__ import annotations

import base64
from dataclasses import replace
from types import SimpleNamespace

import pytest

from gateway_app.contract.events import AgentProfile, ErrorCode, MessageCreated
from gateway_app.contract.internal import MessageRecord, Origin
from gateway_app.errors import GatewayError
from gateway_app.pipeline.context import MessageContext
from gateway_app.pipeline.stages.speak import Speak, reply_fields
from gateway_app.pipeline.stages.transcribe import Transcribe
from gateway_app.pricing.prices import current_table
from gateway_app.providers import errors
from gateway_app.providers.base import ChatResult, Speech, TokenUsage, Transcript
from gateway_app.settings import Settings
from tests.fakes.wav import make_wav

SETTINGS = Settings(audio_inline_max_bytes=2048, audio_chunk_bytes=1024)


class Voice:
    """A provider with speech endpoints; `fail` raises that instead of answering."""

    def __init__(self, fail: Exception | None = None, audio: bytes = b"\x01" * 100) -> None:
        self.fail, self.audio, self.asked = fail, audio, []

    async def transcribe(self, request, audio, audio_format, model, timeout):
        self.asked.append(("transcribe", model, audio_format, request.credential))
        if self.fail:
            raise self.fail
        return Transcript(text=" where is my order ", duration=99.0, request_id="req_1")

    async def speak(self, request, text, model, voice, audio_format, timeout):
        self.asked.append(("speak", model, voice, audio_format, text))
        if self.fail:
            raise self.fail
        return Speech(audio=self.audio, format=audio_format, request_id="req_2")


class TextOnly:
    async def complete(self, request): ...


def services(provider) -> SimpleNamespace:
    async def load(name):
        return provider
    return SimpleNamespace(settings=SETTINGS, prices=current_table(),
                           caller=SimpleNamespace(providers=SimpleNamespace(load=load)))


class Call:
    async def for_target(self, request, target, agent_id, answers=1):
        return replace(request, model=target.model, options=target.options)


def context(voice: dict | None = None, **message) -> MessageContext:
    payload = MessageCreated.model_validate({"messageId": "m-1", "agentId": "a", "roomId": "r", **message})
    ctx = MessageContext(record=MessageRecord(agent_id="a", payload=payload,
                                              origin=Origin(topic="t", partition=0, offset=1, received_at_ms=0)),
                         partition=0, slot=None)
    ctx.profile = AgentProfile(agent_id="a", version=1, provider="openai", model="gpt-4o-mini", voice=voice)
    return ctx


def wav_message(seconds: float = 2.2) -> dict:
    return {"audio": {"b64": base64.b64encode(make_wav(seconds, "x")).decode(), "format": "wav"}}


async def test_the_transcript_becomes_the_message_and_seconds_come_from_the_wav_header():
    provider, ctx = Voice(), context(voice={"transcriptionModel": "gpt-4o-mini-transcribe"}, **wav_message(2.2))
    await Transcribe(services(provider), Call()).run(ctx)
    assert ctx.transcript == "where is my order" and ctx.message.content == "where is my order"
    assert ctx.message.message_id == "m-1" and ctx.record.payload.content == ""  # the input stays as read
    [bill] = ctx.extra_billing
    assert (bill.units, bill.quantity, bill.model, bill.provider) == ("seconds", 3, "gpt-4o-mini-transcribe", "openai")
    assert bill.cost_usd == "0.00015000" and bill.provider_request_id == "req_1"  # 3 s at $0.003 a minute
    assert provider.asked[0][:3] == ("transcribe", "gpt-4o-mini-transcribe", "wav")


async def test_a_message_without_audio_is_left_alone():
    provider, ctx = Voice(), context(content="hi")
    await Transcribe(services(provider), Call()).run(ctx)
    assert ctx.transcript is None and not provider.asked and not ctx.extra_billing


@pytest.mark.parametrize("provider, message, code, words", [
    (TextOnly(), wav_message(), ErrorCode.TRANSCRIPTION_UNAVAILABLE, "has no transcription endpoint"),
    (Voice(errors.from_status(400, "Audio file might be corrupted")), wav_message(),
     ErrorCode.TRANSCRIPTION_FAILED, "(provider_rejected): provider answered HTTP 400: Audio file might be"),
    (Voice(), {"audio": {"b64": base64.b64encode(b"RIFF....WAVEjunk").decode(), "format": "wav"}},
     ErrorCode.AUDIO_INVALID, "not a readable WAV"),
    (Voice(), {"audio": {"url": "https://cdn.example.com/a.wav", "format": "wav"}},
     ErrorCode.AUDIO_URL_NOT_ALLOWED, "GATEWAY_AUDIO_URL_ALLOWLIST is empty"),
])
async def test_transcription_failures_end_the_message_with_their_code(provider, message, code, words):
    ctx = context(**message)
    with pytest.raises(GatewayError) as failed:
        await Transcribe(services(provider), Call()).run(ctx)
    assert failed.value.code is code and words in failed.value.reason
    assert not ctx.extra_billing and ctx.transcript is None


def answered(ctx: MessageContext, text: str) -> MessageContext:
    ctx.result = ChatResult(text=text, finish_reason="stop", usage=TokenUsage(1, 1))
    return ctx


async def test_a_short_spoken_reply_goes_inline_and_is_billed_per_character():
    provider, ctx = Voice(audio=b"\x02" * 2048), answered(context(voice={"format": "opus"}, content="hi"), "Hello!")
    await Speak(services(provider), Call()).run(ctx)
    fields, chunks = reply_fields(ctx, SETTINGS)
    assert fields == {"transcript": None, "audio_b64": base64.b64encode(b"\x02" * 2048).decode(),
                      "audio_format": "opus"} and chunks == []
    [bill] = ctx.extra_billing
    assert (bill.units, bill.quantity, bill.model, bill.cost_usd) == ("characters", 6, "tts-1", "0.00009000")
    assert provider.asked == [("speak", "tts-1", "alloy", "opus", "Hello!")]


async def test_a_large_spoken_reply_is_chunked_by_reference():
    audio = bytes(range(256)) * 10  # 2 560 bytes: above the 2 048 inline, 3 chunks of 1 024
    ctx = answered(context(voice={}, content="hi"), "Hello!")
    await Speak(services(Voice(audio=audio)), Call()).run(ctx)
    fields, chunks = reply_fields(ctx, SETTINGS)
    assert "audio_b64" not in fields and fields["audio"].chunks == 3 and fields["audio"].bytes == 2560
    assert [(c.seq, c.final) for c in chunks] == [(0, False), (1, False), (2, True)]
    assert b"".join(base64.b64decode(c.data_b64) for c in chunks) == audio
    assert {c.audio_id for c in chunks} == {fields["audio"].audio_id}


@pytest.mark.parametrize("provider, text, reason", [
    (Voice(errors.from_status(503, "down")), "Hello!", "speech failed (provider_unavailable)"),
    (Voice(RuntimeError("bug")), "Hello!", "speech failed (internal error)"),
    (TextOnly(), "Hello!", "provider 'openai' has no speech endpoint"),
    (Voice(), "x" * 4097, "the reply has 4097 characters; speech takes at most 4096"),
])
async def test_a_speech_failure_keeps_the_text_with_a_skipped_note(provider, text, reason):
    ctx = answered(context(voice={}, content="hi"), text)
    await Speak(services(provider), Call()).run(ctx)
    assert ctx.speech is None and not ctx.extra_billing and ctx.result.text == text
    assert [(n.stage, n.action, n.reason) for n in ctx.notes] == [("speak", "skipped", reason)]


async def test_no_voice_no_speech():
    provider = Voice()
    ctx = answered(context(content="hi"), "Hello!")
    await Speak(services(provider), Call()).run(ctx)
    assert not provider.asked and ctx.speech is None and not ctx.notes
