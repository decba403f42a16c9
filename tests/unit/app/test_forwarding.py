"""What the intake refuses before forwarding: keys sent by value, malformed credential references."""

import json

from gateway_app.contract.events import AgentProfile, ErrorCode
from gateway_app.forwarding import bad_credential_refs, plaintext_leak

KEY = "sk-proj-Zq8vX2mN4pL7rT1wY5bC9dF3gH6jK0"


def test_a_key_by_value_in_a_profile_is_refused_and_redacted():
    profile = {"agentId": "a", "version": 1, "provider": "openai", "model": "m",
               "fallbacks": [{"provider": "openai", "model": "n", "options": {"api_key": KEY}}]}
    redacted, rejection = plaintext_leak("profile", json.dumps(profile).encode())
    assert rejection.code == ErrorCode.PLAINTEXT_SECRET and KEY not in rejection.reason
    assert KEY.encode() not in redacted and b"[redacted plaintext secret fp=" in redacted
    assert "$.fallbacks[0].options.api_key" in rejection.reason
    assert KEY not in json.dumps(rejection.fields)


def test_a_key_inside_a_message_is_refused_but_ordinary_text_is_not():
    message = {"messageId": "m", "agentId": "a", "roomId": "r", "content": f"here: {KEY} thanks"}
    redacted, rejection = plaintext_leak("message", json.dumps(message).encode())
    assert KEY.encode() not in redacted and b"here: [redacted plaintext secret" in redacted
    assert rejection.field("room_id") == "r"  # the room is still told
    ordinary = {"messageId": "m", "agentId": "a", "roomId": "r", "content": "my keyboard token count is 5"}
    assert plaintext_leak("message", json.dumps(ordinary).encode()) is None
    assert plaintext_leak("message", b"not json sk-") is None  # the decoder rejects it with its own reason


def test_credential_references_are_checked_for_shape():
    def profile(**credentials):
        return AgentProfile.model_validate({"agentId": "a", "version": 1, "provider": "openai", "model": "m",
                                            "credentials": credentials})

    assert bad_credential_refs(profile(keyRef="env:OPENAI_KEY_A")) is None
    assert bad_credential_refs(profile(keyRef="vault:secret/agents/a#key", secondaryKeyRef="file:/run/k")) is None
    refused = bad_credential_refs(profile(keyRef="env:OK", secondaryKeyRef="ftp://x"))
    assert refused.code == ErrorCode.INVALID_CREDENTIALS_REF and "secondary_key_ref" in refused.reason
