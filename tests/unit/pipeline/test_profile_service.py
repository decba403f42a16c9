"""The profile-service fetcher over real HTTP (a local aiohttp server in the test's loop): what it
publishes for each answer, its retries, timeout and breaker, the shared fetch, the bearer token, and
that the token never reaches a log line."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from types import SimpleNamespace

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway_app.contract.decode import no_stages_installed
from gateway_app.contract.internal import ProfileRecord, decode_agent_event
from gateway_app.credentials.resolver import CredentialResolver
from gateway_app.observability.metrics import GatewayMetrics
from gateway_app.pipeline import profile_service
from gateway_app.pipeline.profile_client import ProfileClient, Result
from gateway_app.providers.registry import is_known
from gateway_app.resilience.breaker import BreakerPolicy, CircuitBreaker
from gateway_app.resilience.retry import RetryPolicy
from gateway_app.settings import Settings

TOKEN = "ps-token-5f1d8a9c2e7b4d6a"  # what the `env:` reference names
FAST = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02, retry_after_cap=1.0)


def snake(agent_id: str = "a-1", version: int = 3, **extra) -> dict:
    return {"agent_id": agent_id, "version": version, "provider": "echo", "model": "echo-svc",
            "system_prompt": "be brief", **extra}


class Service:
    """Scripted answers per agent: (status, body, seconds to wait first), played in order, the last one
    repeated; every request's raw path and Authorization header is kept."""

    def __init__(self) -> None:
        self.script: dict[str, list[tuple[int, object, float]]] = {}
        self.seen: list[tuple[str, str | None]] = []
        self.app = web.Application()
        self.app.router.add_get("/agents/{agent_id:.+}", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.raw_path, request.headers.get("Authorization")))
        steps = self.script.get(request.match_info["agent_id"], [(404, {"error": "unknown"}, 0)])
        status, body, wait = steps.pop(0) if len(steps) > 1 else steps[0]
        await asyncio.sleep(wait)
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return web.Response(status=status, body=raw, content_type="application/json")


class Published:
    """The publisher's surface the fetcher uses, recording what was sent."""

    def __init__(self) -> None:
        self.metrics = GatewayMetrics()
        self.forwarded: list[tuple[str, bytes]] = []
        self.dead: list = []

    async def forward(self, agent_id: str, value: bytes, headers=None):
        self.forwarded.append((agent_id, value))
        return done()

    async def dead_letter(self, record, headers=None):
        self.dead.append(record)
        return done()


def done() -> asyncio.Future:
    future = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future


@pytest.fixture
async def service():
    fake = Service()
    async with TestServer(fake.app, host="127.0.0.1") as server:
        fake.url = str(server.make_url("")).rstrip("/")
        yield fake


@pytest.fixture
async def fetcher_factory(service):
    made: list = []

    def make(*, timeout: float = 1.0, breaker: BreakerPolicy = BreakerPolicy(), auth: bool = True, **kwargs):
        credentials = CredentialResolver(environ={"PS_TOKEN": TOKEN})
        client = ProfileClient(service.url, timeout, FAST, CircuitBreaker(breaker), credentials=credentials,
                               auth_ref="env:PS_TOKEN" if auth else None)
        published = Published()
        fetcher = profile_service.ProfileService(
            client, lambda agent_id, raw: profile_service.validate(agent_id, raw, is_known, no_stages_installed),
            published, published.metrics, {}, **kwargs)
        fetcher.published = published
        made.append(fetcher)
        return fetcher

    yield make
    for fetcher in made:
        await fetcher.aclose()


async def fetch(fetcher, agent_id: str = "a-1", wait: float = 5.0) -> Result:
    return await fetcher.request(agent_id, time.monotonic() + wait)


def fetched(fetcher) -> list[ProfileRecord]:
    return [decode_agent_event(value) for _, value in fetcher.published.forwarded]


def counted(fetcher, result: str) -> tuple[int, float | None]:
    sample = fetcher.published.metrics.registry.get_sample_value("gateway_profile_fetches_total", {"result": result})
    return fetcher.counters[f"profile_fetches_{result}"], sample


