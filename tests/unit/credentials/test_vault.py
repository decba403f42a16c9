"""`vault:` references against a real OpenBao dev server (KV v2 at `secret/`): a field, a missing path,
a missing field, a wrong token, an unreachable store, rotation after the cache time, and registration
from the environment."""

from __future__ import annotations

import pytest

from gateway_app.credentials.errors import CredentialsUnavailable
from gateway_app.credentials.resolver import CredentialResolver, NotConfigured
from gateway_app.credentials.vault import VaultResolver
from gateway_app.settings import Settings
from tests.fakes.openbao import OpenBaoDevServer, free_port

KEY = "sk-proj-VaultKeyA1b2C3d4E5f6G7h8J9k0"
ROTATED = "sk-proj-VaultKeyRotatedZ9y8X7w6V5u4"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def bao():
    with OpenBaoDevServer() as server:
        server.put("agents/a1", api_key=KEY, other="not-this")
        yield server


def resolver_for(bao: OpenBaoDevServer, token: str | None = None, **kwargs) -> CredentialResolver:
    resolver = CredentialResolver(**kwargs)
    vault = VaultResolver.from_environ({"VAULT_ADDR": bao.addr, "VAULT_TOKEN": token or bao.token})
    assert vault is not None
    resolver.register("vault", vault)
    return resolver


async def test_reads_the_named_field(bao) -> None:
    secret = await resolver_for(bao).resolve("vault:secret/agents/a1#api_key", agent_id="a1", provider="openai")
    assert secret.reveal() == KEY


@pytest.mark.parametrize(
    ("ref", "kind"),
    [
        ("vault:secret/agents/nobody#api_key", "secret not found"),
        ("vault:secret/agents/a1#missing", "secret has no field 'missing'"),
        ("vault:nomount/agents/a1#api_key", "(forbidden|not found)"),
    ],
)
async def test_missing_path_or_field(bao, ref: str, kind: str) -> None:
    with pytest.raises(CredentialsUnavailable, match=kind) as info:
        await resolver_for(bao).resolve(ref, agent_id="a1", provider="openai")
    assert ref in str(info.value) and KEY not in str(info.value)


async def test_wrong_token_is_forbidden(bao) -> None:
    with pytest.raises(CredentialsUnavailable, match="forbidden") as info:
        await resolver_for(bao, token="not-the-token").resolve(
            "vault:secret/agents/a1#api_key", agent_id="a1", provider="openai")
    assert "vault:secret/agents/a1#api_key" in str(info.value) and KEY not in str(info.value)
    assert "not-the-token" not in str(info.value)


async def test_unreachable_store() -> None:
    resolver = CredentialResolver()
    resolver.register("vault", VaultResolver.from_environ({"VAULT_ADDR": f"http://127.0.0.1:{free_port()}",
                                                           "VAULT_TOKEN": "t"}))
    with pytest.raises(CredentialsUnavailable, match="unreachable"):
        await resolver.resolve("vault:secret/agents/a1#api_key", agent_id="a1", provider="openai")


async def test_a_rotated_key_is_picked_up_after_the_cache_time(bao) -> None:
    bao.put("agents/rotating", api_key=KEY)
    clock = FakeClock()
    resolver = resolver_for(bao, cache_seconds=30, clock=clock)
    ref = "vault:secret/agents/rotating#api_key"
    assert (await resolver.resolve(ref, agent_id="r", provider="openai")).reveal() == KEY
    bao.put("agents/rotating", api_key=ROTATED)  # a new version of the secret
    clock.now += 29
    assert (await resolver.resolve(ref, agent_id="r", provider="openai")).reveal() == KEY  # still cached
    clock.now += 2
    assert (await resolver.resolve(ref, agent_id="r", provider="openai")).reveal() == ROTATED


async def test_a_deleted_newest_version_is_not_found(bao) -> None:
    bao.put("agents/deleted", api_key=KEY)
    bao.client().secrets.kv.v2.delete_latest_version_of_secret(path="agents/deleted")
    with pytest.raises(CredentialsUnavailable, match="not found"):
        await resolver_for(bao).resolve("vault:secret/agents/deleted#api_key", agent_id="d", provider="openai")


async def test_one_client_is_reused(bao) -> None:
    vault = VaultResolver.from_environ({"VAULT_ADDR": bao.addr, "VAULT_TOKEN": bao.token})
    client = vault._client
    resolver = CredentialResolver(cache_seconds=0)
    resolver.register("vault", vault)
    for _ in range(3):
        await resolver.resolve("vault:secret/agents/a1#api_key", agent_id="a1", provider="openai")
    assert vault._client is client


def test_not_registered_without_vault_addr() -> None:
    assert VaultResolver.from_environ({"VAULT_TOKEN": "t"}) is None
    assert VaultResolver.from_environ({"VAULT_ADDR": "", "VAULT_TOKEN": "t"}) is None


async def test_from_settings_registers_the_store_only_with_vault_addr(bao, monkeypatch) -> None:
    monkeypatch.delenv("VAULT_ADDR", raising=False)
    resolver = CredentialResolver.from_settings(Settings())
    assert isinstance(resolver._resolvers["vault"], NotConfigured)
    with pytest.raises(CredentialsUnavailable, match="vault store is not configured"):
        await resolver.resolve("vault:secret/agents/a1#api_key", agent_id="a1", provider="openai")

    monkeypatch.setenv("VAULT_ADDR", bao.addr)
    monkeypatch.setenv("VAULT_TOKEN", bao.token)
    resolver = CredentialResolver.from_settings(Settings())
    assert isinstance(resolver._resolvers["vault"], VaultResolver)
    secret = await resolver.resolve("vault:secret/agents/a1#api_key", agent_id="a1", provider="openai")
    assert secret.reveal() == KEY
