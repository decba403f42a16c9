"""Outputs: the reply, its billing events and the outcome row; and, on failure, the error reply with
its DLQ record. Output-position plugin stages see the reply before it is sent.

The outcome row is written before the records are sent: a redelivery of an answered message then
re-sends the same bytes instead of calling the provider again.
"""

from __future__ import annotations

import logging

from agents_tables.outcomes import Outcome
from gateway_app.errors import GatewayError
from gateway_app.pipeline import records
from gateway_app.pipeline.context import MessageContext
from gateway_app.pipeline.plugin_runner import run_plugin, stages_at
from gateway_app.pipeline.stage import Services
from gateway_app.pipeline.stages.admission import settle
from gateway_app.plugins.api import StageInput
from gateway_app.publisher import Publisher, encode

log = logging.getLogger(__name__)


class Outputs:
    name = "outputs"

    def __init__(self, services: Services) -> None:
        self.services = services
        self.publisher: Publisher = services.publisher

    async def run(self, ctx: MessageContext) -> None:
        profile, result = ctx.require_profile(), ctx.result
        if result is None:
            raise RuntimeError("outputs ran without an answer")
        reply = records.ok_reply(ctx.message, profile, result, None if ctx.stage_answer else ctx.answer,
                                 ctx.notes, ctx.latency_ms(), ctx.attempts)
        for spec, options in stages_at(self.services.plugins, profile, "outputs"):
            seen = StageInput(ctx.message, profile, ctx.require_request(), options, result=result, reply=reply)
            await run_plugin(spec, seen, ctx, self.services.counters)
        await self.send(ctx, self.outcome(ctx, encode(reply)))
        self.services.counters["answered"] += 1

    def outcome(self, ctx: MessageContext, reply: bytes) -> Outcome:
        bills = records.billable(ctx.answers, ctx.message, self.services.prices)
        return Outcome(reply, tuple(encode(bill) for bill in bills))

    async def send(self, ctx: MessageContext, outcome: Outcome) -> None:
        # Remember first: a redelivery then re-sends these bytes instead of calling the provider again.
        self.services.stores.outcomes.remember(ctx.partition, ctx.message.message_id, outcome)
        await send_outcome(self.publisher, ctx, outcome)


async def send_outcome(publisher: Publisher, ctx: MessageContext, outcome: Outcome) -> None:
    await publisher.send_reply_bytes(ctx.message.room_id, outcome.reply)
    for bill in outcome.billing:
        await publisher.send_billing_bytes(ctx.message.agent_id, bill)


class FailureOutputs:
    """A message that ends with a `GatewayError`: its reply (error, rate_limited, agent_unavailable or
    blocked), billing for any tokens its provider answers used, and a DLQ record unless it was blocked.
    A blocked message is an answer: its outcome is remembered like an ok one."""

    def __init__(self, services: Services, outputs: Outputs) -> None:
        self.services, self.outputs = services, outputs

    async def publish(self, ctx: MessageContext, error: GatewayError) -> None:
        settle(ctx, self.services.stores)
        reply = records.failed_reply(ctx.message, ctx.profile, status=error.reply_status, code=error.code,
                                     reason=error.reason, latency_ms=ctx.latency_ms(),
                                     attempts=ctx.attempts, notes=ctx.notes)
        outcome = self.outputs.outcome(ctx, encode(reply))
        if not error.dead_letter:
            await self.outputs.send(ctx, outcome)
            self.services.counters["blocked"] += 1
            return
        dead = records.dead_letter(ctx.origin, error.code, error.reason, attempts=ctx.attempts,
                                   message_id=ctx.message.message_id, agent_id=ctx.message.agent_id,
                                   history=ctx.history)
        await self.outputs.publisher.dead_letter(dead)
        await send_outcome(self.outputs.publisher, ctx, outcome)
        self.services.counters["rejected"] += 1
