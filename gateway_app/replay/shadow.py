"""`gateway replay shadow --provider P --model M`: what another provider or model would have answered.

Each message of the range is sent, from this process, through the gateway's own provider classes
(`ProviderPool`), with the agent's profile as it was when the message was produced (`profiles`), its
provider and model replaced by P and M. Only the message itself: no conversation history, no tool
rounds, no plugin stages, moderation or response format repair, no fallbacks; the provider's key from
this process's environment (the profile's own credential references are not resolved); the profile's
`options` only when P is its own provider. Retriable failures are retried as the gateway does
(GATEWAY_RETRY_*), within GATEWAY_CALL_TIMEOUT_SECONDS per attempt.

Replies and billing events (the price table in force) go to the run's own topics (`run.shadow_topics`),
with the ids the live ones have (`reply_id`, `event_id` of the message), never to the live topics.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from decimal import Decimal

from aiokafka import ConsumerRecord

from gateway_app.contract import ids
from gateway_app.contract.decode import Rejection, decode
from gateway_app.contract.events import (AgentProfile, BillingEvent, ErrorInfo, MessageCreated, MessageReply,
                                         ReplyStatus, ToolCallOut, Usage)
from gateway_app.pipeline.stages.prompt import build_request
from gateway_app.pricing.prices import PriceTable
from gateway_app.providers.base import ChatMessage, ChatResult, ProviderError
from gateway_app.providers.errors import timed_out, unexpected
from gateway_app.providers.registry import ProviderPool
from gateway_app.replay.costs import Estimate, SpendCap, TokenEstimate, estimate_cost, estimate_tokens, price_table
from gateway_app.replay.profiles import ProfileHistory
from gateway_app.replay.ranges import resume_points
from gateway_app.replay.reader import Batch, TopicReader
from gateway_app.replay.run import Job, OpenRun, drive, open_run, print_plan, shadow_topics
from gateway_app.replay.sources import profile_history
from gateway_app.replay.writer import Writer
from gateway_app.resilience.retry import RetryPolicy


@dataclass(frozen=True)
class Item:
    record: ConsumerRecord
    message: MessageCreated
    profile: AgentProfile  # as of the message, provider and model replaced
    tokens: TokenEstimate
    cost: Decimal | None   # the estimate (None: the target model has no price)


@dataclass(frozen=True)
class Called:
    outcome: ChatResult | ProviderError
    attempts: int
    latency_ms: int


def retargeted(profile: AgentProfile, provider: str, model: str) -> AgentProfile:
    """The profile aimed at the shadow's target alone: options belong to their provider (a local base URL
    means nothing to another), no fallbacks (they would measure another model), the environment's key."""
    options = profile.options if profile.provider == provider else {}
    return profile.model_copy(update={"provider": provider, "model": model, "options": options, "fallbacks": [],
                                      "credentials": None, "stream": False})


async def call(pool: ProviderPool, item: Item, policy: RetryPolicy, timeout: float) -> Called:
    """One message's call, retried on the gateway's schedule; a failure is returned, never raised."""
    request = build_request(item.profile, (ChatMessage("user", item.message.content),))
    # The backoff's jitter, as the gateway's own call loop draws it: not a secret.
    started, attempt, rng = time.monotonic(), 0, random.Random()  # nosec B311
    try:
        provider = await pool.load(item.profile.provider)
    except ProviderError as exc:
        return Called(exc, 0, 0)
    while True:
        attempt += 1
        try:
            result = await asyncio.wait_for(provider.complete(request), timeout)
            return Called(result, attempt, int((time.monotonic() - started) * 1000))
        except asyncio.TimeoutError:
            error = timed_out()
        except ProviderError as exc:
            error = exc
        except Exception as exc:  # an adapter bug is this message's failure, not the run's
            error = unexpected(exc)
        elapsed = time.monotonic() - started
        delay = policy.next_delay(attempt, elapsed, error.retry_after, rng) if error.retriable else None
        if delay is None:
            return Called(error, attempt, int(elapsed * 1000))
        await asyncio.sleep(delay)


