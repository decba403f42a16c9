"""The provider call: targets in order (the profile's provider, then its fallbacks), behind each
endpoint's pause, caps and breaker, retried on the policy's schedule (see `pipeline.caller`). Streamed
answers go out as chunks while they come. Skipped when a pre-call stage already answered."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Callable
from datetime import datetime, timezone

from pydantic import SecretStr

from gateway_app.credentials.errors import CredentialsUnavailable
from gateway_app.log_redaction import REDACTOR
from gateway_app.pipeline.caller import Answer, CallFailed, Caller, Target, targets_of
from gateway_app.moderation.gate import HeldPipe
from gateway_app.pipeline.chunks import ChunkPipe
from gateway_app.pipeline.context import MessageContext
from gateway_app.pipeline.stage import Services
from gateway_app.pipeline.stages.admission import estimate
from gateway_app.providers.base import ChatRequest
from gateway_app.publisher import Publisher


PipeFactory = Callable[[MessageContext], ChunkPipe]


def on_chunk(pipe: ChunkPipe | None, ctx: MessageContext):
    held = ctx.stream_pipe
    return pipe.put if pipe is not None else (held.put if isinstance(held, HeldPipe) else None)


def request_estimate(ctx: MessageContext) -> int:
    """Tokens the call may use (for the endpoint's TPM cap): the prompt as built, plus the whole answer."""
    profile = ctx.require_profile()
    if not ctx.prompt_estimate:
        return estimate(profile, ctx.message.content)
    return ctx.prompt_estimate + profile.max_tokens


class ProviderCall:
    name = "provider_call"

    def __init__(self, services: Services, pipes: PipeFactory | None = None) -> None:
        self.caller: Caller = services.caller
        self.publisher: Publisher = services.publisher
        self.credentials = services.credentials
        # How a streamed answer's chunks go out (moderation may hold them: moderation.gate).
        self.pipes: PipeFactory = pipes or (lambda ctx: ChunkPipe(self.publisher, ctx.room_message))

    async def run(self, ctx: MessageContext) -> None:
        if ctx.stage_answer is None:
            await self.call(ctx)

    async def call(self, ctx: MessageContext) -> None:
        """One more answer from the provider (the first, or a regeneration), appended to the context.
        Raises `CallFailed` when every target failed."""
        profile, request = ctx.require_profile(), ctx.require_request()
        # An answer to another agent's consultation is not the room's: nothing of it is streamed there.
        pipe = self.pipes(ctx) if profile.stream and not ctx.internal else None
        if isinstance(pipe, HeldPipe):
            await self.hold(ctx, pipe)
            pipe = None  # the outputs end it, once the whole answer was checked
        wanted = profile.ranking.candidates if profile.ranking is not None else 1
        try:
            answer = await self.caller.call(ctx.message.message_id, targets_of(profile),
                                            lambda target: self.for_target(request, target, profile.agent_id, wanted),
                                            request_estimate(ctx),
                                            on_chunk(pipe, ctx), log=ctx.calls)
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
        ctx.chosen = None  # a new answer (a regeneration) supersedes a ranking's choice
        ctx.result = answer.result

    async def draw(self, ctx: MessageContext) -> Answer:
        """One more whole answer to the same request (a ranking candidate): not streamed, not kept on the
        context (the ranking stage keeps it). Raises `CallFailed`."""
        profile, request = ctx.require_profile(), ctx.require_request()
        return await self.caller.call(ctx.message.message_id, targets_of(profile),
                                      lambda target: self.for_target(request, target, profile.agent_id),
                                      request_estimate(ctx), None, log=ctx.calls)

    @staticmethod
    async def hold(ctx: MessageContext, pipe: HeldPipe) -> None:
        """This call's held stream replaces an earlier one (a regeneration's answer supersedes it)."""
        previous, ctx.stream_pipe = ctx.stream_pipe, pipe
        if isinstance(previous, HeldPipe):
            await previous.abandon()

    async def for_target(self, request: ChatRequest, target: Target, agent_id: str, answers: int = 1) -> ChatRequest:
        """The request for one target, with the agent's own key for it when the profile names one, asking
        for `answers` answers where the target's provider gives several from one call.
        Raises `CredentialsUnavailable` (that target fails; never a fall back to the environment's key)."""
        n = 1
        if answers > 1:
            provider = await self.caller.providers.load(target.provider)
            n = answers if getattr(provider, "supports_n", False) else 1
        request = replace(request, model=target.model, options=target.options, n=n)
        refs = target.credentials
        if refs is None:
            return request
        if self.credentials is None:
            raise CredentialsUnavailable("this worker resolves no credential references")
        primary = await self._resolve(refs.key_ref, agent_id, target.provider)
        secondary = None
        in_overlap = refs.secondary_until is None or datetime.now(timezone.utc) < refs.secondary_until
        if refs.secondary_key_ref and in_overlap:
            secondary = await self._resolve(refs.secondary_key_ref, agent_id, target.provider)
        return replace(request, credential=primary, secondary_credential=secondary)

    async def _resolve(self, ref: str, agent_id: str, provider: str) -> SecretStr:
        secret = await self.credentials.resolve(ref, agent_id=agent_id, provider=provider)
        REDACTOR.remember(secret.reveal())  # from now on no log line can carry it
        return SecretStr(secret.reveal())
