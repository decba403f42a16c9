"""OpenAI's speech endpoints, for the OpenAI fake (and so the `local` provider's server):

`POST /v1/audio/transcriptions` (multipart form: `file`, `model`, `response_format` json | text |
verbose_json, default json). A fake cannot recognise speech: the "transcript" is the text the test put in
the WAV file's RIFF `LIST`/`INFO` `ICMT` comment chunk, next to real PCM samples; a RIFF file without one
is heard as silence (text ""). `json` answers `{"text"}` (gpt-4o models: plus `usage: {"type": "duration",
"seconds"}`), `verbose_json` `{"task", "language", "duration", "text", "segments": [...]}` with the
duration from the WAV header; `text` the bare text. A missing `file` or `model`, or a file that is not a
readable RIFF/WAVE file, is a 400 in the documented error envelope.

`POST /v1/audio/speech` (JSON `{model, input, voice, response_format}`, default mp3): for `wav` a real
16 kHz mono sine WAV of 0.05 s per input character (so its size grows with the reply: 1 600 bytes per
character); `pcm` the same samples bare; for the compressed formats (mp3, opus, aac, flac) NOT real audio:
a few marker bytes and filler of the same length, with the documented content type. A missing `input`,
`voice` or `model`, or an input over 4 096 characters, is a 400.

Both record their requests in `audio_requests` (endpoint, model, response_format, voice, input, file name
and size). Faults: a transcript starting with `FAULT:` (or `FAULT@<server>:`), and a speech input
containing `SPEECH-FAULT:<fault>` anywhere, ask for the faults of `tests.fakes.base` (status, slow, hang,
reset, malformed).
"""

from __future__ import annotations

import io
import math
import wave
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.fakes.base import Fault, parse_fault
from tests.fakes.wav import make_wav, riff_comment, sine_pcm

if TYPE_CHECKING:
    from tests.fakes.openai_server import FakeOpenAI

SECONDS_PER_CHARACTER = 0.05
MAX_SPEECH_INPUT = 4096
CONTENT_TYPES = {"mp3": "audio/mpeg", "opus": "audio/opus", "aac": "audio/aac", "flac": "audio/flac",
                 "wav": "audio/wav", "pcm": "audio/pcm"}
MARKERS = {"mp3": b"ID3\x04\x00\x00", "opus": b"OggS\x00\x02", "aac": b"\xff\xf1\x50\x80", "flac": b"fLaC"}
SPEECH_FAULT = "SPEECH-FAULT:"


class OpenAIAudio:
    """The two endpoints, added to a fake's app; requests and fault counts kept on the fake."""

    def __init__(self, fake: FakeOpenAI) -> None:
        self.fake = fake
        fake.app.router.add_post("/v1/audio/transcriptions", self.transcriptions)
        fake.app.router.add_post("/v1/audio/speech", self.speech)

    async def transcriptions(self, request: web.Request) -> web.StreamResponse:
        fake = self.fake
        if not fake.authorized(request):
            return fake.error(401, message="Incorrect API key provided")
        form = await request.post()
        upload = form.get("file")
        model, response_format = form.get("model"), form.get("response_format") or "json"
        data = upload.file.read() if isinstance(upload, web.FileField) else None
        fake.audio_requests.append({"endpoint": "transcriptions", "model": model, "response_format": response_format,
                                    "filename": getattr(upload, "filename", None), "bytes": len(data or b"")})
        if data is None:
            return fake.error(400, message="Missing required parameter: 'file'.")
        if not model:
            return fake.error(400, message="Missing required parameter: 'model'.")
        heard = riff_comment(data)
        duration = _duration(data)
        if duration is None:
            return fake.error(400, message="Audio file might be corrupted or unsupported")
        text = heard or ""
        early = await self._fault(request, text)
        if early is not None:
            return early
        if response_format == "text":
            return web.Response(text=text, headers=fake.headers())
        if response_format == "verbose_json":
            body: dict[str, Any] = {"task": "transcribe", "language": "english", "duration": duration, "text": text,
                                    "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": duration, "text": text,
                                                  "tokens": [], "temperature": 0.0, "avg_logprob": -0.2,
                                                  "compression_ratio": 1.0, "no_speech_prob": 0.01}]}
        else:
            body = {"text": text}
            if str(model).startswith("gpt-4o"):
                body["usage"] = {"type": "duration", "seconds": math.ceil(duration)}
        return web.json_response(body, headers=fake.headers())

    async def speech(self, request: web.Request) -> web.StreamResponse:
        fake = self.fake
        if not fake.authorized(request):
            return fake.error(401, message="Incorrect API key provided")
        body = await request.json()
        text, fmt = body.get("input"), body.get("response_format") or "mp3"
        fake.audio_requests.append({"endpoint": "speech", "model": body.get("model"), "voice": body.get("voice"),
                                    "response_format": fmt, "input": text})
        for field in ("model", "input", "voice"):
            if not body.get(field):
                return fake.error(400, message=f"Missing required parameter: '{field}'.")
        if len(text) > MAX_SPEECH_INPUT:
            return fake.error(400, message=f"'input': string too long, at most {MAX_SPEECH_INPUT} characters")
        if fmt not in CONTENT_TYPES:
            return fake.error(400, message=f"Invalid value for 'response_format': {fmt!r}")
        marker = text.find(SPEECH_FAULT)
        early = await self._fault(request, "FAULT:" + text[marker + len(SPEECH_FAULT):] if marker >= 0 else "")
        if early is not None:
            return early
        return web.Response(body=speech_audio(text, fmt), content_type=CONTENT_TYPES[fmt], headers=fake.headers())

    async def _fault(self, request: web.Request, text: str) -> web.StreamResponse | None:
        self.fake.audio_seen[text] += 1
        fault: Fault | None = parse_fault(text, self.fake.audio_seen[text], self.fake.name) if text else None
        return await self.fake.transport_fault(request, fault, self.fake.error)


def speech_audio(text: str, fmt: str) -> bytes:
    seconds = len(text) * SECONDS_PER_CHARACTER
    if fmt == "wav":
        return make_wav(seconds)
    if fmt == "pcm":
        return sine_pcm(seconds, rate=24_000)
    return MARKERS[fmt] + b"\0" * len(text) * 16  # not real audio: only its type and size are right


def _duration(data: bytes) -> float | None:
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            return wav.getnframes() / wav.getframerate()
    except (wave.Error, EOFError, ValueError):
        return None


__all__ = ["OpenAIAudio"]
