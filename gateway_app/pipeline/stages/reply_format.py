"""The reply format: what the profile's `response_format` and `max_reply_chars` make of the answer.

Markdown is normalised; JSON is checked (against the profile's schema, if any) and, when a provider
wrote it, repaired once by asking the provider again with the invalid answer and the reason; an answer
still invalid fails the message (`invalid_response_format`), and every answer asked for is billed.
Text and Markdown replies (the latter once normalised) are cut to `max_reply_chars` at a sentence end;
JSON never is (a cut JSON value is no JSON).
"""

from __future__ import annotations

from dataclasses import replace

from gateway_app.contract.events import ErrorCode, StageNote
from gateway_app.contract.profile import ResponseFormat
from gateway_app.errors import GatewayError
from gateway_app.pipeline.context import MessageContext
from gateway_app.pipeline.formats import (check_json, json_text, normalize_markdown, repair_instruction,
                                          truncate_at_sentence)
from gateway_app.pipeline.plugin_runner import REASON_CHARS
from gateway_app.pipeline.stage import Services
from gateway_app.pipeline.stages.provider_call import ProviderCall
from gateway_app.providers.base import ChatMessage, ChatResult


class ReplyFormat:
    name = "reply_format"

    def __init__(self, services: Services, call: ProviderCall) -> None:
        self.call = call  # the provider call stage: the repair is one more answer from it

    async def run(self, ctx: MessageContext) -> None:
        if ctx.result is None:
            return
        profile = ctx.require_profile()
        if profile.response_format.type == "json":
            await self._json(ctx, profile.response_format)
            return
        if profile.response_format.type == "markdown":
            ctx.result = replace(ctx.result, text=normalize_markdown(ctx.result.text))
        if profile.max_reply_chars is not None:
            text, cut = truncate_at_sentence(ctx.result.text, profile.max_reply_chars)
            ctx.result = replace(ctx.result, text=text)
            ctx.truncated = ctx.truncated or cut  # a cached answer says whether it had been cut

    async def _json(self, ctx: MessageContext, fmt: ResponseFormat) -> None:
        reason = _invalid(ctx.result, fmt)
        if reason is not None and ctx.stage_answer is None:  # a stage's own answer is not asked again
            await self._repair(ctx, reason)
            reason = _invalid(ctx.result, fmt)
        if reason is not None:
            raise GatewayError(ErrorCode.INVALID_RESPONSE_FORMAT, reason)
        if ctx.result.text:
            ctx.result = replace(ctx.result, text=json_text(ctx.result.text))

    async def _repair(self, ctx: MessageContext, reason: str) -> None:
        """Ask once more, showing the model its invalid answer and why. The new answer is appended to
        `ctx.answers` by the call, so both are billed whatever the outcome."""
        request = ctx.require_request()
        turns = (ChatMessage("assistant", ctx.result.text), ChatMessage("user", repair_instruction(reason)))
        ctx.request = replace(request, messages=request.messages + turns)
        ctx.notes.append(StageNote(stage=self.name, action="regenerate", reason=reason[:REASON_CHARS]))
        await self.call.call(ctx)


def _invalid(result: ChatResult, fmt: ResponseFormat) -> str | None:
    """Why the answer is not the JSON asked for; None when it is, or when it is a tool call (no text)."""
    if result.tool_calls and not result.text:
        return None
    return check_json(result.text, fmt.json_schema)
