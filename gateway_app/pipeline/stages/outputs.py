"""Outputs: the reply, its billing events and the outcome row; and, on failure, the error reply with
its DLQ record. Output-position plugin stages see the reply before it is sent.

The outcome row is written only once the broker has acknowledged every record of the outcome: its
presence proves they exist, so a redelivery of the same input is acked without publishing again (see
`agents_tables.outcomes`). A rebalance lets a message that is publishing finish before it cancels the
rest (`ctx.publishing`): cut between its send and its row, it would be answered twice.

The message's usage rows are written in the same step as its outcome row (`pipeline.usage`); a run of a
message whose usage an earlier run counted does not publish those billing events again, and a redelivery
absorbed (or a replay re-sent) adds what a kill -9 lost of its usage rows (`agents_tables.usage`).
"""

from __future__ import annotations

import asyncio
import logging
import time

from agents_tables.outcomes import Outcome, origin_key
from gateway_app.contract import ids
from gateway_app.contract.internal import ConsultedRecord, encode_agent_event, internal_key
from gateway_app.errors import GatewayError, ModerationBlocked
from gateway_app.moderation import records as moderation_records
from gateway_app.observability import tracing
from gateway_app.pipeline import collaboration, records
from gateway_app.pipeline.context import MessageContext
from gateway_app.pipeline.plugin_runner import run_plugin, stages_at
from gateway_app.pipeline.stage import Services
from gateway_app.pipeline.stages.admission import settle
from gateway_app.pipeline.memory import Memory
from gateway_app.pipeline.stages.moderation import end_stream
from gateway_app.pipeline.stages.speak import reply_fields
from gateway_app.pipeline.usage import UsageRecorder, position_of
from gateway_app.plugins.api import StageInput
from gateway_app.publisher import Publisher, encode

log = logging.getLogger(__name__)


class Outputs:
    name = "outputs"

    def __init__(self, services: Services) -> None:
        self.services = services
        self.publisher: Publisher = services.publisher
        self.memory = Memory(services)
        self.usage = UsageRecorder(services)

    async def run(self, ctx: MessageContext) -> None:
        profile, result = ctx.require_profile(), ctx.result
        if result is None:
            raise RuntimeError("outputs ran without an answer")
        voice, audio_chunks = reply_fields(ctx, self.services.settings)
        reply = records.ok_reply(ctx.room_message, profile, result, None if ctx.stage_answer else ctx.answer,
                                 ctx.notes, ctx.latency_ms(), ctx.attempts, reply_to=reply_to(ctx),
                                 cached=ctx.cache_hit, truncated=ctx.truncated,
                                 moderation=moderation_records.info(ctx.steering.signals, ctx.verdicts),
                                 language=ctx.reply_language, sentiment=ctx.sentiment, ranking=ctx.ranking,
                                 collaboration=collaboration.info(ctx.hops), **voice)
        for spec, options in stages_at(self.services.plugins, profile, "outputs"):
            seen = StageInput(ctx.message, profile, ctx.require_request(), options, result=result, reply=reply)
            await run_plugin(spec, seen, ctx, self.services.counters)
        await end_stream(ctx, blocked=any(v.action == "replace" for v in ctx.verdicts))
        if audio_chunks:  # the audio the reply names exists before the reply does
            headers = tracing.headers_of(ctx.trace)
            await asyncio.gather(*[await self.publisher.audio_chunk(chunk, headers) for chunk in audio_chunks])
        outcome = self.outcome(ctx, answer_back(ctx, result.text) or encode(reply), answered=True)
        await self.send(ctx, outcome, remember=lambda: self.memory.remember(ctx, outcome))
        self.services.counters["answered"] += 1
        self.services.metrics.reply(reply.status)
        finished(self.services, ctx, reply.status)

    def outcome(self, ctx: MessageContext, reply: bytes, *, answered: bool) -> Outcome:
        bills = records.billable(ctx.answers, ctx.message, self.services.prices)
        self.services.metrics.answered(ctx.answers)
        if ctx.cache_hit is not None:
            bills.append(records.cache_billing(ctx.message, ctx.cache_hit, self.services.prices))
        bills += ctx.extra_billing
        bills = hop_billing(ctx, bills)
        if ctx.rerun is not None:  # new calls of a message that had failed: not the failed run's ids
            bills = [bill.model_copy(update={"event_id": ids.rerun_billing_id(bill.event_id, ctx.rerun)})
                     for bill in bills]
        bills = self.usage.unbilled(ctx, bills, reply)  # not those an earlier run of the message counted
        self.services.metrics.billed(bills)
        origin = origin_key(ctx.origin.topic, ctx.origin.partition, ctx.origin.offset)
        return Outcome(reply, tuple(encode(bill) for bill in bills), origin, answered, position_of(ctx),
                       ctx.deferred)

    async def send(self, ctx: MessageContext, outcome: Outcome, *before, remember=None) -> None:
        """Send `before` (the DLQ record) and the outcome's records, wait for the broker, then record it
        (its usage rows, and for an ok answer its conversation turn and cache entry: `remember`), with no
        await in between: a rebalance cannot cut them apart."""
        ctx.publishing = True
        headers = tracing.headers_of(ctx.trace)  # every record of the message carries its traceparent
        events = [await self.publisher.moderation_event(event, headers) for event in ctx.moderation_events]
        deliveries = [*before, *events, *await send_outcome(self.publisher, ctx, outcome)]
        await asyncio.gather(*deliveries)
        self.usage.record(ctx)
        if remember is not None:
            remember()
        self.services.stores.outcomes.remember(ctx.partition, ctx.message.message_id, outcome)


WAITING_STAGES = ("admission", "conversation_turn")  # the agent's and the room's turn, profile, window, budget


