"""Audio URLs: allow-listed hosts only (the SSRF rules with the allow-list mandatory), refused before any
connection; a fetch is bounded in size and never follows a redirect."""

from __future__ import annotations

import pytest
from aiohttp import web

from gateway_app.contract.events import ErrorCode
from gateway_app.errors import GatewayError
from gateway_app.voice import fetch
from tests.fakes.base import ServerThread
from tests.fakes.wav import make_wav

AUDIO = make_wav(0.5, "hi")


@pytest.mark.parametrize("url, allowed, words", [
    ("https://cdn.example.com/a.wav", frozenset(), "GATEWAY_AUDIO_URL_ALLOWLIST is empty"),
    ("https://evil.example.com/a.wav", frozenset({"cdn.example.com"}), "is not in GATEWAY_AUDIO_URL_ALLOWLIST"),
    ("http://169.254.169.254/latest", frozenset({"cdn.example.com"}), "cloud metadata"),
    ("http://0x7f000001:8080/a.wav", frozenset({"cdn.example.com"}), "loopback"),
    ("http://user:pw@cdn.example.com/a.wav", frozenset({"cdn.example.com"}), "only a plain host"),
    ("file:///etc/passwd", frozenset({"cdn.example.com"}), "http(s) URL"),
])
def test_urls_off_the_allow_list_are_refused_naming_why(url, allowed, words):
    with pytest.raises(GatewayError) as refused:
        fetch.check_url(url, allowed)
    assert refused.value.code is ErrorCode.AUDIO_URL_NOT_ALLOWED and words in refused.value.reason
    assert "audio.url" in refused.value.reason or "ALLOWLIST" in refused.value.reason


@pytest.fixture
def server():
    app = web.Application()

    async def audio(request):
        return web.Response(body=AUDIO, content_type="audio/wav")

    async def moved(request):
        raise web.HTTPFound("http://169.254.169.254/")

    async def missing(request):
        return web.Response(status=404)

    app.router.add_get("/a.wav", audio)
    app.router.add_get("/moved.wav", moved)
    app.router.add_get("/missing.wav", missing)
    with ServerThread(app) as thread:
        yield thread


async def test_an_allow_listed_url_is_fetched(server):
    allowed = frozenset({f"127.0.0.1:{server.port}"})
    assert await fetch.fetch(f"{server.url}/a.wav?sig=secret", allowed, timeout=5, max_bytes=10**6) == AUDIO


@pytest.mark.parametrize("path, max_bytes, code, words", [
    ("/a.wav", 100, ErrorCode.AUDIO_TOO_LARGE, "the limit is 100"),
    ("/moved.wav", 10**6, ErrorCode.AUDIO_FETCH_FAILED, "redirects are not followed"),
    ("/missing.wav", 10**6, ErrorCode.AUDIO_FETCH_FAILED, "answered 404"),
])
async def test_fetch_failures_are_named_without_the_url_path(server, path, max_bytes, code, words):
    allowed = frozenset({"127.0.0.1"})
    with pytest.raises(GatewayError) as failed:
        await fetch.fetch(f"{server.url}{path}?sig=secret", allowed, timeout=5, max_bytes=max_bytes)
    assert failed.value.code is code and words in failed.value.reason
    assert "secret" not in failed.value.reason and path not in failed.value.reason


async def test_an_unreachable_host_is_a_fetch_failure():
    with pytest.raises(GatewayError) as failed:
        await fetch.fetch("http://127.0.0.1:9/a.wav", frozenset({"127.0.0.1"}), timeout=2, max_bytes=10**6)
    assert failed.value.code is ErrorCode.AUDIO_FETCH_FAILED


def test_the_allow_list_setting_is_comma_separated_and_lower_cased(monkeypatch):
    from gateway_app.settings import Settings

    monkeypatch.setenv("GATEWAY_AUDIO_URL_ALLOWLIST", "Media.Example.com, cdn.example.com:8443,")
    assert Settings().audio_hosts() == frozenset({"media.example.com", "cdn.example.com:8443"})
    monkeypatch.delenv("GATEWAY_AUDIO_URL_ALLOWLIST")
    assert Settings().audio_hosts() == frozenset()
