"""Audio messages and the voice profile at intake: shape errors are `invalid_event`, bad or oversized inline
audio `audio_invalid` / `audio_too_large`; never an exception."""

from __future__ import annotations

import base64
import json

import pytest

from gateway_app.contract.decode import InputLimits, Rejection, decode_message, decode_profile
from gateway_app.contract.events import AgentProfile, ErrorCode, MessageCreated, MessageReply
from tests.fakes.wav import make_wav

LIMITS = InputLimits(max_content_chars=100, max_metadata_bytes=50, max_audio_bytes=20_000)
WAV = make_wav(0.25, "hi")  # 8 000 samples of 16 bits
B64 = base64.b64encode(WAV).decode()


def raw(**fields) -> bytes:
    return json.dumps({"messageId": "m-1", "agentId": "a", "roomId": "r", **fields}).encode()


def test_an_audio_message_needs_no_content():
    message = decode_message(raw(audio={"b64": B64, "format": "wav"}), LIMITS)
    assert isinstance(message, MessageCreated) and message.content == "" and message.audio.format == "wav"
    by_url = decode_message(raw(content="caption", audio={"url": "https://cdn.example.com/a.ogg", "format": "ogg"}),
                            LIMITS)
    assert isinstance(by_url, MessageCreated) and by_url.audio.url.endswith("a.ogg")
    assert "b64" not in repr(message.audio)  # the bytes are never printed


@pytest.mark.parametrize("fields, code, words", [
    ({}, ErrorCode.INVALID_EVENT, "content is required (or audio)"),
    ({"content": "  "}, ErrorCode.INVALID_EVENT, "content is blank"),
    ({"audio": {"b64": B64, "url": "https://x/a.wav", "format": "wav"}}, ErrorCode.INVALID_EVENT, "exactly one"),
    ({"audio": {"format": "wav"}}, ErrorCode.INVALID_EVENT, "exactly one"),
    ({"audio": {"b64": B64, "format": "aiff"}}, ErrorCode.INVALID_EVENT, "audio.format"),
    ({"audio": {"b64": "not base64!", "format": "wav"}}, ErrorCode.AUDIO_INVALID, "not valid base64"),
    ({"audio": {"b64": base64.b64encode(b"x" * 20_001).decode(), "format": "wav"}}, ErrorCode.AUDIO_TOO_LARGE,
     "the limit is 20000"),
    ({"audio": {"b64": base64.b64encode(b"x" * 40_000).decode(), "format": "mp3"}}, ErrorCode.AUDIO_TOO_LARGE,
     "the limit is 20000"),
])
def test_bad_audio_is_a_named_rejection(fields, code, words):
    rejected = decode_message(raw(**fields), LIMITS)
    assert isinstance(rejected, Rejection) and rejected.code is code and words in rejected.reason
    assert rejected.field("room_id") == "r"  # the room is told


def test_the_voice_profile_has_defaults_and_refuses_unknown_formats():
    base = {"agentId": "a", "version": 1, "provider": "openai", "model": "gpt-4o-mini"}
    voice = AgentProfile.model_validate({**base, "voice": {}}).voice
    assert (voice.model, voice.voice, voice.format, voice.transcription_model) == ("tts-1", "alloy", "mp3", None)
    rejected = decode_profile(json.dumps({**base, "voice": {"format": "ogg"}}).encode(), lambda name: True)
    assert isinstance(rejected, Rejection) and rejected.code is ErrorCode.INVALID_EVENT


def test_reply_voice_fields_default_to_none():
    fields = MessageReply.model_fields
    assert all(fields[name].default is None for name in ("transcript", "audio_b64", "audio_format", "audio"))


def test_inline_audio_is_capped_so_that_its_forwarded_record_fits_kafka():
    from gateway_app.contract.decode import INLINE_AUDIO_MAX_BYTES
    from gateway_app.forwarding import without_inline_audio

    big = raw(audio={"b64": base64.b64encode(b"x" * (INLINE_AUDIO_MAX_BYTES + 3)).decode(), "format": "mp3"})
    rejected = decode_message(big, InputLimits(100, 50, 4 * 1024 * 1024))
    assert rejected.code is ErrorCode.AUDIO_TOO_LARGE and "send it by audio.url" in rejected.reason
    fits = raw(audio={"b64": base64.b64encode(b"x" * INLINE_AUDIO_MAX_BYTES).decode(), "format": "mp3"})
    assert isinstance(decode_message(fits, InputLimits(100, 50, 4 * 1024 * 1024)), MessageCreated)
    kept = json.loads(without_inline_audio(big))
    assert kept["audio"] == {"b64": f"[removed: {len(json.loads(big)['audio']['b64'])} base64 characters]",
                             "format": "mp3"} and kept["roomId"] == "r"