def finished(services: Services, ctx: MessageContext, status) -> None:
    """The message's time in the worker, and how much of it was the gateway's own: not its provider
    attempts, nor what it waited for on purpose (its turn behind the agent's and the room's earlier
    messages, the profile, a rate window, the budget)."""
    provider_seconds = ctx.calls.provider_seconds if ctx.calls is not None else 0.0
    waited_seconds = sum(ctx.timings.get(name, 0.0) for name in WAITING_STAGES) / 1000
    services.metrics.message(status, time.monotonic() - ctx.arrived, provider_seconds + waited_seconds)


def reply_to(ctx: MessageContext) -> str | None:
    if isinstance(ctx.record, ConsultedRecord):
        return None  # the reply answers the user's message; the consultations were the gateway's own
    results = ctx.tool_results
    return results.reply_to if results is not None else None


def answer_back(ctx: MessageContext, text: str, error: tuple[str, str] | None = None) -> bytes | None:
    """For an answer to another agent's consultation: the record that passes it on (to the asker, or to
    its next collaborator to ask) instead of a reply to the room. None for the room's answers."""
    asked = ctx.position.consultation
    if asked is None:
        return None
    record = collaboration.answered(asked, ctx.hops, text, error=error, origin=ctx.origin,
                                    now_ms=int(time.time() * 1000))
    return encode_agent_event(record)


def hop_billing(ctx: MessageContext, bills: list) -> list:
    """Every call of a consultation chain names the room's message; a collaborator's, who asked it."""
    root, asked = ctx.position.frame.message_id, ctx.position.consultation
    if root == ctx.message.message_id and asked is None and not ctx.delegated:
        return bills  # no chain: a message answered on its own
    update = {"root_message_id": root, "consulted_by": asked.asked_by if asked is not None else None}
    return [bill.model_copy(update=update) for bill in bills]


async def send_outcome(publisher: Publisher, ctx: MessageContext, outcome: Outcome) -> list:
    """Hand the outcome's records to the producer, in order; returns their deliveries. The first is the
    reply, or (collaboration) an internal record for the agent it names."""
    headers = tracing.headers_of(ctx.trace)
    agent = internal_key(outcome.reply)
    if agent is not None:
        deliveries = [await publisher.forward(agent, outcome.reply, headers)]
    else:
        deliveries = [await publisher.send_reply_bytes(ctx.message.room_id, outcome.reply, headers)]
    for bill in outcome.billing:
        deliveries.append(await publisher.send_billing_bytes(ctx.message.agent_id, bill, headers))
    return deliveries


class FailureOutputs:
    """A message that ends with a `GatewayError`: its reply (error, rate_limited, agent_unavailable or
    blocked), billing for any tokens its provider answers used, and a DLQ record unless it was blocked.
    Its outcome is recorded too: a redelivery of the same input is absorbed, while a replay of the
    message (from the DLQ, at a new input offset) is tried again; a blocked message is an answer."""

    def __init__(self, services: Services, outputs: Outputs) -> None:
        self.services, self.outputs = services, outputs

    async def publish(self, ctx: MessageContext, error: GatewayError) -> None:
        tracing.failed(ctx.trace, str(error.code), failure=error.dead_letter)
        settle(ctx, self.services.stores)
        # A held stream never ends as if its answer had been published: blocked says so, an error ends it.
        await end_stream(ctx, blocked=True, failed=error.dead_letter)
        reply = records.failed_reply(ctx.room_message, ctx.profile, status=error.reply_status, code=error.code,
                                     reason=error.reason, latency_ms=ctx.latency_ms(),
                                     attempts=ctx.attempts, notes=ctx.notes, reply_to=reply_to(ctx),
                                     moderation=moderation_records.info(ctx.steering.signals, ctx.verdicts),
                                     transcript=ctx.transcript, collaboration=collaboration.info(ctx.hops))
        passed_on = answer_back(ctx, "", (str(error.code), error.reason))
        if passed_on is not None:  # the asker answers without this agent's help: no room reply, no DLQ
            await self.outputs.send(ctx, self.outputs.outcome(ctx, passed_on, answered=True))
            self.services.counters["consultations_failed"] += 1
            self.services.metrics.reply(error.reply_status, error.code)
            finished(self.services, ctx, error.reply_status)
            return
        outcome = self.outputs.outcome(ctx, encode(reply), answered=not error.dead_letter)
        if not error.dead_letter:
            await self.outputs.send(ctx, outcome)
            self.services.counters["blocked"] += 1
            self.services.metrics.reply(error.reply_status, error.code)
            finished(self.services, ctx, error.reply_status)
            if isinstance(error, ModerationBlocked):
                self.services.counters["moderation_blocked"] += 1
            return
        dead = records.dead_letter(ctx.origin, error.code, error.reason, attempts=ctx.attempts,
                                   message_id=ctx.message.message_id, agent_id=ctx.message.agent_id,
                                   history=ctx.history)
        ctx.publishing = True
        dlq = await self.outputs.publisher.dead_letter(dead, tracing.headers_of(ctx.trace))
        await self.outputs.send(ctx, outcome, dlq)
        self.services.counters["rejected"] += 1
        self.services.metrics.reply(error.reply_status, error.code)
        finished(self.services, ctx, error.reply_status)


async def resend(services: Services, ctx: MessageContext, outcome: Outcome) -> None:
    """A replay of an answered message: the same bytes again, no provider call."""
    services.counters["redelivered"] += 1
    log.info("flow.redelivered message=%s", ctx.message.message_id)
    ctx.publishing = True
    await asyncio.gather(*await send_outcome(services.publisher, ctx, outcome))
