"""Pre-call and post-call checks: the profile's plugin stages at those positions, in its order.

Pre-call stages may answer without a provider call (later: a cache hit) or block the input.
Post-call stages may modify, replace, regenerate once, or block the answer; each sees the answer as the
stages before it left it. A regeneration asks the provider again and runs the post-call stages anew.
Post-call stages check provider answers only (an answer a pre-call stage gave is the gateway's own).
"""

from __future__ import annotations

from dataclasses import replace

from gateway_app.errors import Blocked
from gateway_app.pipeline.context import MessageContext, StageAnswer
from gateway_app.pipeline.plugin_runner import note, run_plugin, stages_at
from gateway_app.pipeline.stage import Services
from gateway_app.pipeline.stages.provider_call import ProviderCall
from gateway_app.plugins.api import Answer, Block, Modify, Regenerate, Replace, StageInput
from gateway_app.providers.base import ChatResult, TokenUsage


class PreCallChecks:
    name = "pre_call"

    def __init__(self, services: Services) -> None:
        self.plugins, self.counters = services.plugins, services.counters

    async def run(self, ctx: MessageContext) -> None:
        profile, request = ctx.require_profile(), ctx.require_request()
        for spec, options in stages_at(self.plugins, profile, "pre_call"):
            seen = StageInput(ctx.message, profile, request, options)
            verdict = await run_plugin(spec, seen, ctx, self.counters)
            refuse_if_blocked(ctx, spec, verdict, "input refused")
            if isinstance(verdict, Answer):
                note(ctx, spec, "answer", verdict.reason)
                result = ChatResult(text=verdict.content, finish_reason="stop", usage=TokenUsage(0, 0))
                ctx.stage_answer, ctx.result = StageAnswer(spec.name, result), result
                return  # answered: later pre-call stages have nothing to decide


class PostCallChecks:
    name = "post_call"

    def __init__(self, services: Services, call: ProviderCall) -> None:
        self.plugins, self.counters, self.call = services.plugins, services.counters, call

    async def run(self, ctx: MessageContext) -> None:
        if ctx.stage_answer is not None or ctx.result is None:
            return
        regenerated = False
        while (asked := await self._check(ctx, regenerated)) is not None:
            if regenerated:
                raise Blocked(asked, "asked to regenerate an answer that was already regenerated once")
            regenerated = True
            await self.call.call(ctx)  # a new answer; the post-call stages see it from the start

    async def _check(self, ctx: MessageContext, regenerated: bool) -> str | None:
        """Apply every stage's verdict; the name of a stage that asks to regenerate, else None."""
        profile, request = ctx.require_profile(), ctx.require_request()
        for spec, options in stages_at(self.plugins, profile, "post_call"):
            seen = StageInput(ctx.message, profile, request, options, result=ctx.result, regenerated=regenerated)
            verdict = await run_plugin(spec, seen, ctx, self.counters)
            refuse_if_blocked(ctx, spec, verdict, "answer refused")
            if isinstance(verdict, Regenerate):
                note(ctx, spec, "regenerate", verdict.reason)
                return spec.name
            if isinstance(verdict, Modify):
                note(ctx, spec, "modify", verdict.reason)
                ctx.result = replace(ctx.result, text=verdict.content)
            elif isinstance(verdict, Replace):
                note(ctx, spec, "replace", verdict.reason)
                ctx.result = replace(ctx.result, text=verdict.content, finish_reason="content_filter", tool_calls=())
        return None


def refuse_if_blocked(ctx: MessageContext, spec, verdict, default_reason: str) -> None:
    if isinstance(verdict, Block):
        note(ctx, spec, "block", verdict.reason)
        raise Blocked(spec.name, verdict.reason or default_reason)
