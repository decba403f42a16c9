"""The provider call: targets in order (the profile's provider, then its fallbacks), behind each
endpoint's pause, caps and breaker, retried on the policy's schedule (see `pipeline.caller`). Streamed
answers go out as chunks while they come. Skipped when a pre-call stage already answered."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from gateway_app.pipeline.caller import CallFailed, Caller, Target, targets_of
from gateway_app.pipeline.chunks import ChunkPipe
from gateway_app.pipeline.context import MessageContext
from gateway_app.pipeline.stage import Services
from gateway_app.pipeline.stages.admission import estimate
from gateway_app.providers.base import ChatRequest
from gateway_app.publisher import Publisher


class ProviderCall:
    name = "provider_call"

    def __init__(self, services: Services) -> None:
        self.caller: Caller = services.caller
        self.publisher: Publisher = services.publisher

    async def run(self, ctx: MessageContext) -> None:
        if ctx.stage_answer is None:
            await self.call(ctx)

    async def call(self, ctx: MessageContext) -> None:
        """One more answer from the provider (the first, or a regeneration), appended to the context.
        Raises `CallFailed` when every target failed."""
        profile, request = ctx.require_profile(), ctx.require_request()
        pipe = ChunkPipe(self.publisher, ctx.message) if profile.stream else None
        try:
            answer = await self.caller.call(ctx.message.message_id, targets_of(profile),
                                            lambda target: for_target(request, target),
                                            estimate(profile, ctx.message.content),
                                            pipe.put if pipe else None, log=ctx.calls)
        except CallFailed as failed:
            ctx.calls = failed.log
            raise
        except asyncio.CancelledError:
            if pipe is not None:
                pipe.cancel()
                pipe = None
            raise
        finally:
            if pipe is not None:
                await pipe.close()  # every chunk goes out before the reply (or the error reply)
        ctx.calls = answer.log
        ctx.answers.append(answer)
        ctx.result = answer.result


def for_target(request: ChatRequest, target: Target) -> ChatRequest:
    return replace(request, model=target.model, options=target.options)
