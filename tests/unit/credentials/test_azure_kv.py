"""`azure-kv:` store: the real `azure-keyvault-secrets` SDK against a fake Key Vault over TLS, with the
authentication challenge: latest and pinned versions, a missing secret, a refused token, configuration."""

from __future__ import annotations

import pytest

from gateway_app.credentials.azure_kv import AzureKeyVaultResolver, StaticTokenCredential, from_env
from gateway_app.credentials.errors import CredentialsUnavailable
from gateway_app.credentials.refs import parse_ref
from gateway_app.credentials.resolver import CredentialResolver, NotConfigured
from tests.fakes.azure_keyvault import RunningKeyVault

KEY_V1 = "sk-azure-kv-version-one-1111"
KEY_V2 = "sk-azure-kv-version-two-2222"


@pytest.fixture
def kv(tmp_path):
    with RunningKeyVault(tmp_path) as running:
        yield running


@pytest.fixture
async def store(kv):
    resolver = AzureKeyVaultResolver.from_env(kv.env())
    assert resolver is not None
    yield resolver
    await resolver.close()


async def test_latest_version_through_the_challenge(kv, store):
    kv.vault.set_secret("myvault", "openai-key", KEY_V1)
    kv.vault.set_secret("myvault", "openai-key", KEY_V2)
    secret = await store(parse_ref("azure-kv:myvault/openai-key"), "a1", "openai")
    assert secret.reveal() == KEY_V2
    first, *rest = kv.vault.requests
    assert not first["authorization"]  # the SDK's challenge discovery: unauthenticated first
    assert rest and rest[-1]["path"].startswith("/myvault/secrets/openai-key")
    assert rest[-1]["query"].get("api-version")
    assert kv.vault.tokens_seen == ["fake-kv-token"]


async def test_pinned_version(kv, store):
    v1 = kv.vault.set_secret("myvault", "openai-key", KEY_V1)
    kv.vault.set_secret("myvault", "openai-key", KEY_V2)
    secret = await store(parse_ref(f"azure-kv:myvault/openai-key/{v1}"), "a1", "openai")
    assert secret.reveal() == KEY_V1
    assert kv.vault.requests[-1]["path"] == f"/myvault/secrets/openai-key/{v1}"


async def test_vaults_are_separate(kv, store):
    kv.vault.set_secret("othervault", "openai-key", KEY_V1)
    with pytest.raises(CredentialsUnavailable, match="not found"):
        await store(parse_ref("azure-kv:myvault/openai-key"), "a1", "openai")
    assert (await store(parse_ref("azure-kv:othervault/openai-key"), "a1", "openai")).reveal() == KEY_V1


async def test_missing_secret_and_missing_version(kv, store):
    kv.vault.set_secret("myvault", "openai-key", KEY_V1)
    with pytest.raises(CredentialsUnavailable) as missing:
        await store(parse_ref("azure-kv:myvault/nope"), "a1", "openai")
    assert "'azure-kv:myvault/nope'" in missing.value.reason and "not found" in missing.value.reason
    with pytest.raises(CredentialsUnavailable, match="not found"):
        await store(parse_ref("azure-kv:myvault/openai-key/0123abc"), "a1", "openai")


async def test_a_token_the_vault_did_not_issue_is_refused(kv):
    kv.vault.set_secret("myvault", "openai-key", KEY_V1)
    store = AzureKeyVaultResolver.from_env(kv.env(token="not-the-vault-token"))
    try:
        with pytest.raises(CredentialsUnavailable) as refused:
            await store(parse_ref("azure-kv:myvault/openai-key"), "a1", "openai")
    finally:
        await store.close()
    reason = refused.value.reason
    assert "azure-kv:myvault/openai-key" in reason and "401" in reason and KEY_V1 not in reason
    assert "not-the-vault-token" in kv.vault.tokens_seen and not any(r.get("served") for r in kv.vault.requests)


async def test_untrusted_certificate_fails_closed(kv):
    kv.vault.set_secret("myvault", "openai-key", KEY_V1)
    store = AzureKeyVaultResolver(StaticTokenCredential(kv.vault.token), url_template=kv.url_template,
                                  verify_challenge_resource=False, client_options={"retry_total": 0})
    try:
        with pytest.raises(CredentialsUnavailable, match="unreachable"):
            await store(parse_ref("azure-kv:myvault/openai-key"), "a1", "openai")
    finally:
        await store.close()
    assert not kv.vault.requests  # the TLS handshake failed: nothing was sent


async def test_through_the_credential_resolver(kv, store):
    kv.vault.set_secret("myvault", "openai-key", KEY_V1)
    resolver = CredentialResolver()
    resolver.register("azure-kv", store)
    assert (await resolver.resolve("azure-kv:myvault/openai-key", agent_id="a", provider="openai")).reveal() == KEY_V1
    with pytest.raises(CredentialsUnavailable, match="not found"):
        await resolver.resolve("azure-kv:myvault/absent", agent_id="a", provider="openai")


def test_configuration_from_the_environment():
    assert isinstance(from_env({}), NotConfigured)
    configured = AzureKeyVaultResolver.from_env({"AZURE_KEYVAULT_URL_TEMPLATE": "https://{vault}.vault.azure.cn",
                                                 "AZURE_KEYVAULT_STATIC_TOKEN": "tok-9z"})
    assert configured is not None and configured.vault_url("myvault") == "https://myvault.vault.azure.cn"
    assert isinstance(configured._credential, StaticTokenCredential) and "tok-9z" not in repr(configured._credential)
    production = AzureKeyVaultResolver.from_env({"AZURE_TENANT_ID": "tenant", "AZURE_CLIENT_ID": "client"})
    assert production is not None and production.vault_url("myvault") == "https://myvault.vault.azure.net"
    assert type(production._credential).__name__ == "DefaultAzureCredential"
    assert production._verify_challenge_resource
    with pytest.raises(ValueError):
        AzureKeyVaultResolver(StaticTokenCredential("t"), url_template="https://fixed.example")
