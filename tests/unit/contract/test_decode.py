import json

import pytest

from gateway_app.contract.decode import InputLimits, Rejection, decode_message, decode_profile, decode_profile_deleted
from gateway_app.contract.events import ErrorCode

LIMITS = InputLimits(max_content_chars=100, max_metadata_bytes=50)


def raw(data) -> bytes:
    return json.dumps(data).encode()


def test_accepts_camel_and_snake_case_and_ignores_unknown_fields():
    camel = decode_message(raw({"messageId": "m", "agentId": "a", "roomId": "r", "content": "hi", "x": 1}), LIMITS)
    snake = decode_message(raw({"message_id": "m", "agent_id": "a", "room_id": "r", "content": "hi"}), LIMITS)
    assert camel == snake
    assert camel.model_dump()["message_id"] == "m"


@pytest.mark.parametrize(
    "value, code",
    [
        (b"\xff\xfe", ErrorCode.UNDECODABLE),
        (b"{not json", ErrorCode.INVALID_JSON),
        (b"[1,2]", ErrorCode.INVALID_EVENT),
        (None, ErrorCode.INVALID_EVENT),
        (raw({"agentId": "a", "roomId": "r", "content": "hi"}), ErrorCode.INVALID_EVENT),
        (raw({"messageId": 5, "agentId": "a", "roomId": "r", "content": "hi"}), ErrorCode.INVALID_EVENT),
        (raw({"messageId": "m", "agentId": "a", "roomId": "r", "content": "   "}), ErrorCode.INVALID_EVENT),
        (raw({"messageId": "m", "agentId": "a", "roomId": "r", "content": "x" * 101}), ErrorCode.CONTENT_TOO_LONG),
        (raw({"messageId": "m", "agentId": "a", "roomId": "r", "content": "x", "metadata": {"k": "v" * 60}}),
         ErrorCode.METADATA_TOO_LARGE),
    ],
)
def test_rejections_are_named(value, code):
    result = decode_message(value, LIMITS)
    assert isinstance(result, Rejection)
    assert result.code == code and result.reason


def test_rejection_keeps_routing_fields_for_an_error_reply():
    result = decode_message(raw({"messageId": "m", "roomId": "room-1", "content": ""}), LIMITS)
    assert isinstance(result, Rejection)
    assert result.field("room_id") == "room-1" and result.field("message_id") == "m"
    assert result.field("agent_id") is None


def test_profile_with_unknown_provider_is_rejected():
    profile = {"agentId": "a", "version": 1, "provider": "nope", "model": "m"}
    result = decode_profile(raw(profile), lambda name: name == "echo")
    assert isinstance(result, Rejection) and result.code == ErrorCode.UNKNOWN_PROVIDER
    ok = decode_profile(raw({**profile, "provider": "echo", "rateLimits": {"rpm": 5}}), lambda n: n == "echo")
    assert ok.rate_limits.rpm == 5 and ok.rate_limits.tpm is None and ok.enabled is True


def test_profile_deleted_needs_a_version():
    assert isinstance(decode_profile_deleted(raw({"agentId": "a"})), Rejection)
    assert decode_profile_deleted(raw({"agentId": "a", "version": 3})).version == 3


def test_deeply_nested_json_is_rejected_not_raised():
    from gateway_app.contract.decode import InputLimits, Rejection, decode_message

    for raw in (b"[" * 100_000, b'{"a":' * 100_000):
        result = decode_message(raw, InputLimits(1000, 1000))
        assert isinstance(result, Rejection) and result.code == "invalid_json"
