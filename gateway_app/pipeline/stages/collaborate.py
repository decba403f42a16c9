"""Collaboration stages (profile `collaborators`; the rules are in `pipeline.collaboration`):

    collaboration_in  (after dedupe)        a consultation read past its timeout is answered
                                            `collaborator_timeout` without a call; the answers to a turn
                                            that no longer asks for them (a crash made the asker answer
                                            again, with other calls) end quietly
    draft             (before the call)     an `always` collaborator is asked for a draft first
    collaborate       (after the call)      the model's `consult_agent` calls are asked

A run that asks a collaborator publishes no reply: it sends the round's next record (with its own
billing and outcome row, like an answer) and ends. Its turn, tool calls included, is kept in the
conversation; the answers come back as a `consulted` record, answered like tool results.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

from gateway_app.contract.events import ErrorCode, StageNote
from gateway_app.contract.internal import ConsultationRecord, ConsultedRecord, encode_agent_event
from gateway_app.errors import GatewayError
from gateway_app.pipeline import collaboration, conversation
from gateway_app.pipeline.collaboration import Limits
from gateway_app.pipeline.context import MessageContext, StageAnswer
from gateway_app.pipeline.stage import Finished, Services
from gateway_app.pipeline.stages.admission import settle
from gateway_app.pipeline.stages.outputs import Outputs, finished
from gateway_app.providers.base import ChatResult, TokenUsage, ToolCall

log = logging.getLogger(__name__)


def now_ms() -> int:
    return int(time.time() * 1000)


class CollaborationIn:
    name = "collaboration_in"

    def __init__(self, services: Services) -> None:
        self.services = services
        self.limits = Limits.of(services.settings)

    async def run(self, ctx: MessageContext) -> None:
        record = ctx.record
        if isinstance(record, ConsultationRecord) and collaboration.expired(record.payload, now_ms(), self.limits):
            waited = (now_ms() - record.payload.asked_at_ms) / 1000
            raise GatewayError(ErrorCode.COLLABORATOR_TIMEOUT,
                               f"asked {waited:.1f}s ago; the limit is {self.limits.timeout_ms / 1000:g}s")
        if isinstance(record, ConsultedRecord):
            conv = self.services.stores.conversations.get(ctx.message.agent_id, ctx.message.room_id)
            try:
                conversation.checked_results(conv, record.as_tool_results)
            except GatewayError as stale:
                settle(ctx, self.services.stores)
                self.services.counters["consultations_stale"] += 1
                log.info("collaboration.stale_answers agent=%s message=%s reason=%s", ctx.message.agent_id,
                         ctx.message.message_id, stale.reason)
                raise Finished("stale") from None


class Delegation:
    """Passing a run's answer on to the round's next record instead of answering."""

    def __init__(self, services: Services, outputs: Outputs) -> None:
        self.services, self.outputs = services, outputs
        self.limits = Limits.of(services.settings)

    async def ask(self, ctx: MessageContext, calls: tuple[ToolCall, ...]) -> None:
        profile, message, position = ctx.require_profile(), ctx.message, ctx.position
        planned = collaboration.plan(calls, profile, position, self.limits)
        record = collaboration.next_record(
            asker=profile.agent_id, room_id=message.room_id, user_id=message.user_id, reply_to=message.message_id,
            asks=planned.asks, gathered=planned.gathered, hops=[*ctx.hops, *planned.hops], chain=position.chain,
            round_=position.round + 1, frame=position.frame, origin=ctx.origin, now_ms=now_ms())
        ctx.delegated = True
        settle(ctx, self.services.stores)
        outcome = self.outputs.outcome(ctx, encode_agent_event(record), answered=True)
        await self.outputs.send(ctx, outcome, remember=lambda: self.outputs.memory.remember(ctx, outcome))
        self.services.counters["consultations_asked"] += len(planned.asks)
        self.services.counters["consultations_refused"] += len(planned.hops)
        log.info("collaboration.asked agent=%s message=%s asks=%s refused=%d round=%d depth=%d",
                 profile.agent_id, message.message_id, ",".join(a.agent_id for a in planned.asks) or "-",
                 len(planned.hops), position.round + 1, len(position.chain))
        finished(self.services, ctx, "delegated")
        raise Finished("delegated")


class _Delegating:
    """A stage that hands questions to the shared `Delegation` (the pipeline builds it once)."""

    def __init__(self, services: Services, delegation: Delegation) -> None:
        self.delegation = delegation
        self.limits = delegation.limits


class Draft(_Delegating):
    """An `always` collaborator drafts first: the agent's own call comes with the draft, after it."""

    name = "draft"

    async def run(self, ctx: MessageContext) -> None:
        profile = ctx.require_profile()
        if ctx.stage_answer is not None or ctx.position.round or isinstance(ctx.record, ConsultedRecord):
            return
        call = collaboration.draft_call(profile, ctx.message.message_id, ctx.message.content)
        if call is None:
            return
        agent_id, _ = collaboration.parsed(call) or ("?", "")
        refused = collaboration.refusal(agent_id, profile, ctx.position, self.limits)
        if refused is not None:  # too deep, or already in the chain: the agent answers alone
            ctx.extra_hops.append(collaboration.refused_hop(agent_id, profile.agent_id, "always",
                                                            len(ctx.position.chain), *refused))
            return
        result = ChatResult(text="", finish_reason="tool_calls", usage=TokenUsage(0, 0), tool_calls=(call,))
        ctx.stage_answer, ctx.result = StageAnswer(self.name, result), result
        await self.delegation.ask(ctx, result.tool_calls)


class Collaborate(_Delegating):
    """The model asked `consult_agent`: its calls are asked, or (past the rounds) dropped from the answer."""

    name = "collaborate"

    async def run(self, ctx: MessageContext) -> None:
        result = ctx.result
        if result is None or ctx.stage_answer is not None or not collaboration.has_consults(result.tool_calls):
            return
        if ctx.position.round + 1 > self.limits.max_rounds:
            self.drop_consults(ctx, result)
            return
        await self.delegation.ask(ctx, result.tool_calls)

    def drop_consults(self, ctx: MessageContext, result: ChatResult) -> None:
        profile, depth = ctx.require_profile(), len(ctx.position.chain)
        reason = f"{self.limits.max_rounds} consultation rounds were used for this answer"
        kept = tuple(call for call in result.tool_calls if call.name != collaboration.CONSULT_TOOL)
        for call in result.tool_calls:
            if call.name == collaboration.CONSULT_TOOL:
                agent_id, _ = collaboration.parsed(call) or ("?", "")
                ctx.extra_hops.append(collaboration.refused_hop(agent_id, profile.agent_id, "tool", depth,
                                                                ErrorCode.COLLABORATION_ROUNDS, reason))
        ctx.result = replace(result, tool_calls=kept)
        ctx.notes.append(StageNote(stage=self.name, action="modify", reason=f"consult_agent calls dropped: {reason}"))
