"""`gateway keys rotate`: which profiles get a new version, and what changes in them."""

from gateway_app.credentials.keyring import Keyring, generate_key
from gateway_app.credentials.rotation import latest_rows, rotate_profile

OLD, NEW = generate_key("kold"), generate_key("knew")


def row(agent_id: str, **credentials) -> dict:
    return {"agent_id": agent_id, "version": 3, "provider": "openai", "model": "m", "credentials": credentials or None,
            "fallbacks": []}


def test_old_references_are_re_encrypted_under_the_newest_key_as_the_next_version():
    old_ring, ring = Keyring.parse(OLD), Keyring.parse(f"{NEW},{OLD}")
    ref = old_ring.encrypt("a", "openai", "sk-the-key")
    fallback_ref = old_ring.encrypt("a", "anthropic", "sk-ant-other")
    stored = row("a", key_ref=ref)
    stored["fallbacks"] = [{"provider": "anthropic", "model": "c", "credentials": {"key_ref": fallback_ref}}]
    new = rotate_profile(stored, ring)
    assert new["version"] == 4 and new["credentials"]["key_ref"].startswith("enc:v1:knew:")
    assert ring.decrypt(new["credentials"]["key_ref"], "a", "openai").reveal() == "sk-the-key"
    assert ring.decrypt(new["fallbacks"][0]["credentials"]["key_ref"], "a", "anthropic").reveal() == "sk-ant-other"
    assert stored["version"] == 3  # the stored row is not changed in place


def test_nothing_to_rotate_gives_no_new_version():
    ring = Keyring.parse(f"{NEW},{OLD}")
    assert rotate_profile(row("a", key_ref="env:OPENAI_KEY_A"), ring) is None
    assert rotate_profile(row("a", key_ref=ring.encrypt("a", "openai", "k")), ring) is None
    assert rotate_profile(row("a"), ring) is None
    assert rotate_profile({"version": 4, "deleted": True}, ring) is None


def test_the_latest_row_of_each_agent_wins_and_a_deleted_key_goes():
    records = [(b'"a"', b'{"agent_id": "a", "version": 1}'), (b'"b"', b'{"agent_id": "b", "version": 1}'),
               (b'"a"', b'{"agent_id": "a", "version": 2}'), (b'"b"', None)]
    assert latest_rows(records) == {"a": {"agent_id": "a", "version": 2}}
