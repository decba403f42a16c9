"""A profile's `options.base_url` cannot make the gateway call internal addresses, through a real broker:
every forbidden spelling gets an error reply `provider_not_configured` and a DLQ record after zero
attempts (refused before any client or connection), the fake local server on loopback sees none of them,
and the environment's key goes only to the environment's server."""

from __future__ import annotations

import uuid

import pytest
from aiohttp import web

from tests.fakes.openai_server import FakeOpenAI, ServerThread
from tests.integration.harness import Chat, message, profile

ENV_KEY = "env-secret-key-do-not-leak"


class RecordingFake(FakeOpenAI):
    """The fake local server, recording every request it gets (any path) with its Authorization."""

    def __init__(self) -> None:
        super().__init__("local")
        self.hits: list[tuple[str, str, str | None]] = []  # (method, path, Authorization)
        self.app.middlewares.append(self.record)

    @web.middleware
    async def record(self, request: web.Request, handler):
        self.hits.append((request.method, request.path, request.headers.get("Authorization")))
        return await handler(request)


@pytest.fixture
def fake():
    server = RecordingFake()
    with ServerThread(server.app) as thread:
        yield server, thread


def forbidden_urls(port: int) -> list[str]:
    # Loopback spellings point at the fake's own port: were one not refused, the fake would see it.
    loopback = [f"http://127.1:{port}/v1", f"http://0x7f000001:{port}/v1", f"http://2130706433:{port}/v1",
                f"http://0177.0.0.1:{port}/v1", f"http://[::ffff:127.0.0.1]:{port}/v1",
                f"http://[::ffff:7f00:1]:{port}/v1", f"http://[::1]:{port}/v1", f"http://0:{port}/v1",
                f"http://0.0.0.0:{port}/v1", f"http://localhost:{port}/v1", f"http://127.0.0.1:{port + 1}/v1"]
    # Never contacted in any case: the check refuses before any connection (asserted: 0 attempts).
    elsewhere = ["http://169.254.169.254/v1", "http://2852039166/v1", "http://0251.0376.0251.0376/v1",
                 "http://0xa9fea9fe/v1", "http://[::ffff:169.254.169.254]/v1", "http://[fd00:ec2::254]/v1",
                 "http://10.0.0.1/v1", "http://192.168.1.1/v1", "http://172.16.0.1/v1",
                 "http://100.64.0.1/v1", "http://168.63.129.16/v1", "http://[64:ff9b::a9fe:a9fe]/v1",
                 "http://[fe80::1]/v1", "http://224.0.0.1/v1", "http://255.255.255.255/v1",
                 "https://metadata.google.internal/computeMetadata/v1", "gopher://127.0.0.1:6379/_",
                 "http://user:pw@127.0.0.1/v1", "http://allowed@169.254.169.254/v1"]
    return loopback + elsewhere


def local_agent(agent_id: str, base_url: str | None) -> dict:
    options = {"base_url": base_url} if base_url is not None else {}
    return profile(agent_id, provider="local", model="llama-3.1-8b", options=options)


async def test_profile_base_urls_cannot_reach_internal_addresses(cluster_factory, fake):
    server, thread = fake
    port = thread.port
    cluster = cluster_factory(
        LOCAL_LLM_BASE_URL=f"{thread.url}/v1", LOCAL_LLM_API_KEY=ENV_KEY,
        LOCAL_LLM_ALLOWED_HOSTS=f"gpu-box.internal, 127.0.0.1:{port}",
        GATEWAY_RETRY_MAX_ATTEMPTS="3", GATEWAY_RETRY_BASE_DELAY_SECONDS="0.05")
    cluster.worker().wait_ready()
    run = uuid.uuid4().hex[:6]
    async with Chat(cluster.deployment) as chat:
        probes = []  # (url, message)
        for index, url in enumerate(forbidden_urls(port)):
            agent_id = f"ssrf-{run}-{index}"
            await chat.profile(local_agent(agent_id, url))
            probes.append((url, message(agent_id, content=f"ssrf probe {index}")))
        # Controls: the environment's server (with the environment's key) and an allow-listed profile URL
        # (with the placeholder key, never the environment's).
        env_agent, allowed_agent = f"ssrf-{run}-env", f"ssrf-{run}-allowed"
        await chat.profile(local_agent(env_agent, None))
        await chat.profile(local_agent(allowed_agent, f"http://127.0.0.1:{port}/v1"))
        controls = [message(env_agent, content="control via env"),
                    message(allowed_agent, content="control via allowed profile url")]
        for msg in [m for _, m in probes] + controls:
            await chat.message(msg)
        replies = await chat.wait_replies([m["messageId"] for _, m in probes] + [m["messageId"] for m in controls],
                                          timeout=25)

        for url, msg in probes:
            [reply] = replies[msg["messageId"]]
            assert reply["status"] == "error" and reply["error"]["code"] == "provider_not_configured", (url, reply)
            assert reply["attempts"] == 0, (url, reply)  # refused before any call: no connection at all
            assert "options.base_url" in reply["error"]["message"], (url, reply)
            assert ENV_KEY not in str(reply)
        for msg in controls:
            [reply] = replies[msg["messageId"]]
            assert reply["status"] == "ok" and reply["content"] == f"fake-openai says: {msg['content']}", reply

        await chat.wait_for(lambda: all(chat.dlq_of(m["messageId"]) for _, m in probes), timeout=15,
                            what="DLQ records of the refused messages")
        for url, msg in probes:
            dead = chat.dlq_of(msg["messageId"])[0]
            assert dead["error_code"] == "provider_not_configured" and dead["attempts"] == 0, (url, dead)
            assert ENV_KEY not in str(dead)

    # The fake on loopback saw exactly the two controls, each with its key; no probe reached it.
    assert server.count("ssrf probe") == 0
    auth = sorted(a for _, _, a in server.hits)
    assert len(server.hits) == 2 and auth == sorted([f"Bearer {ENV_KEY}", "Bearer not-needed"]), server.hits
    assert server.count("control via env") == 1 and server.count("control via allowed profile url") == 1
