"""One error root: every way a message ends without an ok answer carries code, reason, reply status."""

from gateway_app.contract.decode import Rejection
from gateway_app.contract.events import ErrorCode, ReplyStatus
from gateway_app.errors import Blocked, GatewayError, Rejected, StageFailed
from gateway_app.pipeline.caller import CallFailed, CallLog
from gateway_app.providers import errors as provider_errors
from gateway_app.providers.base import ProviderNotConfigured


def test_every_failure_kind_shares_the_root_and_says_its_reply_status():
    cases = [
        (Rejection(ErrorCode.INVALID_JSON, "not JSON", {}), ErrorCode.INVALID_JSON, ReplyStatus.ERROR, True),
        (Rejected(ReplyStatus.AGENT_UNAVAILABLE, ErrorCode.AGENT_DISABLED, "agent is disabled"),
         ErrorCode.AGENT_DISABLED, ReplyStatus.AGENT_UNAVAILABLE, True),
        (provider_errors.from_status(503, "down"), ErrorCode.PROVIDER_UNAVAILABLE, ReplyStatus.ERROR, True),
        (ProviderNotConfigured("OPENAI_API_KEY is not set"), ErrorCode.PROVIDER_NOT_CONFIGURED, ReplyStatus.ERROR, True),
        (CallFailed(ErrorCode.CIRCUIT_OPEN, "open", CallLog(0.0)), ErrorCode.CIRCUIT_OPEN, ReplyStatus.ERROR, True),
        (StageFailed("redact", "raised ValueError: x"), ErrorCode.STAGE_FAILED, ReplyStatus.ERROR, True),
        (Blocked("guard", "off topic"), ErrorCode.BLOCKED_BY_STAGE, ReplyStatus.BLOCKED, False),
    ]
    for error, code, reply_status, dead_letter in cases:
        assert isinstance(error, GatewayError)
        assert (error.code, error.reply_status, error.dead_letter) == (code, reply_status, dead_letter)
        assert error.reason and str(error) == error.reason


def test_stage_errors_name_their_stage():
    assert StageFailed("redact", "no verdict within its time limit of 1.0s").reason == \
        "stage 'redact' failed: no verdict within its time limit of 1.0s"
    assert Blocked("guard", "off topic").reason == "blocked by stage 'guard': off topic"


def test_a_provider_error_keeps_its_http_status_apart_from_the_reply_status():
    error = provider_errors.from_status(429, "slow down", {"retry-after": "2"})
    assert error.status == 429 and error.reply_status == ReplyStatus.ERROR and error.retry_after == 2.0
