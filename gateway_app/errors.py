"""The one error root: every way a message can end without an ok answer.

Input rejections (intake, `contract.decode.Rejection`), admission rejections (profile wait, disabled
agent, rate limits), provider errors (`providers.base.ProviderError`), failed calls
(`pipeline.caller.CallFailed`) and failed or blocking stages all carry a stable `code`, a human
`reason`, and the `reply_status` the room is told. The pipeline turns any of them into an error reply (and a DLQ record where
the record should be kept for replay) in one place.
"""

from __future__ import annotations

from gateway_app.contract.events import ErrorCode, ReplyStatus


class GatewayError(Exception):
    """A message that gets a non-ok reply instead of (or after) a provider call."""

    reply_status: ReplyStatus = ReplyStatus.ERROR
    dead_letter: bool = True  # keep the original record on the DLQ for replay

    def __init__(self, code: ErrorCode, reason: str, *, reply_status: ReplyStatus | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        if reply_status is not None:
            self.reply_status = reply_status

    def __str__(self) -> str:
        return self.reason


class Rejected(GatewayError):
    """Admission said no: unknown or disabled agent, a full backlog, a request that can never fit."""

    def __init__(self, status: ReplyStatus, code: ErrorCode, reason: str) -> None:
        super().__init__(code, reason, reply_status=status)


class StageFailed(GatewayError):
    """A `closed` stage raised, timed out or returned something that is not a verdict."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(ErrorCode.STAGE_FAILED, f"stage {stage!r} failed: {reason}")
        self.stage = stage


class Blocked(GatewayError):
    """A check stage blocked the message (its input, or the answer). An answer, not a failure: no DLQ."""

    reply_status = ReplyStatus.BLOCKED
    dead_letter = False

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(ErrorCode.BLOCKED_BY_STAGE, f"blocked by stage {stage!r}: {reason}")
        self.stage = stage


class ModerationBlocked(GatewayError):
    """A moderation check blocked the input or the reply, or a signal muted the agent: an answer (status
    blocked, the check's code, no content), not a failure: no DLQ."""

    reply_status = ReplyStatus.BLOCKED
    dead_letter = False

    def __init__(self, code: ErrorCode, reason: str) -> None:
        super().__init__(code, reason)
