"""Summarize: with the profile's `post_processing: ["summarize"]` and a `context`, the turns the context
budget leaves out are folded into a rolling summary, which the system prompt carries in their place
(`pipeline.summaries`). The summary is made by the agent's own provider and model (its fallbacks too), is
billed like any call (its own billing event), and is stored with the message's turn, so a redelivered
message does not summarize twice. A summary call that fails never fails the message: the old summary
(if any) is used and the next message tries again.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from gateway_app.contract import ids
from gateway_app.errors import GatewayError
from gateway_app.pipeline import conversation, records, summaries
from gateway_app.pipeline.caller import CallLog, targets_of
from gateway_app.pipeline.context import MessageContext
from gateway_app.pipeline.stage import Services
from gateway_app.pipeline.stages.prompt import keeps_context
from gateway_app.pipeline.stages.provider_call import ProviderCall

log = logging.getLogger(__name__)


class Summarize:
    name = "summarize"

    def __init__(self, services: Services, call: ProviderCall) -> None:
        self.services, self.call = services, call

    async def run(self, ctx: MessageContext) -> None:
        profile = ctx.require_profile()
        if "summarize" not in profile.post_processing or not keeps_context(profile) or ctx.request is None:
            return
        conv = ctx.conversation_row
        summary = conv.summary if conv is not None else ""
        new = summaries.unsummarized(conv, ctx.window_dropped)
        if new:
            summary = await self.fold(ctx, summary, new) or summary
        if summary:
            request = replace(ctx.require_request(), system_prompt=summaries.with_summary(ctx.require_request()
                                                                                          .system_prompt, summary))
            ctx.request = request
            ctx.prompt_estimate = conversation.prompt_estimate(request.system_prompt, request.messages)

    async def fold(self, ctx: MessageContext, summary: str, turns: list) -> str | None:
        """The summary with `turns` folded in (kept for the turn's row, billed), or None if the call failed."""
        profile = ctx.require_profile()
        asked = summaries.request(profile, summary, turns)
        estimate = conversation.prompt_estimate(asked.system_prompt, asked.messages) + asked.max_tokens
        try:
            answer = await self.call.caller.call(
                ctx.message.message_id, targets_of(profile),
                lambda target: self.call.for_target(asked, target, profile.agent_id), estimate, None,
                log=CallLog(self.call.caller.clock()))
        except GatewayError as failed:
            log.warning("summary.failed message=%s error=%s (the earlier summary is used)",
                        ctx.message.message_id, failed.reason)
            return None
        text = answer.result.text.strip()
        bill = records.billing(ctx.message, answer, self.services.prices)
        ctx.extra_billing.append(bill.model_copy(update={"event_id": ids.summary_billing_id(ctx.message.message_id)}))
        if not text:
            return None
        ctx.new_summary = (text, turns[-1].id)
        return text