@pytest.mark.parametrize("body", [snake(), {"agentId": "a-1", "version": 3, "provider": "echo",
                                            "model": "echo-svc", "systemPrompt": "be brief"}],
                         ids=["snake_case", "camelCase"])
async def test_a_profile_is_published_as_the_intakes_profile_record(service, fetcher_factory, body):
    service.script["a-1"] = [(200, body, 0)]
    fetcher = fetcher_factory()
    assert await fetch(fetcher) is Result.OK
    [(key, _)] = fetcher.published.forwarded
    [record] = fetched(fetcher)
    assert key == "a-1" and isinstance(record, ProfileRecord)
    assert (record.payload.version, record.payload.model, record.payload.system_prompt) == (3, "echo-svc", "be brief")
    assert record.origin.topic == "profile-service" and json.loads(base64.b64decode(record.origin.value_b64)) == body
    assert counted(fetcher, "ok") == (1, 1.0) and not fetcher.published.dead


async def test_the_agent_id_is_url_quoted(service, fetcher_factory):
    await fetch(fetcher_factory(), "team a/b?x")
    assert service.seen[0][0] == "/agents/team%20a%2Fb%3Fx"


async def test_404_is_not_found_and_publishes_nothing(service, fetcher_factory):
    fetcher = fetcher_factory()
    assert await fetch(fetcher, "nobody") is Result.NOT_FOUND
    assert not fetcher.published.forwarded and not fetcher.published.dead
    assert counted(fetcher, "not_found") == (1, 1.0) and len(service.seen) == 1  # not retried


@pytest.mark.parametrize("body, code", [
    (b"{not json", "invalid_json"),
    ({"agentId": "a-1", "version": 1}, "invalid_event"),  # no provider, no model
    (snake(provider="nosuch"), "unknown_provider"),
    (snake(agent_id="someone-else"), "invalid_event"),
    (snake(credentials={"keyRef": "plain-text-key"}), "invalid_credentials_ref"),
    (snake(metadata={"api_key": "sk-live-0123456789abcdefghij"}), "plaintext_secret"),
])
async def test_an_invalid_body_is_dead_lettered_and_counted_like_unknown(service, fetcher_factory, body, code, caplog):
    service.script["a-1"] = [(200, body, 0)]
    fetcher = fetcher_factory()
    with caplog.at_level(logging.INFO, logger="gateway_app"):
        assert await fetch(fetcher) is Result.INVALID
    [dead] = fetcher.published.dead
    assert (dead.error_code, dead.agent_id, dead.source_topic) == (code, "a-1", "profile-service")
    assert not fetcher.published.forwarded and counted(fetcher, "invalid") == (1, 1.0)
    assert "profile.fetch_failed agent=a-1 reason=invalid" in caplog.text and code in caplog.text
    assert "sk-live-0123456789abcdefghij" not in base64.b64decode(dead.value_b64 or "").decode(errors="replace")


async def test_5xx_then_success_is_retried(service, fetcher_factory, caplog):
    service.script["a-1"] = [(503, {}, 0), (500, {}, 0), (200, snake(), 0)]
    fetcher = fetcher_factory()
    with caplog.at_level(logging.INFO, logger="gateway_app"):
        assert await fetch(fetcher) is Result.OK
    assert len(service.seen) == 3 and "profile.fetched agent=a-1 version=3 attempts=3" in caplog.text


async def test_429_is_retried_after_its_retry_after(service, fetcher_factory):
    service.script["a-1"] = [(429, {}, 0), (200, snake(), 0)]
    fetcher = fetcher_factory()
    assert await fetch(fetcher) is Result.OK and len(service.seen) == 2
    assert fetcher.client.breaker.streak == 0  # busy is not unhealthy


async def test_each_attempt_times_out_and_the_profile_wait_bounds_them_all(service, fetcher_factory):
    service.script["a-1"] = [(200, snake(), 3.0)]  # slower than the timeout, every time
    fetcher = fetcher_factory(timeout=0.2)
    started = time.monotonic()
    assert await fetch(fetcher, wait=2.0) is Result.ERROR
    assert len(service.seen) == FAST.max_attempts and time.monotonic() - started < 1.5
    assert counted(fetcher, "error") == (1, 1.0)
    service.seen.clear()
    started = time.monotonic()
    assert await fetch(fetcher, wait=0.15) is Result.ERROR  # a wait shorter than the timeout cuts it
    assert len(service.seen) == 1 and time.monotonic() - started < 1.0


