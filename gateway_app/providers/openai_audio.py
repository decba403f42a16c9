"""OpenAI's speech endpoints through the official SDK, for the OpenAI-compatible providers (openai, azure,
local): speech to text (`client.audio.transcriptions.create`, multipart upload) and text to speech
(`client.audio.speech.create`, the audio file as the body). Same clients, keys and error table as the chat
calls (`openai_compat`); one attempt each, no SDK retries (the stage decides what a failure means).
"""

from __future__ import annotations

import asyncio
from typing import Any

import openai

from gateway_app.providers import errors
from gateway_app.providers.base import Speech, Transcript
from gateway_app.voice.audio import filename_for

# The gpt-4o transcription models answer `json` or `text` only; whisper (and the OpenAI-compatible servers
# that copy its API) answer `verbose_json`, which carries the audio's duration and language.
JSON_ONLY_PREFIX = "gpt-4o"


def response_format_for(model: str) -> str:
    return "json" if model.startswith(JSON_ONLY_PREFIX) else "verbose_json"


async def transcribe(client: openai.AsyncOpenAI, audio: bytes, audio_format: str, model: str, timeout: float,
                     error_table: errors.ErrorTable) -> Transcript:
    try:
        async with asyncio.timeout(timeout):
            answer = await client.audio.transcriptions.create(
                file=(filename_for(audio_format), audio), model=model,
                response_format=response_format_for(model), timeout=timeout)  # type: ignore[call-overload]
    except TimeoutError as exc:
        raise errors.timed_out(f"transcription timed out after {timeout:g} s") from exc
    except Exception as exc:
        raise errors.classify(exc, error_table) from exc
    return to_transcript(answer)


def to_transcript(answer: Any) -> Transcript:
    """The SDK builds its models without validating them: the fields used are checked here."""
    text = getattr(answer, "text", None)
    if not isinstance(text, str):
        raise errors.bad_response("no text in the transcription answer")
    duration = getattr(answer, "duration", None)
    if not isinstance(duration, (int, float)) or isinstance(duration, bool):
        usage = getattr(answer, "usage", None)  # gpt-4o-*-transcribe: {"type": "duration", "seconds": n}
        seconds = getattr(usage, "seconds", None)
        duration = seconds if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) else None
    language = getattr(answer, "language", None)
    request_id = getattr(answer, "_request_id", None)
    return Transcript(text=text, duration=float(duration) if duration is not None else None,
                      language=language if isinstance(language, str) else None,
                      request_id=str(request_id) if request_id else None)


async def speak(client: openai.AsyncOpenAI, text: str, model: str, voice: str, audio_format: str, timeout: float,
                error_table: errors.ErrorTable) -> Speech:
    try:
        async with asyncio.timeout(timeout):
            answer = await client.audio.speech.create(model=model, voice=voice, input=text,
                                                      response_format=audio_format,  # type: ignore[arg-type]
                                                      timeout=timeout)
            data = answer.content
    except TimeoutError as exc:
        raise errors.timed_out(f"speech timed out after {timeout:g} s") from exc
    except Exception as exc:
        raise errors.classify(exc, error_table) from exc
    if not isinstance(data, bytes) or not data:
        raise errors.bad_response("the speech answer has no audio")
    request_id = getattr(getattr(answer, "response", None), "headers", {}).get("x-request-id")
    return Speech(audio=data, format=audio_format, request_id=request_id)