def reply_of(item: Item, called: Called) -> MessageReply:
    message, profile, outcome = item.message, item.profile, called.outcome
    answered = isinstance(outcome, ChatResult)
    usage = outcome.usage if answered else None
    return MessageReply(
        reply_id=ids.reply_id(message.message_id), message_id=message.message_id, agent_id=message.agent_id,
        room_id=message.room_id, user_id=message.user_id, content=outcome.text if answered else "",
        status=ReplyStatus.OK if answered else ReplyStatus.ERROR,
        error=None if answered else ErrorInfo(code=outcome.code, message=outcome.reason),
        provider=profile.provider, model=profile.model, profile_version=profile.version,
        usage=Usage(**asdict(usage)) if usage else Usage(), latency_ms=called.latency_ms,
        created_at=datetime.now(timezone.utc), fallback_index=0, attempts=called.attempts,
        finish_reason=outcome.finish_reason if answered else None,
        provider_request_id=outcome.request_id if answered else None,
        tool_calls=[ToolCallOut(id=c.id, name=c.name, arguments=c.arguments) for c in outcome.tool_calls]
        if answered else [],
    )


def bill_of(item: Item, result: ChatResult, table: PriceTable) -> BillingEvent:
    message, profile, usage = item.message, item.profile, result.usage
    cost = table.cost(profile.provider, profile.model, usage.input_tokens, usage.output_tokens,
                      usage.cached_input_tokens)
    return BillingEvent(
        event_id=ids.billing_event_id(message.message_id), message_id=message.message_id,
        agent_id=message.agent_id, user_id=message.user_id, room_id=message.room_id, provider=profile.provider,
        model=profile.model, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
        cost_usd=f"{cost:f}", price_version=table.version, created_at=datetime.now(timezone.utc),
        cached_input_tokens=usage.cached_input_tokens, reasoning_tokens=usage.reasoning_tokens,
        provider_request_id=result.request_id,
    )


