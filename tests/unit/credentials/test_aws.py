"""`aws-sm:` references and KMS-wrapped keyrings against moto's server, started in this process."""

from __future__ import annotations

import base64
import json
import os
import socket

import boto3
import pytest
from moto.server import ThreadedMotoServer

from gateway_app.credentials.aws import (
    KeyringUnavailable,
    SecretsManagerResolver,
    generate_wrapped_key,
    sm_resolver_from_environment,
    unwrap_entries,
)
from gateway_app.credentials.errors import CredentialsUnavailable
from gateway_app.credentials.keyring import Keyring, load_keyring
from gateway_app.credentials.refs import parse_ref
from gateway_app.credentials.resolver import CredentialResolver, NotConfigured
from gateway_app.settings import Settings

KEY = "sk-aws-secret-key-0123456789"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def moto_url():
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws(moto_url, monkeypatch: pytest.MonkeyPatch):
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL_KMS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    return moto_url


@pytest.fixture
def sm(aws):
    return boto3.client("secretsmanager")


@pytest.fixture
def kms_key(aws) -> str:
    return boto3.client("kms").create_key(Description="gateway keyring")["KeyMetadata"]["KeyId"]


def unique(name: str) -> str:
    return f"{name}-{os.urandom(4).hex()}"


async def resolve(ref: str) -> str:
    return (await SecretsManagerResolver()(parse_ref(ref), "a1", "openai")).reveal()


async def test_a_secret_by_id_whole_string(sm) -> None:
    name = unique("gateway/plain")
    sm.create_secret(Name=name, SecretString=KEY)
    assert await resolve(f"aws-sm:{name}") == KEY


async def test_a_secret_by_arn_and_field(sm) -> None:
    name = unique("gateway/json")
    arn = sm.create_secret(Name=name, SecretString=json.dumps({"api_key": KEY, "other": "x"}))["ARN"]
    assert await resolve(f"aws-sm:{name}#api_key") == KEY
    assert await resolve(f"aws-sm:{arn}#api_key") == KEY


async def test_a_binary_secret_is_utf8_text(sm) -> None:
    name = unique("gateway/binary")
    sm.create_secret(Name=name, SecretBinary=KEY.encode())
    assert await resolve(f"aws-sm:{name}") == KEY


async def test_a_missing_secret_names_the_reference_and_the_aws_code(sm) -> None:
    ref = "aws-sm:gateway/not-there"
    with pytest.raises(CredentialsUnavailable) as info:
        await resolve(ref)
    assert ref in info.value.reason and "ResourceNotFoundException" in info.value.reason


async def test_a_missing_field_or_non_json_secret_fails_without_the_value(sm) -> None:
    name = unique("gateway/fields")
    sm.create_secret(Name=name, SecretString=json.dumps({"api_key": KEY}))
    with pytest.raises(CredentialsUnavailable) as info:
        await resolve(f"aws-sm:{name}#nope")
    assert "no field 'nope'" in info.value.reason and KEY not in info.value.reason
    plain = unique("gateway/plain")
    sm.create_secret(Name=plain, SecretString=KEY)
    with pytest.raises(CredentialsUnavailable) as info:
        await resolve(f"aws-sm:{plain}#api_key")
    assert "not a JSON object" in info.value.reason and KEY not in info.value.reason


