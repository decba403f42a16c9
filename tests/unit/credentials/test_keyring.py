"""The keyring: AES-256-GCM bound to agent and provider, failing closed, rotating."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from pydantic import SecretStr

from gateway_app.contract.events import ErrorCode, ReplyStatus
from gateway_app.credentials.errors import CredentialsUnavailable
from gateway_app.credentials.keyring import Keyring, generate_key
from gateway_app.credentials.refs import parse_ref
from gateway_app.errors import GatewayError

KEY = "sk-proj-Zx81mQp0aLw2Rt5vYb7nKc3dFg9hJ4f3a9"
OLD = generate_key("k2024")
NEW = generate_key("k2025")


def test_generate_key_is_a_keyring_entry() -> None:
    key_id, _, encoded = generate_key("kid-1").partition(":")
    assert key_id == "kid-1" and len(base64.b64decode(encoded)) == 32
    assert generate_key("kid-1") != generate_key("kid-1")
    assert Keyring.parse(generate_key()).primary.startswith("k")
    with pytest.raises(ValueError):
        generate_key("bad id")


def test_round_trip() -> None:
    ring = Keyring.parse(OLD)
    ref = ring.encrypt("agent-7", "openai", KEY)
    assert ref.startswith("enc:v1:k2024:") and KEY not in ref
    assert parse_ref(ref).scheme == "enc"
    assert ring.decrypt(ref, "agent-7", "openai").reveal() == KEY
    assert ring.encrypt("agent-7", "openai", KEY) != ref  # fresh nonce each time


@pytest.mark.parametrize(("agent", "provider"), [("agent-8", "openai"), ("agent-7", "anthropic"),
                                                 ("agent-7\x1fopenai", ""), ("", "agent-7\x1fopenai")])
def test_bound_to_agent_and_provider(agent: str, provider: str) -> None:
    ring = Keyring.parse(OLD)
    ref = ring.encrypt("agent-7", "openai", KEY)
    with pytest.raises(CredentialsUnavailable) as info:
        ring.decrypt(ref, agent, provider)
    assert KEY not in info.value.reason


def test_tampered_payload_fails_closed() -> None:
    ring = Keyring.parse(OLD)
    ref = ring.encrypt("agent-7", "openai", KEY)
    flipped = ref[:-2] + ("A" if ref[-2] != "A" else "B") + ref[-1]
    with pytest.raises(CredentialsUnavailable):
        ring.decrypt(flipped, "agent-7", "openai")


def test_missing_key_id_fails_closed_without_key_material() -> None:
    ref = Keyring.parse(OLD).encrypt("agent-7", "openai", KEY)
    other = Keyring.parse(NEW)
    with pytest.raises(CredentialsUnavailable, match="k2024") as info:
        other.decrypt(ref, "agent-7", "openai")
    error = info.value
    assert isinstance(error, GatewayError)
    assert error.code == ErrorCode.CREDENTIALS_UNAVAILABLE == "credentials_unavailable"
    assert error.reply_status is ReplyStatus.ERROR and error.dead_letter is True and error.retriable is False
    for secret in (KEY, OLD.partition(":")[2], NEW.partition(":")[2]):
        assert secret not in str(error)


def test_not_an_enc_reference_fails_closed() -> None:
    ring = Keyring.parse(OLD)
    with pytest.raises(CredentialsUnavailable):
        ring.decrypt("env:X", "a", "p")
    with pytest.raises(CredentialsUnavailable):
        ring.decrypt("enc:v1:k2024:!!", "a", "p")


def test_rotation_reencrypts_under_the_first_key_and_old_refs_still_decrypt() -> None:
    old_ref = Keyring.parse(OLD).encrypt("agent-7", "openai", KEY)
    ring = Keyring.parse(f"{NEW},{OLD}")
    assert ring.key_ids == ("k2025", "k2024") and ring.primary == "k2025"
    new_ref = ring.rotate(old_ref, "agent-7", "openai")
    assert new_ref.startswith("enc:v1:k2025:")
    assert ring.decrypt(new_ref, "agent-7", "openai").reveal() == KEY
    assert ring.decrypt(old_ref, "agent-7", "openai").reveal() == KEY
    # Once the old key is dropped, only the rotated reference works.
    dropped = Keyring.parse(NEW)
    assert dropped.decrypt(new_ref, "agent-7", "openai").reveal() == KEY
    with pytest.raises(CredentialsUnavailable):
        dropped.decrypt(old_ref, "agent-7", "openai")


def test_load_from_value_file_or_nothing(tmp_path: Path) -> None:
    assert Keyring.load(None) is None
    assert Keyring.load(SecretStr(f"{NEW},{OLD}")).key_ids == ("k2025", "k2024")
    path = tmp_path / "keyring"
    path.write_text(f"{NEW}\n{OLD}\n")
    assert Keyring.load(SecretStr(f"file:{path}")).key_ids == ("k2025", "k2024")
    with pytest.raises(ValueError, match="cannot be read"):
        Keyring.load(SecretStr(f"file:{tmp_path / 'missing'}"))


@pytest.mark.parametrize(
    ("text", "reason"),
    [("", "at least one key"), ("k1", "kid:<base64"), ("k1:not base64!", "base64"),
     ("k1:" + base64.b64encode(b"short").decode(), "32 bytes"), (f"{OLD},{OLD}", "twice"),
     ("bad id:" + OLD.partition(":")[2], "key id")],
)
def test_malformed_keyrings_are_refused(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as info:
        Keyring.parse(text)
    assert OLD.partition(":")[2] not in str(info.value)


def test_repr_shows_key_ids_only() -> None:
    assert repr(Keyring.parse(OLD)) == "Keyring(key_ids=['k2024'])"
