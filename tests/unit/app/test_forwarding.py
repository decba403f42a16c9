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


def test_a_key_inside_a_tool_result_is_refused_and_redacted_there():
    event = {"messageId": "t1", "replyTo": "m1", "agentId": "a", "roomId": "r",
             "results": [{"toolCallId": "c1", "content": "fine"}, {"toolCallId": "c2", "content": f"env={KEY}"}]}
    redacted, rejection = plaintext_leak("tool_results", json.dumps(event).encode())
    assert "$.results[1].content" in rejection.reason and KEY.encode() not in redacted
    assert json.loads(redacted)["results"][0]["content"] == "fine"


def test_tool_results_and_clears_are_decoded_and_bounded():
    from gateway_app.contract.decode import InputLimits, Rejection, decode_conversation_cleared, decode_tool_results

    limits = InputLimits(max_content_chars=10, max_metadata_bytes=100)
    event = {"messageId": "t1", "replyTo": "m1", "agentId": "a", "roomId": "r",
             "results": [{"toolCallId": "c1", "content": "x" * 11}]}
    refused = decode_tool_results(json.dumps(event).encode(), limits)
    assert isinstance(refused, Rejection) and refused.code == ErrorCode.CONTENT_TOO_LONG
    empty = decode_tool_results(json.dumps({**event, "results": []}).encode(), limits)
    assert isinstance(empty, Rejection) and empty.code == ErrorCode.INVALID_EVENT
    clear = decode_conversation_cleared(b'{"agentId": "a", "roomId": "r", "before": "2026-11-30T10:00:00Z"}')
    assert clear.before.year == 2026 and clear.room_id == "r"


def test_a_profile_with_a_broken_or_remote_json_schema_is_refused():
    from gateway_app.contract.decode import Rejection, decode_profile

    def with_schema(schema) -> object:
        raw = json.dumps({"agentId": "a", "version": 1, "provider": "echo", "model": "m",
                          "responseFormat": {"type": "json", "schema": schema}}).encode()
        return decode_profile(raw, lambda name: True)

    assert not isinstance(with_schema({"type": "object", "required": ["a"]}), Rejection)
    assert isinstance(with_schema({"type": "nonsense"}), Rejection)
    remote = with_schema({"properties": {"a": {"$ref": "https://example.com/s.json"}}})
    assert isinstance(remote, Rejection) and "outside the schema" in remote.reason
