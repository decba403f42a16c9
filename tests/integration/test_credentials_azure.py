"""`azure-kv:` references through Kafka: a worker configured for a fake Key Vault (TLS, the authentication
challenge, a static token) resolves the agent's key from the vault and the provider sees exactly that key,
never the worker's own `OPENAI_API_KEY`; a secret missing from the vault fails closed."""

from __future__ import annotations

import asyncio

import pytest

from tests.fakes.azure_keyvault import RunningKeyVault
from tests.fakes.base import ServerThread
from tests.integration.harness import Chat
from tests.integration.test_credentials import KeyedOpenAI, agent_profile, ask

ENV_KEY = "sk-env-not-this"
VAULT_KEY = "sk-from-azure-key-vault-7777"


@pytest.fixture
def keyed_openai():
    server = KeyedOpenAI()
    with ServerThread(server.app) as thread:
        yield server, thread


@pytest.fixture
def key_vault(tmp_path):
    with RunningKeyVault(tmp_path) as running:
        yield running


async def test_azure_kv_reference_answers_with_the_vault_key(cluster_factory, keyed_openai, key_vault):
    server, thread = keyed_openai
    key_vault.vault.set_secret("myvault", "openai-key", VAULT_KEY)
    server.valid = {VAULT_KEY}
    cluster = cluster_factory(OPENAI_API_KEY=ENV_KEY, OPENAI_BASE_URL=thread.url + "/v1", **key_vault.env())
    await asyncio.to_thread(cluster.worker().wait_ready)
    async with Chat(cluster.deployment) as chat:
        await chat.profile(agent_profile("kv-agent", keyRef="azure-kv:myvault/openai-key"))
        await chat.profile(agent_profile("kv-missing", keyRef="azure-kv:myvault/not-there"))
        reply = await ask(chat, "kv-agent", timeout=30)
        assert reply["status"] == "ok" and reply["content"].startswith("fake-openai says:"), reply
        assert VAULT_KEY in server.keys_seen and ENV_KEY not in server.keys_seen
        assert key_vault.vault.served("openai-key") >= 1

        reply = await ask(chat, "kv-missing", timeout=30)
        assert reply["status"] == "error" and reply["error"]["code"] == "credentials_unavailable", reply
        assert ENV_KEY not in server.keys_seen  # no fall back to the worker's own key
