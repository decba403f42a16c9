import pytest

from gateway_app.contract.decode import InputLimits, Rejection, decode_message, decode_profile, decode_profile_deleted
from gateway_app.contract.events import ErrorCode

LIMITS = InputLimits(max_content_chars=100, max_metadata_bytes=50)


def test_accepts_camel_and_snake_case_and_ignores_unknown_fields(raw_factory, raw_message_factory):
    camel = decode_message(raw_message_factory(x=1), LIMITS)
    snake = decode_message(raw_factory({"message_id": "m", "agent_id": "a", "room_id": "r", "content": "hi"}), LIMITS)
    assert camel == snake
    assert camel.model_dump()["message_id"] == "m"


@pytest.mark.parametrize(
    "value, code",
    [
        (b"\xff\xfe", ErrorCode.UNDECODABLE),
        (b"{not json", ErrorCode.INVALID_JSON),
        (b"[1,2]", ErrorCode.INVALID_EVENT),
        (None, ErrorCode.INVALID_EVENT),
    ],
)
def test_unreadable_records_are_rejected_with_their_code(value, code):
    result = decode_message(value, LIMITS)
    assert isinstance(result, Rejection)
    assert result.code == code and result.reason


@pytest.mark.parametrize(
    "change, code",
    [
        ({"drop": ["messageId"]}, ErrorCode.INVALID_EVENT),
        ({"messageId": 5}, ErrorCode.INVALID_EVENT),
        ({"content": "   "}, ErrorCode.INVALID_EVENT),
        ({"content": "x" * 101}, ErrorCode.CONTENT_TOO_LONG),
        ({"content": "x", "metadata": {"k": "v" * 60}}, ErrorCode.METADATA_TOO_LARGE),
    ],
)
def test_rejections_are_named(raw_message_factory, change, code):
    result = decode_message(raw_message_factory(**change), LIMITS)
    assert isinstance(result, Rejection)
    assert result.code == code and result.reason


def test_rejection_keeps_routing_fields_for_an_error_reply(raw_message_factory):
    result = decode_message(raw_message_factory(drop=["agentId"], roomId="room-1", content=""), LIMITS)
    assert isinstance(result, Rejection)
    assert result.field("room_id") == "room-1" and result.field("message_id") == "m"
    assert result.field("agent_id") is None


def test_profile_with_unknown_provider_is_rejected(raw_profile_factory):
    result = decode_profile(raw_profile_factory(provider="nope"), lambda name: name == "echo")
    assert isinstance(result, Rejection) and result.code == ErrorCode.UNKNOWN_PROVIDER
    ok = decode_profile(raw_profile_factory(rateLimits={"rpm": 5}), lambda n: n == "echo")
    assert ok.rate_limits.rpm == 5 and ok.rate_limits.tpm is None and ok.enabled is True


def test_profile_deleted_needs_a_version(raw_factory):
    assert isinstance(decode_profile_deleted(raw_factory({"agentId": "a"})), Rejection)
    assert decode_profile_deleted(raw_factory({"agentId": "a", "version": 3})).version == 3


def test_deeply_nested_json_is_rejected_not_raised():
    for raw in (b"[" * 100_000, b'{"a":' * 100_000):
        result = decode_message(raw, InputLimits(1000, 1000))
        assert isinstance(result, Rejection) and result.code == "invalid_json"


def test_every_topic_has_an_example_valid_against_its_model():
    from gateway_app.contract.events import INPUT_EVENTS, OUTPUT_EVENTS
    from gateway_app.contract.examples import EXAMPLES

    topics = {**INPUT_EVENTS, **OUTPUT_EVENTS}
    assert set(EXAMPLES) == set(topics)
    for topic, model in topics.items():
        model.model_validate(EXAMPLES[topic])  # raises if the example drifted from the contract