async def test_no_credentials_or_no_endpoint_is_credentials_unavailable(aws, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(CredentialsUnavailable) as info:
        await resolve("aws-sm:gateway/anything")
    assert "aws-sm:gateway/anything" in info.value.reason and "Error" in info.value.reason


async def test_one_client_is_built_lazily_and_reused(sm) -> None:
    name = unique("gateway/reuse")
    sm.create_secret(Name=name, SecretString=KEY)
    built = []

    def factory():
        built.append(1)
        return boto3.client("secretsmanager")

    resolver = SecretsManagerResolver(factory)
    assert built == []
    for _ in range(3):
        assert (await resolver(parse_ref(f"aws-sm:{name}"), "a", "p")).reveal() == KEY
    assert built == [1]


async def test_from_settings_registers_aws_sm_only_with_a_region(sm, monkeypatch, tmp_path) -> None:
    name = unique("gateway/settings")
    sm.create_secret(Name=name, SecretString=json.dumps({"api_key": KEY}))
    resolver = CredentialResolver.from_settings(Settings())
    assert (await resolver.resolve(f"aws-sm:{name}#api_key", agent_id="a", provider="openai")).reveal() == KEY
    assert sm_resolver_from_environment({}) is None
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))  # no profile region either
    resolver = CredentialResolver.from_settings(Settings())
    assert isinstance(resolver._resolvers["aws-sm"], NotConfigured)
    with pytest.raises(CredentialsUnavailable, match="aws-sm store is not configured"):
        await resolver.resolve(f"aws-sm:{name}#api_key", agent_id="a", provider="openai")


def test_kms_wrap_unwrap_round_trip(kms_key) -> None:
    entry = generate_wrapped_key("k2026", f"aws-kms:{kms_key}")
    kid, _, blob = entry.partition(":")
    assert kid == "k2026" and len(base64.b64decode(blob)) > 32  # a KMS ciphertext, not the key
    [(unwrapped_kid, key)] = unwrap_entries([(kid, blob)], f"aws-kms:{kms_key}")
    assert unwrapped_kid == "k2026" and len(key) == 32


async def test_a_wrapped_keyring_decrypts_an_enc_reference(kms_key, monkeypatch) -> None:
    setting = f"aws-kms:{kms_key}"
    text = ",".join([generate_wrapped_key("k2", setting), generate_wrapped_key("k1", setting)])
    ring = Keyring.load(text, setting)
    assert ring is not None and ring.key_ids == ("k2", "k1")
    ref = ring.encrypt("a7", "openai", KEY)
    monkeypatch.setenv("GATEWAY_KEYRING", text)
    monkeypatch.setenv("GATEWAY_KMS_KEY", setting)
    settings = Settings()
    assert load_keyring(settings).key_ids == ("k2", "k1")
    resolver = CredentialResolver.from_settings(settings)
    assert (await resolver.resolve(ref, agent_id="a7", provider="openai")).reveal() == KEY


def test_a_wrong_encryption_context_does_not_unwrap(kms_key) -> None:
    setting = f"aws-kms:{kms_key}"
    _, _, blob = generate_wrapped_key("k1", setting).partition(":")
    good = generate_wrapped_key("k2", setting)
    # The same ciphertext relabelled with another key id: the context no longer matches.
    with pytest.raises(KeyringUnavailable) as info:
        Keyring.load(f"{good},k9:{blob}", setting)
    assert "'k9'" in info.value.args[0] and "InvalidCiphertextException" in info.value.args[0]


def test_a_keyring_that_does_not_unwrap_fails_at_start(kms_key, monkeypatch) -> None:
    other = boto3.client("kms").create_key()["KeyMetadata"]["KeyId"]
    entry = generate_wrapped_key("k1", f"aws-kms:{other}")
    monkeypatch.setenv("GATEWAY_KEYRING", entry)
    monkeypatch.setenv("GATEWAY_KMS_KEY", f"aws-kms:{kms_key}")  # wrapped under another KMS key
    with pytest.raises(ValueError, match="could not be unwrapped"):
        CredentialResolver.from_settings(Settings())
    # An unwrapped (plain) keyring with a KMS key set is not silently used as is either.
    monkeypatch.setenv("GATEWAY_KEYRING", "k1:" + base64.b64encode(b"\0" * 32).decode())
    with pytest.raises(KeyringUnavailable):
        CredentialResolver.from_settings(Settings())


def test_kms_key_setting_must_name_aws_kms() -> None:
    with pytest.raises(ValueError, match="aws-kms:"):
        generate_wrapped_key("k1", "arn-without-prefix")