async def test_the_breaker_opens_and_then_fails_fast(service, fetcher_factory):
    service.script["a-1"] = [(503, {}, 0)]
    fetcher = fetcher_factory(breaker=BreakerPolicy(consecutive_failures=2, open_seconds=60))
    assert await fetch(fetcher) is Result.BREAKER_OPEN  # opened by its own second failure
    assert len(service.seen) == 2
    assert await fetch(fetcher, "a-2") is Result.BREAKER_OPEN and len(service.seen) == 2  # no request at all
    assert counted(fetcher, "breaker_open") == (2, 2.0)


async def test_concurrent_requests_share_one_fetch_and_an_answer_stands_a_moment(service, fetcher_factory):
    service.script["a-1"] = [(404, {}, 0.2)]
    clock = SimpleNamespace(now=100.0)
    fetcher = fetcher_factory(clock=lambda: clock.now, remember_seconds=5)
    first, second = fetcher.request("a-1", time.monotonic() + 5), fetcher.request("a-1", time.monotonic() + 5)
    assert first is second and await first is Result.NOT_FOUND and len(service.seen) == 1
    assert fetcher.request("a-1", time.monotonic() + 5) is None  # answered moments ago
    clock.now += 6
    assert await fetcher.request("a-1", time.monotonic() + 5) is Result.NOT_FOUND and len(service.seen) == 2


async def test_errors_are_not_remembered(service, fetcher_factory):
    service.script["a-1"] = [(400, {}, 0)]
    fetcher = fetcher_factory()
    assert await fetch(fetcher) is Result.ERROR and len(service.seen) == 1  # a 4xx is not retried
    assert await fetch(fetcher) is Result.ERROR and len(service.seen) == 2


async def test_the_bearer_token_is_sent_and_never_logged(service, fetcher_factory, caplog):
    service.script["a-1"] = [(503, {}, 0), (200, snake(), 0)]
    service.script["a-2"] = [(401, {}, 0)]
    service.script["a-3"] = [(200, b"{broken", 0)]
    fetcher = fetcher_factory()
    with caplog.at_level(logging.DEBUG):
        for agent_id in ("a-1", "a-2", "a-3", "a-4"):
            await fetch(fetcher, agent_id)
    assert {auth for _, auth in service.seen} == {f"Bearer {TOKEN}"}
    assert "profile.fetch_failed agent=a-2 reason=error" in caplog.text
    assert TOKEN not in caplog.text and TOKEN not in repr(fetcher.published.dead)


async def test_without_auth_no_header_is_sent_and_a_missing_secret_fails_closed(service, fetcher_factory):
    await fetch(fetcher_factory(auth=False), "nobody")
    assert service.seen[-1][1] is None
    fetcher = fetcher_factory()
    fetcher.client.auth_ref = "env:NOT_SET_ANYWHERE"
    assert await fetch(fetcher, "nobody") is Result.ERROR and len(service.seen) == 1  # nothing sent without it


def test_settings_refuse_a_bad_url_and_a_token_by_value():
    make = lambda **env: profile_service.from_settings(Settings(**env), Published(), {}, None, is_known,
                                                       no_stages_installed)
    assert make() is None
    with pytest.raises(ValueError, match="http"):
        make(profile_service_url="ftp://profiles")
    with pytest.raises(ValueError, match="credential reference") as refused:
        make(profile_service_url="http://profiles", profile_service_auth=TOKEN)
    assert TOKEN not in str(refused.value)
    counters: dict = {}
    profile_service.from_settings(Settings(profile_service_url="http://profiles", profile_service_auth="env:X"),
                                  Published(), counters, None, is_known, no_stages_installed)
    assert counters == {f"profile_fetches_{r}": 0 for r in Result}  # on /health from the start
