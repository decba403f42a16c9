"""Per-agent credentials through Kafka: each reference kind answers through a provider fake that accepts
only the agent's own key; a blob copied to another agent, a removed key-encryption key and a missing
variable fail closed; a key rotated in its file and a provider key rotated with overlap are used
without a restart; a key sent by value is dead-lettered without the key."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time

import pytest
from aiohttp import web

from gateway_app.credentials.keyring import Keyring, generate_key
from tests.fakes.base import ServerThread
from tests.fakes.openai_server import FakeOpenAI
from tests.integration.harness import Chat, message, profile, wait_until

ENV_KEY = "sk-environment-default-0000"  # the worker's own OPENAI_API_KEY: no agent here may use it
OLD_KEK, NEW_KEK = generate_key("k2025"), generate_key("k2026")


class KeyedOpenAI(FakeOpenAI):
    """Answers only bearer keys in `valid`; remembers every key it was shown."""

    def __init__(self) -> None:
        super().__init__()
        self.valid: set[str] = set()
        self.keys_seen: list[str] = []

    def authorized(self, request: web.Request) -> bool:
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        self.keys_seen.append(key)
        return key in self.valid


@pytest.fixture
def fake():
    server = KeyedOpenAI()
    with ServerThread(server.app) as thread:
        yield server, thread


def agent_profile(agent_id: str, version: int = 1, **credentials) -> dict:
    return profile(agent_id, version, provider="openai", model="gpt-4o-mini", credentials=credentials)


async def ask(chat: Chat, agent_id: str, timeout: float = 60) -> dict:
    msg = message(agent_id, content=f"hello from {agent_id} {time.monotonic()}")
    await chat.message(msg)
    return (await chat.wait_replies([msg["messageId"]], timeout=timeout))[msg["messageId"]][0]


async def test_every_local_reference_kind_and_every_rotation(cluster_factory, fake, tmp_path):
    server, thread = fake
    key_file = tmp_path / "agent-key"
    key_file.write_text("sk-file-key-1111\n")
    old_ring = Keyring.parse(OLD_KEK)
    enc_ref = old_ring.encrypt("enc-agent", "openai", "sk-enc-key-2222")
    cluster = cluster_factory(OPENAI_API_KEY=ENV_KEY, OPENAI_BASE_URL=thread.url + "/v1",
                              AGENT_KEY_ENV="sk-env-key-3333", AGENT_KEY_ENV_OLD="sk-old-revoked-5555",
                              GATEWAY_KEYRING=f"{NEW_KEK},{OLD_KEK}",
                              GATEWAY_SECRET_CACHE_SECONDS="1")
    worker = cluster.worker()
    await asyncio.to_thread(worker.wait_ready)
    server.valid |= {"sk-file-key-1111", "sk-enc-key-2222", "sk-env-key-3333", "sk-new-provider-key"}
    async with Chat(cluster.deployment) as chat:
        profiles = [
            agent_profile("env-agent", keyRef="env:AGENT_KEY_ENV"),
            agent_profile("file-agent", keyRef=f"file:{key_file}"),
            agent_profile("enc-agent", keyRef=enc_ref),  # encrypted under the older key: all keys decrypt
            agent_profile("copied-blob", keyRef=enc_ref),  # the same blob in another agent's profile
            agent_profile("gone-kek", keyRef=Keyring.parse(generate_key("k1999")).encrypt("gone-kek", "openai", "x")),
            agent_profile("no-variable", keyRef="env:NOT_SET_ANYWHERE"),
            agent_profile("rotating", keyRef="env:AGENT_KEY_ENV_OLD", secondaryKeyRef="env:AGENT_KEY_ENV",
                          secondaryUntil="2099-01-01T00:00:00Z"),
        ]
        for p in profiles:
            await chat.profile(p)
        for agent_id in ("env-agent", "file-agent", "enc-agent"):
            reply = await ask(chat, agent_id)
            assert reply["status"] == "ok" and reply["content"].startswith("fake-openai says:"), reply
        assert {"sk-env-key-3333", "sk-file-key-1111", "sk-enc-key-2222"} <= set(server.keys_seen)

        for agent_id in ("copied-blob", "gone-kek", "no-variable"):
            reply = await ask(chat, agent_id)
            assert reply["status"] == "error" and reply["error"]["code"] == "credentials_unavailable", reply
            await wait_until(lambda: chat.dlq_of(reply["message_id"]), 30, f"the DLQ record of {agent_id}")
            assert chat.dlq_of(reply["message_id"])[0]["error_code"] == "credentials_unavailable"
        assert ENV_KEY not in server.keys_seen  # never a silent fall back to the environment's key

        # A provider key rotated with overlap: the old key is refused (401), the secondary answers.
        reply = await ask(chat, "rotating")
        assert reply["status"] == "ok" and reply["attempts"] == 2, reply

        # A key rotated in its store (the file) is used after the cache time, without a restart.
        key_file.write_text("sk-file-key-4444\n")
        server.valid = (server.valid - {"sk-file-key-1111"}) | {"sk-file-key-4444"}
        await asyncio.sleep(1.2)  # the cache time (1 s) must pass: what is tested, not a wait for a result
        reply = await ask(chat, "file-agent")
        assert reply["status"] == "ok" and "sk-file-key-4444" in server.keys_seen, reply

        # Keyring rotation: `gateway keys rotate` re-encrypts the stored reference under the newest key and
        # publishes it as the next profile version; no message fails on the way, no worker restarts.
        rotate = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "gateway_app.cli", "keys", "rotate"],
                                         env={**os.environ, **cluster.deployment.environment(),
                                              "GATEWAY_KEYRING": f"{NEW_KEK},{OLD_KEK}"},
                                         capture_output=True, text=True, timeout=60)
        assert "enc-agent: version 2 under key k2026" in rotate.stdout, rotate
        # The two broken references (a copied blob, a removed key) are left as they are, and said so.
        assert rotate.returncode == 1 and "1 of 7 stored profiles got a new version, 2 could not be rotated" \
            in rotate.stdout, rotate.stdout
        await wait_until(lambda: worker.get("/agents/enc-agent")[1].get("version") == 2, 30, "version 2")
        assert worker.get("/agents/enc-agent")[1]["credentials"]["key_ref"].startswith("enc:v1:k2026:")
        assert (await ask(chat, "enc-agent"))["status"] == "ok"


async def test_a_key_sent_by_value_is_dead_lettered_without_the_key(cluster_factory, fake):
    server, thread = fake
    cluster = cluster_factory(OPENAI_API_KEY=ENV_KEY, OPENAI_BASE_URL=thread.url + "/v1")
    await asyncio.to_thread(cluster.worker().wait_ready)
    leaked = "sk-proj-CanaryDoNotLeak9f8e7d6c5b4a"
    async with Chat(cluster.deployment) as chat:
        bad = agent_profile("leaky", keyRef="env:X") | {"apiKey": leaked}
        await chat.profile(bad)
        msg = message("leaky", content=f"please use {leaked} for me")
        await chat.message(msg)
        await wait_until(lambda: len(chat.seen["dlq"]) >= 2, 60, "two DLQ records")
        for _, record in chat.seen["dlq"]:
            assert record["error_code"] == "plaintext_secret"
            original = base64.b64decode(record["value_b64"])
            assert leaked.encode() not in original and b"[redacted plaintext secret fp=" in original
            assert leaked not in json.dumps(record)
        reply = (await chat.wait_replies([msg["messageId"]]))[msg["messageId"]][0]
        assert reply["error"]["code"] == "plaintext_secret" and leaked not in json.dumps(reply)
