"""The example plugin package: the `parrot` provider against its fake server (in-process, and once as
the runnable module), its error mapping, and the `redact-emails` stage."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

import pytest
from gateway_plugin_example.fake_server import FakeParrot
from gateway_plugin_example.provider import ParrotProvider
from gateway_plugin_example.redact import RedactEmails

from devtools.kafka_local import free_port
from gateway_app.contract.events import AgentProfile, ErrorCode, MessageCreated
from gateway_app.plugins.api import Modify, Pass, StageInput
from gateway_app.plugins.discovery import check_stage
from gateway_app.providers.base import (
    ChatMessage,
    ChatRequest,
    ChatResult,
    ProviderError,
    ProviderNotConfigured,
    TextDelta,
    TokenUsage,
)
from tests.fakes.base import ServerThread

KEY = "parrot-test-key"


@pytest.fixture(scope="module")
def fake():
    server = FakeParrot(KEY)
    with ServerThread(server.app) as thread:
        yield server, thread.url


@pytest.fixture
async def parrot(fake):
    provider = ParrotProvider(timeout=2.0, environ={"PARROT_BASE_URL": fake[1] + "/", "PARROT_API_KEY": KEY})
    yield provider
    await provider.aclose()


def request(content: str, max_tokens: int = 64, history: tuple[ChatMessage, ...] = ()) -> ChatRequest:
    return ChatRequest(model="parrot-1", system_prompt="be brief", messages=(*history, ChatMessage("user", content)),
                       temperature=0.2, max_tokens=max_tokens)


async def streamed(provider: ParrotProvider, req: ChatRequest) -> tuple[list[str], ChatResult]:
    events = [event async for event in provider.stream(req)]
    *deltas, last = events
    assert all(isinstance(d, TextDelta) for d in deltas) and isinstance(last, ChatResult)
    return [d.text for d in deltas], last


async def failure(call) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await call()
    return caught.value


async def test_complete_sends_the_documented_request_and_maps_the_answer(parrot, fake):
    server, _ = fake
    history = (ChatMessage("user", "earlier question"), ChatMessage("assistant", "earlier answer"))
    result = await parrot.complete(request("write to bob@example.com please", history=history))
    assert result.text == "please bob@example.com to write"
    assert result.finish_reason == "stop" and result.request_id.startswith("parrot-") and result.tool_calls == ()
    # words_in: "be brief" (2) + history (2 + 2) + prompt (4); words_out: 4
    assert result.usage == TokenUsage(input_tokens=10, output_tokens=4)
    assert server.requests[-1] == {
        "model": "parrot-1", "system": "be brief", "prompt": "write to bob@example.com please",
        "history": [{"role": "user", "content": "earlier question"},
                    {"role": "assistant", "content": "earlier answer"}],
        "max_words": 64}


async def test_max_words_cuts_the_answer_with_finish_reason_length(parrot):
    result = await parrot.complete(request("one two three four five", max_tokens=2))
    assert result.text == "five four" and result.finish_reason == "length"
    assert result.usage == TokenUsage(input_tokens=7, output_tokens=2)


async def test_stream_yields_words_then_one_result_equal_to_the_plain_answer(parrot):
    deltas, result = await streamed(parrot, request("alpha beta gamma"))
    plain = await parrot.complete(request("alpha beta gamma"))
    assert deltas == ["gamma", " beta", " alpha"] and "".join(deltas) == result.text == plain.text
    assert result.usage == plain.usage and result.finish_reason == "stop" and result.request_id


async def test_a_wrong_key_is_provider_auth_failed_plain_and_streamed(fake):
    wrong = ParrotProvider(timeout=2.0, environ={"PARROT_BASE_URL": fake[1], "PARROT_API_KEY": "not-the-key"})
    try:
        for call in (lambda: wrong.complete(request("hi")), lambda: streamed(wrong, request("hi"))):
            error = await failure(call)
            assert error.code == ErrorCode.PROVIDER_AUTH_FAILED and error.status == 401 and not error.retriable
            assert "invalid API key" in str(error)
    finally:
        await wrong.aclose()


@pytest.mark.parametrize(("status", "code", "retriable", "retry_after"), [
    (429, ErrorCode.PROVIDER_RATE_LIMITED, True, 1.0),
    (503, ErrorCode.PROVIDER_UNAVAILABLE, True, 1.0),
    (500, ErrorCode.PROVIDER_UNAVAILABLE, True, None),
    (400, ErrorCode.PROVIDER_REJECTED, False, None),
    (403, ErrorCode.PROVIDER_AUTH_FAILED, False, None),
])
async def test_http_statuses_are_mapped_like_every_provider(parrot, status, code, retriable, retry_after):
    for call in (lambda: parrot.complete(request(f"PARROT:{status}")),
                 lambda: streamed(parrot, request(f"PARROT:{status}"))):
        error = await failure(call)
        assert (error.code, error.status, error.retriable, error.retry_after) == (code, status, retriable, retry_after)


async def test_a_body_that_is_not_the_documented_answer_is_a_bad_response(parrot):
    error = await failure(lambda: parrot.complete(request("PARROT:malformed")))
    assert error.code == ErrorCode.PROVIDER_BAD_RESPONSE and error.retriable


async def test_a_stream_without_its_end_line_is_interrupted(parrot):
    events = []
    with pytest.raises(ProviderError) as caught:
        async for event in parrot.stream(request("PARROT:truncate one two three")):
            events.append(event)
    assert caught.value.code == ErrorCode.PROVIDER_STREAM_INTERRUPTED and caught.value.retriable
    assert events and all(isinstance(e, TextDelta) for e in events)  # the first half came, no result


async def test_a_slow_answer_is_a_timeout(fake):
    slow = ParrotProvider(timeout=0.2, environ={"PARROT_BASE_URL": fake[1], "PARROT_API_KEY": KEY})
    try:
        for call in (lambda: slow.complete(request("PARROT:slow:2000")),
                     lambda: streamed(slow, request("PARROT:slow:2000"))):
            started = time.monotonic()
            error = await failure(call)
            assert error.code == ErrorCode.PROVIDER_TIMEOUT and error.retriable
            assert time.monotonic() - started < 1.5
    finally:
        await slow.aclose()


async def test_nothing_listening_is_provider_unavailable():
    down = ParrotProvider(timeout=2.0, environ={"PARROT_BASE_URL": f"http://127.0.0.1:{free_port()}",
                                                "PARROT_API_KEY": KEY})
    try:
        for call in (lambda: down.complete(request("hi")), lambda: streamed(down, request("hi"))):
            error = await failure(call)
            assert error.code == ErrorCode.PROVIDER_UNAVAILABLE and error.retriable
            assert str(error).startswith("connection failed: ConnectError")
    finally:
        await down.aclose()


@pytest.mark.parametrize(("environ", "missing"), [
    ({}, "PARROT_BASE_URL"),
    ({"PARROT_API_KEY": KEY}, "PARROT_BASE_URL"),
    ({"PARROT_BASE_URL": "http://127.0.0.1:9"}, "PARROT_API_KEY"),
    ({"PARROT_BASE_URL": "http://127.0.0.1:9", "PARROT_API_KEY": "  "}, "PARROT_API_KEY"),
])
async def test_a_missing_setting_is_provider_not_configured_at_call_time(environ, missing):
    provider = ParrotProvider(timeout=1.0, environ=environ)  # constructing never fails: the worker starts
    for call in (lambda: provider.complete(request("hi")), lambda: streamed(provider, request("hi"))):
        error = await failure(call)
        assert isinstance(error, ProviderNotConfigured) and error.code == ErrorCode.PROVIDER_NOT_CONFIGURED
        assert missing in str(error) and not error.retriable
    with pytest.raises(ProviderNotConfigured):
        provider.endpoint(request("hi"))
    await provider.aclose()


async def test_settings_are_read_from_the_environment_once_at_construction(monkeypatch, fake):
    monkeypatch.setenv("PARROT_BASE_URL", fake[1])
    monkeypatch.setenv("PARROT_API_KEY", KEY)
    provider = ParrotProvider(timeout=2.0)  # how the gateway builds it
    monkeypatch.delenv("PARROT_API_KEY")
    try:
        assert provider.endpoint(request("hi")) == fake[1]
        assert (await provider.complete(request("still configured"))).text == "configured still"
        assert KEY not in repr(provider)
    finally:
        await provider.aclose()
        await provider.aclose()  # closing twice is harmless


def test_the_fake_server_runs_as_a_module():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "gateway_plugin_example.fake_server", "--port", str(port),
                             "--api-key", "cli-key"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert "fake Parrot listening on" in proc.stdout.readline()
        body = json.dumps({"model": "parrot-1", "prompt": "a b", "max_words": 5}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/reply", data=body, method="POST",
                                     headers={"Authorization": "Bearer cli-key", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as response:
            answer = json.loads(response.read())
        assert answer["reply"] == "b a" and answer["stop"] == "end" and answer["words_out"] == 2
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --- redact-emails -------------------------------------------------------------------------------------


def stage_input(text: str, options: dict | None = None) -> StageInput:
    message = MessageCreated(message_id="m-1", agent_id="a-1", room_id="r-1", content="hi")
    profile = AgentProfile(agent_id="a-1", version=1, provider="parrot", model="parrot-1")
    return StageInput(message, profile, request("hi"), options or {},
                      result=ChatResult(text=text, finish_reason="stop", usage=TokenUsage(1, 1)))


def test_redact_emails_declares_a_valid_closed_post_call_stage():
    spec = check_stage("redact-emails", RedactEmails())
    assert (spec.position, spec.time_limit_seconds, spec.failure_mode) == ("post_call", 1.0, "closed")


async def test_redact_emails_modifies_only_when_it_found_an_address():
    stage = RedactEmails()
    verdict = await stage.run(stage_input("mail ann@example.com or bob.smith+x@mail.example.co.uk today"))
    assert verdict == Modify("mail [email redacted] or [email redacted] today", "2 e-mail addresses redacted")
    assert await stage.run(stage_input("no address @ here, a@b is not one either")) == Pass()
    custom = await stage.run(stage_input("ann@example.com", {"replacement": r"[\1 hidden]"}))
    assert custom == Modify(r"[\1 hidden]", "1 e-mail address redacted")  # taken literally


async def test_redact_emails_is_fast_on_a_long_answer_without_addresses():
    started = time.monotonic()
    assert await RedactEmails().run(stage_input("x" * 200_000 + "@")) == Pass()
    assert time.monotonic() - started < 0.5
    verdict = await RedactEmails().run(stage_input("word " * 10_000 + "end ann@example.com"))
    assert isinstance(verdict, Modify) and verdict.content.endswith("end [email redacted]")


@pytest.mark.parametrize(("options", "error"), [
    ({"replacement": 5}, "replacement must be text, not int"),
    ({"replacement": "x" * 101}, "replacement is longer than 100 characters"),
    ({"replacement": "eve@example.com"}, "replacement must not itself be an e-mail address"),
    ({"replace": "x"}, "unknown options: replace (known: replacement)"),
])
def test_redact_emails_refuses_bad_options(options, error):
    with pytest.raises(ValueError) as caught:
        RedactEmails().validate_options(options)
    assert str(caught.value) == error


def test_redact_emails_accepts_good_options():
    RedactEmails().validate_options({})
    RedactEmails().validate_options({"replacement": "[hidden]"})
    RedactEmails().validate_options({"replacement": ""})

