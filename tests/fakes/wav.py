"""Real WAV files made in the tests: PCM sine samples, optionally carrying text in a RIFF `LIST`/`INFO`
`ICMT` (comment) chunk. A fake cannot recognise speech: the audio fakes "hear" the comment instead."""

from __future__ import annotations

import io
import math
import struct

RATE = 16_000


def sine_pcm(seconds: float, rate: int = RATE, hz: float = 440.0) -> bytes:
    """16-bit mono little-endian PCM samples of a sine tone."""
    frames = int(seconds * rate)
    return b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * hz * i / rate))) for i in range(frames))


def _chunk(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("<I", len(body)) + body + (b"\0" if len(body) % 2 else b"")


def make_wav(seconds: float, comment: str | None = None, rate: int = RATE) -> bytes:
    """A WAV file of `seconds` of sine tone; `comment` (the "spoken" text) in an INFO/ICMT chunk."""
    fmt = _chunk(b"fmt ", struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16))
    info = b""
    if comment is not None:
        info = _chunk(b"LIST", b"INFO" + _chunk(b"ICMT", comment.encode() + b"\0"))
    body = b"WAVE" + fmt + info + _chunk(b"data", sine_pcm(seconds, rate))
    return b"RIFF" + struct.pack("<I", len(body)) + body


def riff_comment(data: bytes) -> str | None:
    """The ICMT text of a RIFF/WAVE file, or None (not RIFF, or no comment)."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    stream = io.BytesIO(data[12:])
    while True:
        head = stream.read(8)
        if len(head) < 8:
            return None
        kind, size = head[:4], struct.unpack("<I", head[4:])[0]
        body = stream.read(size + (size % 2))
        if kind == b"LIST" and body[:4] == b"INFO":
            inner = io.BytesIO(body[4:size])
            while len(sub := inner.read(8)) == 8:
                sub_size = struct.unpack("<I", sub[4:])[0]
                text = inner.read(sub_size + (sub_size % 2))
                if sub[:4] == b"ICMT":
                    return text[:sub_size].rstrip(b"\0").decode()
