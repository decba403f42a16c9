"""Ranking: with the profile's `ranking`, more answers to the same request, the best published
(`pipeline.ranking`). The provider's own `n` gives several from one call where it has it (the call stage
asks for them); parallel calls draw the rest. Every answer is billed: the calls are in `ctx.answers`.
A candidate call that fails is left out (the reply says how many were drawn); an answer that asks for
tools, a cached answer and a stage's answer are not ranked.
"""

from __future__ import annotations

import asyncio
import logging

from gateway_app.pipeline import ranking
from gateway_app.pipeline.caller import Answer, CallFailed
from gateway_app.pipeline.context import MessageContext
from gateway_app.pipeline.stage import Services
from gateway_app.pipeline.stages.moderation import Checking
from gateway_app.pipeline.stages.provider_call import ProviderCall

log = logging.getLogger(__name__)


class Ranking:
    name = "ranking"

    def __init__(self, services: Services, checking: Checking, call: ProviderCall) -> None:
        self.checking, self.call = checking, call

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
        info = ranking.choose([ranking.failed_checks(r, profile, settings, previous) for r in results])
        ctx.ranking = info
        ctx.result = results[info.chosen]
        # The answer the chosen one came from (the first call's, for one of its own alternatives).
        own = 1 + len(first.result.alternatives)  # the first call's answers come first
        ctx.chosen = first if info.chosen < own else extra[info.chosen - own]

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
