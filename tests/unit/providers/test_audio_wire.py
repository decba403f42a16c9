"""The speech endpoints through the real openai SDK against the OpenAI fake: the multipart upload and the
JSON body it sends, the answers it parses, and how failures are classified."""

from __future__ import annotations

import io
import wave

import pytest

from gateway_app.contract.events import ErrorCode
from gateway_app.providers.base import ChatRequest, ProviderError
from gateway_app.providers.local import LocalProvider
from gateway_app.providers.openai import OpenAIProvider
from tests.fakes.base import ServerThread
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.wav import make_wav

REQUEST = ChatRequest("gpt-4o-mini", "", (), 0.0, 0)


@pytest.fixture
def fake():
    server = FakeOpenAI()
    with ServerThread(server.app) as thread:
        yield server, thread.url + "/v1"


@pytest.fixture
def openai(fake, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", fake[1])
    return OpenAIProvider(timeout=5)


async def test_whisper_transcription_is_verbose_json_with_the_duration(fake, openai):
    heard = await openai.transcribe(REQUEST, make_wav(2.5, "where is my order"), "wav", "whisper-1", 5)
    await openai.aclose()
    assert heard.text == "where is my order" and heard.duration == 2.5 and heard.language == "english"
    assert heard.request_id.startswith("req_")
    [sent] = fake[0].audio_requests
    assert sent == {"endpoint": "transcriptions", "model": "whisper-1", "response_format": "verbose_json",
                    "filename": "audio.wav", "bytes": len(make_wav(2.5, "where is my order"))}


async def test_gpt4o_transcription_asks_json_and_reads_the_usage_seconds(fake, openai):
    heard = await openai.transcribe(REQUEST, make_wav(1.2, "hi"), "wav", "gpt-4o-mini-transcribe", 5)
    await openai.aclose()
    assert heard.text == "hi" and heard.duration == 2  # the usage's whole seconds
    assert fake[0].audio_requests[0]["response_format"] == "json"


async def test_unreadable_audio_is_rejected_by_the_endpoint(fake, openai):
    with pytest.raises(ProviderError) as failed:
        await openai.transcribe(REQUEST, b"not audio at all", "mp3", "whisper-1", 5)
    await openai.aclose()
    assert failed.value.code is ErrorCode.PROVIDER_REJECTED and "corrupted" in failed.value.reason


async def test_a_transcription_fault_is_classified(fake, openai):
    with pytest.raises(ProviderError) as failed:
        await openai.transcribe(REQUEST, make_wav(0.5, "FAULT:503"), "wav", "whisper-1", 5)
    await openai.aclose()
    assert failed.value.code is ErrorCode.PROVIDER_UNAVAILABLE


async def test_speech_answers_a_real_wav_growing_with_the_text(fake, openai):
    short = await openai.speak(REQUEST, "hello", "tts-1", "alloy", "wav", 5)
    long = await openai.speak(REQUEST, "hello " * 20, "tts-1-hd", "nova", "wav", 5)
    mp3 = await openai.speak(REQUEST, "hello", "tts-1", "alloy", "mp3", 5)
    await openai.aclose()
    with wave.open(io.BytesIO(short.audio)) as wav:
        assert wav.getnframes() / wav.getframerate() == pytest.approx(0.25)
    assert len(long.audio) > 10 * len(short.audio) and short.format == "wav" and short.request_id
    assert mp3.audio.startswith(b"ID3")
    assert fake[0].audio_requests[1] == {"endpoint": "speech", "model": "tts-1-hd", "voice": "nova",
                                         "response_format": "wav", "input": "hello " * 20}


async def test_a_speech_fault_is_classified(fake, openai):
    with pytest.raises(ProviderError) as failed:
        await openai.speak(REQUEST, "say SPEECH-FAULT:429 now", "tts-1", "alloy", "mp3", 5)
    await openai.aclose()
    assert failed.value.code is ErrorCode.PROVIDER_RATE_LIMITED


async def test_the_local_provider_reaches_the_same_endpoints(fake, monkeypatch):
    monkeypatch.setenv("LOCAL_LLM_BASE_URL", fake[1])
    local = LocalProvider(timeout=5)
    heard = await local.transcribe(REQUEST, make_wav(1.0, "hola"), "wav", "whisper-large-v3", 5)
    spoken = await local.speak(REQUEST, "hola", "kokoro", "af_sky", "wav", 5)
    await local.aclose()
    assert heard.text == "hola" and heard.duration == 1.0 and spoken.audio[:4] == b"RIFF"


async def test_azure_puts_the_deployment_in_the_path(monkeypatch):
    from gateway_app.providers.azure import AzureOpenAIProvider
    from tests.fakes.azure_server import FakeAzureOpenAI

    server = FakeAzureOpenAI()
    with ServerThread(server.app) as thread:
        monkeypatch.setenv("AZURE_OPENAI_API_KEY", "az-test")
        monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", thread.url)
        azure = AzureOpenAIProvider(timeout=5)
        heard = await azure.transcribe(REQUEST, make_wav(1.0, "hallo"), "wav", "my-whisper", 5)
        spoken = await azure.speak(REQUEST, "hallo", "my-tts", "alloy", "wav", 5)
        await azure.aclose()
    assert heard.text == "hallo" and spoken.audio[:4] == b"RIFF"
    assert server.deployments == ["my-whisper", "my-tts"]
