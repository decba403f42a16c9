"""Voice through Kafka, one worker as a subprocess on `rocksdb://`, against the OpenAI fake's speech
endpoints (it "hears" the text the test writes into its generated WAV files' RIFF comment chunk): audio
messages (inline and by allow-listed URL) transcribed and answered, replies spoken inline or in
`ai-message-audio` chunks, each call billed in its own units; failures named, with a DLQ record where
the message failed, and a speech failure that still delivers the text."""

from __future__ import annotations

import base64
import io
import uuid
import wave
from decimal import Decimal

import pytest
from aiohttp import web

from tests.fakes.base import ServerThread
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.wav import make_wav
from tests.integration.harness import Chat, message, profile, profiles_applied

LONG = "Your parcel left the warehouse this morning and should reach you on Thursday; track it from the app."


@pytest.fixture
def openai_fake():
    server = FakeOpenAI()
    with ServerThread(server.app) as thread:
        yield server, thread


@pytest.fixture
def audio_host():
    """Where audio URLs point: a plain HTTP server on loopback (allow-listed by the test, host:port)."""
    app = web.Application()

    async def clip(request: web.Request) -> web.Response:
        return web.Response(body=make_wav(1.2, "read from a url"), content_type="audio/wav")

    app.router.add_get("/clip.wav", clip)
    with ServerThread(app) as thread:
        yield thread


def audio_message(agent: str, *, b64: bytes | None = None, url: str | None = None, fmt: str = "wav") -> dict:
    msg = {k: v for k, v in message(agent, room_id=f"r-{uuid.uuid4().hex[:6]}").items() if k != "content"}
    source = {"b64": base64.b64encode(b64).decode()} if b64 is not None else {"url": url}
    return {**msg, "audio": {**source, "format": fmt}}


def wav_seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as wav:
        return wav.getnframes() / wav.getframerate()


def by_units(bills: list[dict]) -> dict[str, dict]:
    return {bill["units"]: bill for bill in bills}


