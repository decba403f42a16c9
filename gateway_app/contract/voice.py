"""The voice part of the contract: audio a message may carry instead of text, the profile's `voice` (speak
the reply), the reply's reference to a spoken reply too large to go inline, and `ai-message-audio` records.
Re-exported by `contract.events`, the one import of the contract.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Literal

from pydantic import Field, model_validator

from gateway_app.contract.model import CONTRACT_VERSION, _Input, _Output

# What OpenAI's transcription endpoint accepts (the file name's extension tells it the container).
INPUT_FORMATS = ("wav", "mp3", "mp4", "mpeg", "mpga", "m4a", "ogg", "webm", "flac")
# What its speech endpoint answers in (`response_format`).
SPEECH_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
AUDIO_TOPIC = "ai-message-audio"

InputFormat = Literal["wav", "mp3", "mp4", "mpeg", "mpga", "m4a", "ogg", "webm", "flac"]
SpeechFormat = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]


def decode_b64(text: str) -> bytes:
    """Strict standard base64 (padding required, no line breaks); ValueError otherwise."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"audio.b64 is not valid base64: {exc}") from None


class AudioInput(_Input):
    """A message's audio: exactly one of `url` (fetched from an allow-listed host) or `b64` (the bytes,
    standard base64), and the container `format`. Its size is checked at intake against
    GATEWAY_AUDIO_MAX_BYTES (decoded)."""

    url: str | None = Field(default=None, min_length=1, max_length=2048)
    b64: str | None = Field(default=None, min_length=4, repr=False)
    format: InputFormat

    @model_validator(mode="after")
    def _one_source(self) -> "AudioInput":
        if (self.url is None) == (self.b64 is None):
            raise ValueError("audio needs exactly one of url or b64")
        return self


class VoiceSpec(_Input):
    """Profile `voice`: speak every ok text reply too (OpenAI's speech endpoint through the agent's provider),
    and the transcription model for audio messages (default: GATEWAY_TRANSCRIPTION_MODEL)."""

    model: str = Field(default="tts-1", min_length=1, max_length=128)
    voice: str = Field(default="alloy", min_length=1, max_length=64)  # alloy, ash, coral, echo, nova, ...
    format: SpeechFormat = "mp3"
    transcription_model: str | None = Field(default=None, min_length=1, max_length=128)


class AudioRef(_Output):
    """A spoken reply larger than GATEWAY_AUDIO_INLINE_MAX_BYTES: its bytes are in `chunks` records of
    `ai-message-audio` under `audio_id` (published before the reply)."""

    audio_id: str
    format: SpeechFormat
    bytes: int
    chunks: int
    topic: str = AUDIO_TOPIC


class AudioChunk(_Output):
    """`ai-message-audio` (key = room id): one piece of a spoken reply, `seq` from 0, the last `final`.
    Concatenate `data_b64` decoded, in `seq` order, for the whole file (of `format`)."""

    audio_id: str
    reply_id: str
    message_id: str
    agent_id: str
    room_id: str
    seq: int
    final: bool
    format: SpeechFormat
    data_b64: str
    created_at: datetime
    contract_version: Literal[1] = CONTRACT_VERSION
