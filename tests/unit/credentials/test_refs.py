"""Parsing credential references; malformed ones are refused without repeating the value."""

from __future__ import annotations

import base64

import pytest

from gateway_app.credentials.refs import CredentialRef, describe_ref, parse_ref
from gateway_app.credentials.secret import fingerprint

BLOB = base64.urlsafe_b64encode(bytes(range(40))).rstrip(b"=").decode()


def test_env() -> None:
    ref = parse_ref("env:OPENAI_API_KEY_TEAM_A")
    assert ref == CredentialRef("env", "env:OPENAI_API_KEY_TEAM_A", name="OPENAI_API_KEY_TEAM_A")
    assert str(ref) == "env:OPENAI_API_KEY_TEAM_A"


def test_file() -> None:
    ref = parse_ref("file:/run/secrets/agent-7/openai")
    assert (ref.scheme, ref.path) == ("file", "/run/secrets/agent-7/openai")


@pytest.mark.parametrize(
    ("raw", "secret_id", "field"),
    [
        ("aws-sm:prod/agents/a7", "prod/agents/a7", None),
        ("aws-sm:prod/agents/a7#openai_key", "prod/agents/a7", "openai_key"),
        ("aws-sm:arn:aws:secretsmanager:eu-west-1:123456789012:secret:agents-a7-AbCdEf#key",
         "arn:aws:secretsmanager:eu-west-1:123456789012:secret:agents-a7-AbCdEf", "key"),
    ],
)
def test_aws_sm(raw: str, secret_id: str, field: str | None) -> None:
    ref = parse_ref(raw)
    assert (ref.scheme, ref.secret_id, ref.field) == ("aws-sm", secret_id, field)


def test_azure_kv() -> None:
    ref = parse_ref("azure-kv:chat-prod-kv/agent-a7-openai")
    assert (ref.scheme, ref.vault, ref.name, ref.version) == ("azure-kv", "chat-prod-kv", "agent-a7-openai", None)
    ref = parse_ref("azure-kv:chat-prod-kv/agent-a7-openai/0f1e2d3c4b5a69788796a5b4c3d2e1f0")
    assert ref.version == "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def test_vault() -> None:
    ref = parse_ref("vault:secret/agents/a7/providers#openai")
    assert (ref.scheme, ref.mount, ref.path, ref.field) == ("vault", "secret", "agents/a7/providers", "openai")


def test_enc() -> None:
    ref = parse_ref(f"enc:v1:k2024:{BLOB}")
    assert (ref.scheme, ref.version, ref.key_id, ref.payload) == ("enc", "v1", "k2024", bytes(range(40)))


def test_refs_are_frozen() -> None:
    ref = parse_ref("env:X")
    with pytest.raises(AttributeError):
        ref.name = "Y"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("OPENAI_API_KEY", "not a credential reference"),
        ("http://vault/x", "not a credential reference"),
        ("ENV:X", "not a credential reference"),
        (" env:X", "whitespace"),
        ("env:X\n", "whitespace"),
        ("env:", "nothing after the scheme"),
        ("env:1ABC", "variable name"),
        ("env:MY-KEY", "variable name"),
        ("file:relative/path", "absolute path"),
        ("file:/run/secrets/", "name a file"),
        ("aws-sm:#field", "secret name or ARN"),
        ("aws-sm:prod/a7#", "field"),
        ("aws-sm:has space", "secret name or ARN"),
        ("azure-kv:vault-only", "azure-kv:<vault>/<secret>"),
        ("azure-kv:a/b/c/d", "azure-kv:<vault>/<secret>"),
        ("azure-kv:x/secret", "vault name"),
        ("azure-kv:chat-kv/bad_name", "secret name"),
        ("azure-kv:chat-kv/name/ver-1", "version"),
        ("vault:secret/agents/a7", "field is required"),
        ("vault:secret#openai", "non-empty path"),
        ("vault:secret/a//b#f", "non-empty path"),
        ("vault:secret/../x#f", "non-empty path"),
        ("enc:v1:k1", "enc:v1:<key id>:<base64url>"),
        ("enc:v2:k1:" + BLOB, "unsupported version"),
        ("enc:v1::" + BLOB, "key id"),
        ("enc:v1:k1:not*base64", "not base64url"),
        ("enc:v1:k1:AAAA", "too short"),
        ("env:" + "A" * 3000, "longer than"),
    ],
)
def test_malformed_refs_are_refused(raw: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("*", r"\*").replace("[", r"\[")):
        parse_ref(raw)


def test_a_plaintext_key_is_refused_without_being_repeated() -> None:
    key = "sk-ant-api03-Qw8vT2nL5kR9mXc4bZ7yH1jD6fG3sA0pE"
    with pytest.raises(ValueError) as info:
        parse_ref(key)
    assert key not in str(info.value)
    assert "plaintext key" in str(info.value) and fingerprint(key) in str(info.value)


def test_describe_ref() -> None:
    assert describe_ref("env:X") == "env:X"
    assert describe_ref("sk-secret-value-xyz") == f"<not a reference, fp={fingerprint('sk-secret-value-xyz')}>"
