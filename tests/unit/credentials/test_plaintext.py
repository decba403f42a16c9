"""The plaintext-key finder on realistic events: what it flags, and what it must leave alone."""

from __future__ import annotations

import copy

import pytest

from gateway_app.credentials.refs import (
    find_plaintext_secrets,
    find_plaintext_secrets_in_message,
    looks_like_plaintext_key,
    redact_plaintext,
    secret_field_name,
)
from gateway_app.credentials.secret import fingerprint

OPENAI = "sk-proj-Zx81mQp0aLw2Rt5vYb7nKc3dFg9hJ4f3a9"
ANTHROPIC = "sk-ant-api03-Qw8vT2nL5kR9mXc4bZ7yH1jD6fG3sA0pE"
LEGACY = "sk-4fJ9kL2mN8pQ1rS6tU3vW7xY0zA5bC"
AWS = "AKIAIOSFODNN7EXAMPLE"
RANDOM_HEX = "9f86d081884c7d659a2feaa0c55ad015"
ENC = "enc:v1:k1:" + "A" * 60


@pytest.mark.parametrize("value", [OPENAI, ANTHROPIC, LEGACY, AWS, f"Bearer {RANDOM_HEX}", f"key is {OPENAI}"])
def test_recognisable_keys(value: str) -> None:
    assert looks_like_plaintext_key(value)


@pytest.mark.parametrize(
    "value",
    ["env:OPENAI_API_KEY", "file:/run/secrets/openai", ENC, "sk-", "sk-short", "task-oriented assistant",
     "AKIA", "Bearer", "Bearer token", "hello world", RANDOM_HEX],
)
def test_not_keys(value: str) -> None:
    assert not looks_like_plaintext_key(value)


@pytest.mark.parametrize("name", ["api_key", "apiKey", "API_KEY", "openai_api_key", "secret", "clientSecret",
                                  "token", "accessToken", "password", "Authorization", "x-api-key", "credentials"])
def test_secret_field_names(name: str) -> None:
    assert secret_field_name(name)


@pytest.mark.parametrize("name", ["max_tokens", "maxTokens", "keyword", "monkey", "system_prompt", "content",
                                  "model", "base_url", "author", "tokenizer"])
def test_ordinary_field_names(name: str) -> None:
    assert not secret_field_name(name)


def clean_profile() -> dict:
    return {
        "agentId": "agent-7", "version": 3, "name": "Support bot", "provider": "openai", "model": "gpt-4o-mini",
        "systemPrompt": "You are a friendly support agent. Never ask users for passwords or API keys.",
        "temperature": 0.3, "maxTokens": 800, "rateLimits": {"rpm": 60, "tpm": 40000},
        "options": {"base_url": "https://api.openai.com/v1", "seed": 42},
        "credentials": {"keyRef": "aws-sm:prod/agents/agent-7#openai", "secondaryKeyRef": ENC},
        "stop": ["\n\nUser:"],
        "tools": [{"type": "function", "function": {
            "name": "reset_token", "description": "Reset the user's session token",
            "parameters": {"type": "object", "properties": {
                "token": {"type": "string", "pattern": "^[A-Za-z0-9]{32}$", "description": "the session token"},
                "user_id": {"type": "string"}}}}}],
        "fallbacks": [{"provider": "anthropic", "model": "claude-3-5-haiku",
                       "credentials": {"key_ref": "env:ANTHROPIC_KEY_AGENT_7"}}],
        "stages": [{"name": "pii", "options": {"mode": "mask"}}],
    }


def test_clean_profile_has_no_findings() -> None:
    assert find_plaintext_secrets(clean_profile()) == []
    assert redact_plaintext(clean_profile()) == clean_profile()


def test_profile_with_keys_by_value() -> None:
    profile = clean_profile()
    profile["credentials"]["keyRef"] = OPENAI
    profile["options"]["apiKey"] = "Zq8XwV3t7LmN2pR5sY9bC4dF"  # high entropy under a key-like name
    profile["options"]["headers"] = {"Authorization": f"Bearer {RANDOM_HEX}"}
    profile["fallbacks"][0]["credentials"]["key_ref"] = ANTHROPIC
    profile["fallbacks"][0]["options"] = {"aws": {"access_key_id": AWS, "region": "eu-west-1"}}
    profile["stages"][0]["options"]["client_secret"] = RANDOM_HEX
    found = find_plaintext_secrets(profile)
    assert sorted(found) == sorted([
        ("$.credentials.keyRef", fingerprint(OPENAI)),
        ("$.options.apiKey", fingerprint("Zq8XwV3t7LmN2pR5sY9bC4dF")),
        ("$.options.headers.Authorization", fingerprint(f"Bearer {RANDOM_HEX}")),
        ("$.fallbacks[0].credentials.key_ref", fingerprint(ANTHROPIC)),
        ("$.fallbacks[0].options.aws.access_key_id", fingerprint(AWS)),
        ("$.stages[0].options.client_secret", fingerprint(RANDOM_HEX)),
    ])


def test_a_key_pasted_into_a_system_prompt_is_flagged() -> None:
    profile = clean_profile()
    profile["systemPrompt"] = f"Use the key {LEGACY} when calling the tool."
    assert find_plaintext_secrets(profile) == [("$.systemPrompt", fingerprint(profile["systemPrompt"]))]


def test_short_or_low_entropy_values_under_key_names_are_not_flagged() -> None:
    data = {"api_key": "changeme", "token_type": "bearer", "password": "aaaaaaaaaaaaaaaaaaaa",
            "secret_name": "a long sentence describing the secret"}
    assert find_plaintext_secrets(data) == []


def test_high_entropy_outside_key_names_is_not_flagged() -> None:
    assert find_plaintext_secrets({"request_id": RANDOM_HEX, "trace": "00-4bf92f3577b34da6-01"}) == []


def test_odd_keys_get_bracketed_paths() -> None:
    assert find_plaintext_secrets({"my key": [OPENAI]}) == [("$['my key'][0]", fingerprint(OPENAI))]


def message(content: str, metadata: dict | None) -> dict:
    return {"messageId": "m1", "agentId": "agent-7", "roomId": "r1", "content": content, "metadata": metadata}


def test_message_content_may_mention_keys_only_metadata_is_scanned() -> None:
    content = f"My OpenAI call fails with my key {OPENAI}, and what does sk-ant-... mean?"
    assert find_plaintext_secrets_in_message(message(content, {"client": "web", "locale": "en"})) == []
    assert find_plaintext_secrets_in_message(message(content, None)) == []
    flagged = message("hi", {"client": "web", "upstream": {"apiKey": OPENAI}})
    assert find_plaintext_secrets_in_message(flagged) == [("$.metadata.upstream.apiKey", fingerprint(OPENAI))]


def test_redact_replaces_flagged_values_and_leaves_the_input_alone() -> None:
    profile = clean_profile()
    profile["credentials"]["keyRef"] = OPENAI
    profile["stop"] = [AWS, "\n\nUser:"]
    before = copy.deepcopy(profile)
    redacted = redact_plaintext(profile)
    assert profile == before
    assert redacted["credentials"]["keyRef"] == f"[redacted plaintext secret fp={fingerprint(OPENAI)}]"
    assert redacted["stop"] == [f"[redacted plaintext secret fp={fingerprint(AWS)}]", "\n\nUser:"]
    assert redacted["credentials"]["secondaryKeyRef"] == ENC
    assert find_plaintext_secrets(redacted) == []
    assert OPENAI not in repr(redacted) and AWS not in repr(redacted)
