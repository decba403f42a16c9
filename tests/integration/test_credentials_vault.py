"""A `vault:` credential reference through Kafka: a worker configured with `VAULT_ADDR`/`VAULT_TOKEN`
of a real OpenBao dev server answers with the key stored there (not the environment's key), and a
reference to a field that is not there fails closed."""

from __future__ import annotations

import asyncio

import pytest

from tests.fakes.base import ServerThread
from tests.fakes.openbao import OpenBaoDevServer
from tests.integration.harness import Chat
from tests.integration.test_credentials import KeyedOpenAI, agent_profile, ask

ENV_KEY = "sk-env-not-this"
VAULT_KEY = "sk-proj-FromOpenBaoA1b2C3d4E5f6G7h8"


@pytest.fixture
def bao():
    with OpenBaoDevServer() as server:
        yield server


async def test_a_vault_reference_answers_with_the_stored_key(cluster_factory, bao):
    bao.put("agents/a1", api_key=VAULT_KEY)
    server = KeyedOpenAI()
    server.valid = {VAULT_KEY}
    with ServerThread(server.app) as thread:
        cluster = cluster_factory(VAULT_ADDR=bao.addr, VAULT_TOKEN=bao.token, OPENAI_API_KEY=ENV_KEY,
                                  OPENAI_BASE_URL=thread.url + "/v1")
        await asyncio.to_thread(cluster.worker().wait_ready)
        async with Chat(cluster.deployment) as chat:
            await chat.profile(agent_profile("a1", keyRef="vault:secret/agents/a1#api_key"))
            await chat.profile(agent_profile("a2", keyRef="vault:secret/agents/a1#no_such_field"))
            reply = await ask(chat, "a1")
            assert reply["status"] == "ok" and reply["content"].startswith("fake-openai says:"), reply
            assert VAULT_KEY in server.keys_seen

            reply = await ask(chat, "a2")
            assert reply["status"] == "error" and reply["error"]["code"] == "credentials_unavailable", reply
            assert VAULT_KEY not in str(reply)
        assert ENV_KEY not in server.keys_seen
