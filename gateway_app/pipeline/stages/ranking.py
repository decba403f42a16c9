"""Ranking: with the profile's `ranking`, more answers to the same request, the best published
(`pipeline.ranking`). The provider's own `n` gives several from one call where it has it (the call stage
asks for them); parallel calls draw the rest. Every answer is billed: the calls are in `ctx.answers`.
A candidate call that fails is left out (the reply says how many were drawn); an answer that asks for
tools, a cached answer and a stage's answer are not ranked. With a judge, the candidates tied on the
checks go to the judge model (one call, billed under its own event id); if it fails or names none of
them, the checks' choice stands.
"""

from __future__ import annotations

import asyncio
import logging

from gateway_app.contract import ids
from gateway_app.contract.events import RankingInfo
from gateway_app.errors import GatewayError
from gateway_app.pipeline import conversation, ranking, records
from gateway_app.pipeline.caller import Answer, CallFailed, CallLog, Target
from gateway_app.pipeline.context import MessageContext
from gateway_app.pipeline.stage import Services
from gateway_app.pipeline.stages.moderation import Checking
from gateway_app.pipeline.stages.provider_call import ProviderCall

log = logging.getLogger(__name__)


class Ranking:
    name = "ranking"

    def __init__(self, services: Services, checking: Checking, call: ProviderCall) -> None:
        self.services, self.checking, self.call = services, checking, call

    async def run(self, ctx: MessageContext) -> None:
        profile = ctx.require_profile()
        first = ctx.answer
        if profile.ranking is None or first is None or ctx.stage_answer is not None or first.result.tool_calls:
            return
        results = [first.result, *first.result.alternatives]
        extra = await self.draw(ctx, profile.ranking.candidates - len(results))
        results += [answer.result for answer in extra]
        previous = ()
        if ctx.conversation_row is not None:
            previous = tuple(t.reply for t in ctx.conversation_row.turns if t.reply)[-profile.moderation.repetition_last_n:]
        settings = self.checking.check_settings.for_profile(profile)
        failures = [ranking.failed_checks(r, profile, settings, previous) for r in results]
        info = ranking.choose(failures)
        if profile.ranking.judge is not None and len(ranking.tied_best(failures)) > 1:
            info = await self.judge(ctx, failures, results) or info
        ctx.ranking = info
        ctx.result = results[info.chosen]
        # The answer the chosen one came from (the first call's, for one of its own alternatives).
        own = 1 + len(first.result.alternatives)  # the first call's answers come first
        ctx.chosen = first if info.chosen < own else extra[info.chosen - own]

    async def judge(self, ctx: MessageContext, failures: list[list[str]], results: list) -> RankingInfo | None:
        """The judge's pick among the candidates tied on the checks (billed), or None when it could not
        answer or named none of them (the first of them stays)."""
        profile = ctx.require_profile()
        spec = profile.ranking.judge
        tied = ranking.tied_best(failures)
        asked = ranking.judge_request(profile, ctx.message.content, [results[i].text for i in tied])
        target = Target(spec.provider, spec.model, spec.options, 0)
        try:
            answer = await self.call.caller.call(
                ctx.message.message_id, [target], lambda t: self.call.for_target(asked, t, profile.agent_id),
                conversation.prompt_estimate(asked.system_prompt, asked.messages) + asked.max_tokens, None,
                log=CallLog(self.call.caller.clock()))
        except GatewayError as failed:
            log.warning("ranking.judge_failed message=%s error=%s (the checks' choice stands)",
                        ctx.message.message_id, failed.reason)
            return None
        bill = records.billing(ctx.message, answer, self.services.prices)
        ctx.extra_billing.append(bill.model_copy(update={"event_id": ids.judge_billing_id(ctx.message.message_id)}))
        pick = ranking.judged(answer.result.text, len(tied))
        if pick is None:
            log.info("ranking.judge_unclear message=%s answer=%r (the checks' choice stands)",
                     ctx.message.message_id, answer.result.text[:40])
            return None
        return ranking.choose_judged(failures, tied[pick], f"{spec.provider}/{spec.model}")

    async def draw(self, ctx: MessageContext, count: int) -> list[Answer]:
        """`count` more answers, in parallel; those whose calls failed are left out."""
        if count <= 0:
            return []
        outcomes = await asyncio.gather(*(self.call.draw(ctx) for _ in range(count)), return_exceptions=True)
        answers = []
        for outcome in outcomes:
            if isinstance(outcome, CallFailed):
                log.info("ranking.candidate_failed message=%s error=%s", ctx.message.message_id, outcome.reason)
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                answers.append(outcome)
        ctx.answers.extend(answers)  # billed, each
        return answers
