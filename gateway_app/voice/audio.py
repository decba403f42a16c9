"""Pure audio arithmetic: a WAV file's duration from its header, the seconds and characters a call is billed
for, and splitting a spoken reply into `ai-message-audio` chunks."""

from __future__ import annotations

import io
import math
import wave

# The file name sent with a transcription: the endpoint tells the container by its extension.
FILENAMES = {"mpga": "audio.mpga", "mpeg": "audio.mpeg"}

# The content type a speech answer of each format carries (OpenAI's, as documented).
SPEECH_CONTENT_TYPES = {"mp3": "audio/mpeg", "opus": "audio/opus", "aac": "audio/aac", "flac": "audio/flac",
                        "wav": "audio/wav", "pcm": "audio/pcm"}


def filename_for(audio_format: str) -> str:
    return FILENAMES.get(audio_format, f"audio.{audio_format}")


def wav_duration(data: bytes) -> float | None:
    """Seconds of audio in a WAV file, from its header (frames / rate); None if it is not a WAV the stdlib
    reads (e.g. compressed or truncated before its data chunk)."""
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            rate, frames = wav.getframerate(), wav.getnframes()
    except (wave.Error, EOFError, ValueError):
        return None
    return frames / rate if rate > 0 else None


def billed_seconds(duration: float | None) -> int:
    """Whole seconds billed for `duration`: rounded up, at least 1 (an unknown duration bills 1)."""
    if duration is None or not math.isfinite(duration) or duration <= 0:
        return 1
    return max(1, math.ceil(duration - 1e-9))


def billed_characters(text: str) -> int:
    """Characters billed for speaking `text`: Unicode code points, as the speech endpoint counts its input."""
    return len(text)


def split(data: bytes, size: int) -> list[bytes]:
    """`data` in pieces of `size` bytes (the last may be shorter); at least one piece."""
    if size < 1:
        raise ValueError("chunk size must be at least 1 byte")
    return [data[i:i + size] for i in range(0, len(data), size)] or [b""]


def chunk_count(total: int, size: int) -> int:
    return max(1, math.ceil(total / size))