class Shadow:
    def __init__(self, job: Job, opened: OpenRun, profiles: ProfileHistory, writer: Writer | None) -> None:
        self.job, self.state, self.profiles, self.writer = job, opened.state, profiles, writer
        self.table = price_table(None)
        self.topics = shadow_topics(job.settings, self.state.run)
        self.cap = SpendCap(job.args.max_cost_usd, Decimal(self.state.totals.get("spent_usd", "0")))
        self.pool = ProviderPool(timeout=job.settings.call_timeout_seconds,
                                 http_transport=job.settings.provider_http_transport)
        self.slots = asyncio.Semaphore(job.args.concurrency)
        self.counts: Counter[str] = Counter()
        self.estimate = Estimate()

    def prepare(self, record: ConsumerRecord) -> Item | str:
        """The call to make for a record, or why none is made."""
        message = decode(MessageCreated, record.value)
        if isinstance(message, Rejection):
            return "not_a_message"
        if self.job.args.agent is not None and message.agent_id != self.job.args.agent:
            return "other_agent"
        profile = self.profiles.as_of(message.agent_id, record.timestamp)
        if profile is None:
            return "no_profile"
        if not profile.enabled:
            return "agent_disabled"
        target = retargeted(profile, self.job.args.provider, self.job.args.model)
        tokens = estimate_tokens(target, message.content)
        return Item(record, message, target, tokens, estimate_cost(self.table, target.provider, target.model, tokens))

    async def handle(self, batch: Batch) -> dict[int, int]:
        nexts, calls = batch.next_offsets, []
        for index, record in enumerate(batch.records):
            item = self.prepare(record)
            if isinstance(item, str):
                self.counts[item] += 1
                continue
            if not self.cap.reserve(item.cost or Decimal(0)):
                self.state.stopped = (f"spend cap ${self.job.args.max_cost_usd} reached before message "
                                      f"{item.message.message_id} (partition {record.partition}, offset {record.offset})")
                nexts = resume_points([(r.partition, r.offset) for r in batch.records], index, batch.next_offsets)
                break
            self.estimate.add(item.cost, item.tokens)
            calls.append(await self.start(item))
        for item, task in calls:
            await self.publish(item, None if task is None else await task)
        self.state.totals["spent_usd"] = f"{self.cap.spent:f}"
        self.state.totals["calls"] = int(self.state.totals.get("calls", 0)) + len(calls)
        return nexts

    async def start(self, item: Item) -> tuple[Item, asyncio.Future | None]:
        if self.writer is None:  # a dry run: the estimate stands for the cost
            self.cap.settle(item.cost or Decimal(0), item.cost or Decimal(0))
            self.counts["would_call"] += 1
            return item, None
        await self.slots.acquire()  # at most --concurrency calls in flight
        return item, asyncio.ensure_future(self.run(item))

    async def run(self, item: Item) -> Called:
        try:
            settings = self.job.settings
            called = await call(self.pool, item, settings.retry_policy(), settings.call_timeout_seconds)
        finally:
            self.slots.release()
        spent = Decimal(0)
        if isinstance(called.outcome, ChatResult):
            spent = Decimal(bill_of(item, called.outcome, self.table).cost_usd)
        self.cap.settle(item.cost or Decimal(0), spent)
        return called

    async def publish(self, item: Item, called: Called | None) -> None:
        if called is None or self.writer is None:
            return
        reply = reply_of(item, called)
        self.counts[f"reply_{reply.status}"] += 1
        await self.writer.send(self.topics[0], reply.model_dump_json().encode(), key=item.message.room_id.encode())
        result = called.outcome
        if isinstance(result, ChatResult) and (result.usage.input_tokens or result.usage.output_tokens):
            bill = bill_of(item, result, self.table)
            await self.writer.send(self.topics[1], bill.model_dump_json().encode(),
                                   key=item.message.agent_id.encode())
            self.counts["billing_events"] += 1

    def note(self) -> str:
        return f"${self.cap.spent:f} {'spent' if self.writer is not None else 'estimated'}"

    def report(self) -> None:
        args, counts = self.job.args, self.counts
        if self.writer is None:
            self.job.say(f"{counts['would_call']} messages would be sent to {args.provider}/{args.model}; "
                         f"it would write to {self.topics[0]} and {self.topics[1]}")
        else:
            statuses = ", ".join(f"{k.removeprefix('reply_')} {v}" for k, v in sorted(counts.items())
                                 if k.startswith("reply_")) or "none"
            self.job.say(f"{sum(v for k, v in counts.items() if k.startswith('reply_'))} replies ({statuses}) "
                         f"written to {self.topics[0]}, {counts['billing_events']} billing events to {self.topics[1]}")
            self.job.say(f"spent: ${self.cap.spent:f} (whole run, price table {self.table.version})")
        self.job.say(f"left out: {counts['other_agent']} of other agents, {counts['no_profile']} without a profile "
                     f"at their time, {counts['agent_disabled']} of disabled agents, {counts['not_a_message']} not "
                     f"messages")
        self.job.say(self.estimate.line())
        if self.state.stopped:
            self.job.say(f"STOPPED: {self.state.stopped}; raise --max-cost-usd and run the same command with "
                         f"--run {self.state.run} to go on")
        elif self.writer is not None:
            self.job.say(f"compare with: gateway replay compare {self.state.run}")


async def run_shadow(job: Job) -> int:
    topic = job.args.topic or job.settings.topics.messages
    signature = {"from": job.args.start_text, "to": job.args.stop_text, "agent": job.args.agent,
                 "provider": job.args.provider, "model": job.args.model}
    async with TopicReader(job.settings) as reader, AsyncExitStack() as stack:
        opened = await open_run(job, reader, "shadow", topic, signature)
        print_plan(job, opened)
        profiles = await profile_history(reader, job.settings.topics)
        writer = None
        if job.execute:
            writer = await stack.enter_async_context(Writer(job.settings))
            await writer.create_topics(list(shadow_topics(job.settings, opened.state.run)))
        mode = Shadow(job, opened, profiles, writer)
        try:
            await drive(job, reader, opened, writer, mode.handle, mode.note)
        finally:
            await mode.pool.aclose()
        mode.report()
    return 0
