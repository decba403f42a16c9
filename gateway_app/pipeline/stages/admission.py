"""Admission: in the agent's arrival order, wait for the profile, refuse a disabled agent, reserve
room in the agent's rate window and the call's estimated cost against its budget (`stages.budget`); then
queue for the conversation's turn.

The agent turn was taken when the message was read (so admission follows arrival order) and is held
only here: a message waiting for a profile or a window delays only later messages of the same agent.
"""

from __future__ import annotations

import asyncio
import logging
import time

from agents_tables import windows
from gateway_app.contract.events import AgentProfile, ErrorCode, ReplyStatus
from gateway_app.errors import Rejected
from gateway_app.pipeline.context import MessageContext, Reservation
from gateway_app.pipeline.stage import Services
from gateway_app.pipeline.stages.budget import BudgetGate

log = logging.getLogger(__name__)


def estimate(profile: AgentProfile, content: str) -> int:
    """Tokens reserved before the call: the prompt's estimate plus all the answer may use."""
    return windows.estimate_tokens(profile.system_prompt + content) + profile.max_tokens


class Admission:
    name = "admission"

    def __init__(self, services: Services) -> None:
        self.settings = services.settings
        self.stores = services.stores
        self.turns = services.turns
        self.metrics = services.metrics
        self.profile_service = services.profile_service
        self.budget = BudgetGate(services)
        self.window_ms = int(services.settings.rate_window_seconds * 1000)

    async def run(self, ctx: MessageContext) -> None:
        agent_id = ctx.message.agent_id
        turns = self.turns  # after a rebalance its lanes are new ones: a late release there does nothing
        try:
            await turns.agents.get(agent_id).wait(ctx.agent_turn)
            profile = ctx.profile or await self._wait_for_profile(ctx)
            if not profile.enabled:
                raise Rejected(ReplyStatus.AGENT_UNAVAILABLE, ErrorCode.AGENT_DISABLED, "agent is disabled")
            await self._wait_for_window(ctx, profile)
            if profile.budget is not None:
                await self.budget.admit(ctx, profile, self._context_tokens(ctx, profile))
            ctx.conversation_turn = turns.conversations.get(ctx.conversation).take()
        finally:
            turns.agents.release(agent_id, ctx.agent_turn)

    async def _wait_for_profile(self, ctx: MessageContext) -> AgentProfile:
        agent_id = ctx.message.agent_id
        lane = self.turns.agents.get(agent_id)
        deadline = ctx.arrived + self.settings.profile_wait_seconds
        fetcher = self.profile_service  # asked once per message, within the same wait
        while True:
            profile = self.stores.profiles.live(agent_id)
            if profile is not None:
                ctx.profile = profile
                return profile
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                reason = f"no profile for agent {agent_id!r} within {self.settings.profile_wait_seconds}s"
                raise Rejected(ReplyStatus.AGENT_UNAVAILABLE, ErrorCode.AGENT_UNKNOWN, reason)
            if fetcher is not None:
                # Its answer comes back as a profile record on this agent's partition: the dispatcher
                # applies it in stream order and notifies the lane, like any profile event.
                fetcher.request(agent_id, deadline)
                fetcher = None
            await lane.wait_changed(remaining)

    async def _wait_for_window(self, ctx: MessageContext, profile: AgentProfile) -> None:
        limits = windows.Limits.of(profile.rate_limits)
        if not limits.any:
            return  # nothing to enforce: no window row to read or write (two table writes per message)
        tokens = estimate(profile, ctx.message.content) + self._context_tokens(ctx, profile)
        agent_id = ctx.message.agent_id
        while True:
            now_ms = int(time.time() * 1000)
            decision = windows.admit(self.stores.windows.get(agent_id), now_ms, self.window_ms, limits, tokens)
            if decision.admitted:
                self.stores.windows.put(agent_id, decision.window)
                ctx.reservation = Reservation(decision.window.start_ms, tokens)
                return
            if decision.never:
                reason = f"request needs about {tokens} tokens; the agent's limit is {limits.tpm} per window"
                self.metrics.rejection(ErrorCode.EXCEEDS_TPM)
                raise Rejected(ReplyStatus.RATE_LIMITED, ErrorCode.EXCEEDS_TPM, reason)
            log.debug("rate.deferred agent=%s until_ms=%s", agent_id, decision.retry_at_ms)
            self.metrics.deferral()
            ctx.deferred = True
            await asyncio.sleep(max(0.0, (decision.retry_at_ms - now_ms) / 1000))


    def _context_tokens(self, ctx: MessageContext, profile: AgentProfile) -> int:
        """The earlier turns the prompt will carry, at most the context's budget (settled after the call)."""
        spec = profile.context
        if spec is None or not spec.max_turns:
            return 0
        return min(spec.max_tokens, self.stores.conversations.total_tokens(ctx.message.agent_id, ctx.message.room_id))


class ConversationTurn:
    """One call at a time per conversation (agent + room), in admission order."""

    name = "conversation_turn"

    def __init__(self, services: Services) -> None:
        self.turns = services.turns

    async def run(self, ctx: MessageContext) -> None:
        await self.turns.conversations.get(ctx.conversation).wait(ctx.conversation_turn)


class SettleUsage:
    """Replace the rate-window reservation by what the provider really used."""

    name = "settle_usage"

    def __init__(self, services: Services) -> None:
        self.stores = services.stores

    async def run(self, ctx: MessageContext) -> None:
        settle(ctx, self.stores)


def settle(ctx: MessageContext, stores) -> None:
    """Also called on the failure path (a blocked answer used its tokens all the same) and for a message
    that needed no call (its whole reservation goes back)."""
    if ctx.reservation is None:
        return
    used = sum(a.result.usage.input_tokens + a.result.usage.output_tokens for a in ctx.answers)
    agent_id = ctx.message.agent_id
    window = windows.reconcile(stores.windows.get(agent_id), ctx.reservation.window_start_ms,
                               used - ctx.reservation.tokens)
    if window is not None:
        stores.windows.put(agent_id, window)
    ctx.reservation = None  # settled once