async def test_voice_in_and_out(cluster_factory, openai_fake, audio_host):
    server, thread = openai_fake
    cluster = cluster_factory(OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=thread.url + "/v1",
                              GATEWAY_AUDIO_URL_ALLOWLIST=f"127.0.0.1:{audio_host.port}",
                              GATEWAY_AUDIO_INLINE_MAX_BYTES="100000", GATEWAY_AUDIO_CHUNK_BYTES="32768",
                              GATEWAY_PRELOAD_PROVIDERS="openai")
    worker = cluster.worker()
    worker.wait_ready()
    agent = f"voice-{uuid.uuid4().hex[:6]}"
    spoken = audio_message(agent, b64=make_wav(1.5, "where is my order"))
    by_url = audio_message(agent, url=f"{audio_host.url}/clip.wav")
    refused = audio_message(agent, url=f"http://localhost:{audio_host.port}/clip.wav")
    deaf = audio_message(agent, b64=make_wav(0.5, "FAULT:500"))
    broken = audio_message(agent, b64=make_wav(0.5, "x"))
    broken["audio"]["b64"] = broken["audio"]["b64"][:-6] + "!!"
    long = message(agent, room_id="r-long", content=f"REPLY:{LONG}")
    mute = message(agent, room_id="r-mute", content="REPLY:Sorry, SPEECH-FAULT:503 the line is bad.")
    # One 503 each, then an answer: both calls are retried on the retry policy.
    hard = audio_message(agent, b64=make_wav(0.5, "FAULT:flaky:1:503 hard to hear"))
    again = message(agent, room_id="r-again", content="REPLY:Once more SPEECH-FAULT:flaky:1:503 now.")
    msgs = [spoken, by_url, refused, deaf, broken, long, mute, hard, again]
    async with Chat(cluster.deployment) as chat:
        await chat.profile(profile(agent, provider="openai", model="gpt-4o-mini", voice={"format": "wav"}))
        await chat.wait_for(profiles_applied(worker, {agent: 1}), 60, "the profile")
        for msg in msgs:
            await chat.message(msg)
        replies = await chat.wait_replies([m["messageId"] for m in msgs], timeout=60)
        await chat.wait_for(lambda: all(chat.dlq_of(m["messageId"]) for m in (refused, deaf, broken)), 30, "DLQ")
        reply = {m["messageId"]: replies[m["messageId"]][-1] for m in msgs}
        audio = [record for _, record in chat.seen["audio"]]
        bills = {m["messageId"]: chat.billing_of(m["messageId"]) for m in msgs}
        dlq = {m["messageId"]: chat.dlq_of(m["messageId"])[0]["error_code"] for m in (refused, deaf, broken)}

    # An inline audio message: transcribed, answered as text, the answer spoken inline.
    first = reply[spoken["messageId"]]
    assert first["status"] == "ok" and first["transcript"] == "where is my order", first
    assert first["content"] == "fake-openai says: where is my order"
    speech = base64.b64decode(first["audio_b64"])
    assert first["audio_format"] == "wav" and first["audio"] is None
    assert wav_seconds(speech) == pytest.approx(len(first["content"]) * 0.05)
    billed = by_units(bills[spoken["messageId"]])
    assert set(billed) == {"tokens", "seconds", "characters"}
    assert billed["seconds"]["quantity"] == 2 and billed["seconds"]["model"] == "whisper-1"  # 1.5 s, rounded up
    assert Decimal(billed["seconds"]["cost_usd"]) == Decimal("0.0002")
    assert billed["characters"]["quantity"] == len(first["content"]) and billed["characters"]["model"] == "tts-1"
    assert Decimal(billed["characters"]["cost_usd"]) == Decimal("0.000015") * len(first["content"])
    assert billed["seconds"]["price_version"] == "2026-12-01" and billed["seconds"]["input_tokens"] == 0
    assert billed["tokens"]["quantity"] is None and billed["tokens"]["input_tokens"] > 0

    # From an allow-listed URL; a URL elsewhere (even the same server under another name) is refused.
    assert reply[by_url["messageId"]]["transcript"] == "read from a url"
    assert reply[by_url["messageId"]]["content"] == "fake-openai says: read from a url"
    assert reply[refused["messageId"]]["error"]["code"] == "audio_url_not_allowed"
    assert "not in GATEWAY_AUDIO_URL_ALLOWLIST" in reply[refused["messageId"]]["error"]["message"]

    # A failed transcription and audio that is no base64: error replies and DLQ records, nothing billed.
    assert reply[deaf["messageId"]]["error"]["code"] == "transcription_failed"
    assert reply[broken["messageId"]]["error"]["code"] == "audio_invalid"
    assert dlq == {refused["messageId"]: "audio_url_not_allowed", deaf["messageId"]: "transcription_failed",
                   broken["messageId"]: "audio_invalid"}
    assert not bills[deaf["messageId"]] and not bills[refused["messageId"]]

    # A long spoken reply: in chunks on ai-message-audio (before the reply), which make the whole WAV.
    big = reply[long["messageId"]]
    assert big["content"] == LONG and big["audio_b64"] is None
    ref = big["audio"]
    chunks = sorted((c for c in audio if c["audio_id"] == ref["audio_id"]), key=lambda c: c["seq"])
    assert ref["topic"] == "ai-message-audio" and ref["chunks"] == len(chunks) > 1
    assert [c["seq"] for c in chunks] == list(range(len(chunks))) and [c["final"] for c in chunks][-1]
    assert all(c["reply_id"] == big["reply_id"] and c["room_id"] == "r-long" for c in chunks)
    whole = b"".join(base64.b64decode(c["data_b64"]) for c in chunks)
    assert len(whole) == ref["bytes"] and all(len(base64.b64decode(c["data_b64"])) == 32768 for c in chunks[:-1])
    assert wav_seconds(whole) == pytest.approx(len(LONG) * 0.05)

    # A speech failure never loses the text answer: ok, the text, a skipped note, no audio, no speech billed.
    quiet = reply[mute["messageId"]]
    assert quiet["status"] == "ok" and quiet["content"] == "Sorry, SPEECH-FAULT:503 the line is bad."
    assert quiet["audio_b64"] is None and quiet["audio"] is None
    assert {"stage": "speak", "action": "skipped", "reason": "speech failed (provider_unavailable)"} in quiet["stages"]
    assert set(by_units(bills[mute["messageId"]])) == {"tokens"}
    # A 503 from either endpoint is retried: one more call each, billed once.
    assert server.audio_seen["FAULT:flaky:1:503 hard to hear"] == 2
    assert reply[hard["messageId"]]["status"] == "ok"
    assert reply[hard["messageId"]]["transcript"] == "FAULT:flaky:1:503 hard to hear"
    assert by_units(bills[hard["messageId"]])["seconds"]["quantity"] == 1
    assert server.audio_seen["FAULT:flaky:1:503 now."] == 2
    assert reply[again["messageId"]]["audio_b64"] and not reply[again["messageId"]]["stages"]
    # What the fake's endpoints were asked: whisper with verbose_json, speech with the profile's voice.
    asked = server.audio_requests
    assert {(a["model"], a["response_format"]) for a in asked if a["endpoint"] == "transcriptions"} == \
        {("whisper-1", "verbose_json")}
    assert {(a["model"], a["voice"]) for a in asked if a["endpoint"] == "speech"} == {("tts-1", "alloy")}
