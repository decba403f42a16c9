"""The worker's side of `gateway-agent-events`: every record in partition order, without ever waiting
on a provider.

- profile records update the table at once (their place in the stream is exact);
- a message whose outcome is recorded is absorbed (the same input again: its outputs exist, it is only
  acked), answered with the same bytes (a replay of an answered message) or run again (a replay of a
  failed one), by the rule of `agents_tables.outcomes.redelivery`;
- any other message takes its agent's turn now (arrival order) and runs the pipeline in a task of its
  own, created while faust's current event is that message, so its table writes go to the message's
  own partition (the agent's partition);
- when the pipeline has sent the message's outputs, its ack slot is marked done and the acker acks in
  offset order. A cancelled task (rebalance) acks nothing: Kafka redelivers it.

A rebalance (`reset`) lets messages that are publishing finish first, then cancels the rest; a graceful
stop (`drain`) also lets every message that got past admission finish, within a bound.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any

from pydantic import ValidationError

from agents_tables.outcomes import Redelivery, origin_key, redelivery
from gateway_app.contract.events import ErrorCode, ReplyStatus
from gateway_app.contract.internal import (
    ANSWERABLE,
    Answerable,
    CacheExpiredRecord,
    ConversationClearedRecord,
    SignalRecord,
    SignalsExpiredRecord,
    decode_agent_event,
)
from gateway_app.errors import Rejected
from gateway_app.observability import tracing
from gateway_app.pipeline.acker import InOrderAcker
from gateway_app.pipeline.context import MessageContext
from gateway_app.pipeline.forgetting import Forgetting
from gateway_app.pipeline.pipeline import Pipeline
from gateway_app.pipeline.signals import SignalLog
from gateway_app.pipeline.stage import Services
from gateway_app.pipeline.stages.outputs import resend
from gateway_app.pipeline.usage import UsageRecorder

log = logging.getLogger(__name__)
PUBLISH_FINISH_SECONDS = 10.0  # a message publishing when a rebalance comes gets this long to finish
UNWIND_SECONDS = 1.0  # cancelled messages get this long to run their `finally` blocks


class Dispatcher:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.settings = services.settings
        self.stores = services.stores
        self.turns = services.turns
        self.pipeline = Pipeline(services)
        self.acker = InOrderAcker()
        self.stores.usage.floor_of = self.acker.oldest  # what a usage row may forget (agents_tables.usage)
        self.in_progress: set[MessageContext] = set()
        self.in_flight_ids: Counter[str] = Counter()  # message ids in progress (a second copy may come)
        self._capacity_freed = asyncio.Event()  # set whenever a message finishes: the loop may read more
        self.counters = services.counters
        self.resets = 0  # rebalances seen; events that waited across one are dropped
        self.draining = False  # a graceful stop is under way: nothing new starts
        self.forgetting = Forgetting(services)
        self.usage = UsageRecorder(services)
        self.signals = SignalLog(services)

    async def on_event(self, event: Any) -> None:
        if self.draining:
            return  # stopping: neither processed nor acked, the next owner reads it from the commit
        partition = event.message.partition
        try:
            record = decode_agent_event(event.value)
        except ValidationError as exc:  # only the gateway writes this topic: a bug, not user input
            log.error("flow.bad_internal_record partition=%s offset=%s error=%s", partition, event.message.offset, exc)
            self.acker.done(partition, self.acker.track(partition, event))
            return
        if isinstance(record, ANSWERABLE):  # messages, tool results, consultations and their answers
            resets = self.resets
            await self._wait_for_capacity()  # profiles never wait: parked messages may need them
            if self.resets != resets:
                # A rebalance happened while this event waited: it belongs to the old assignment and
                # is redelivered from the committed offset, in order; starting it now would reorder it.
                log.info("flow.stale_event_dropped partition=%s offset=%s", partition, event.message.offset)
                return
            self._start(record, partition, self.acker.track(partition, event))
            return
        slot = self.acker.track(partition, event)
        if isinstance(record, ConversationClearedRecord):
            self.forgetting.clear(record, lambda: self.acker.done(partition, slot))
            return
        if isinstance(record, CacheExpiredRecord):
            self.forgetting.expire_cache(record)
        elif isinstance(record, SignalRecord):
            await self.signals.apply(record)
        elif isinstance(record, SignalsExpiredRecord):
            await self.signals.expire(record)
        else:
            self._apply_profile(record.payload)
        self.acker.done(partition, slot)

    def _apply_profile(self, incoming) -> None:
        applied = self.stores.profiles.apply(incoming)
        self.counters["profiles_applied" if applied else "profiles_stale"] += 1
        lane = self.turns.agents.peek(incoming.agent_id)
        if applied and lane is not None:
            lane.notify()  # a message parked for this agent's profile may go on

    def _start(self, record: Answerable, partition: int, slot) -> None:
        ctx = MessageContext(record, partition, slot, profile=self.stores.profiles.live(record.agent_id),
                             signals=self.stores.moderation.active(record.agent_id, record.payload.room_id,
                                                                   int(time.time() * 1000)))
        message = ctx.message
        ctx.trace = tracing.received(slot.event.message, message.message_id, message.agent_id)
        remembered = self.stores.outcomes.get(message.message_id)
        decision = None if remembered is None else redelivery(
            remembered, origin_key(record.origin.topic, record.origin.partition, record.origin.offset))
        if decision in (Redelivery.ABSORB, Redelivery.RESEND):
            self.usage.restore(ctx, remembered)  # what a kill -9 may have lost of its usage rows
        if decision is Redelivery.ABSORB:
            self._absorb(ctx)
            return
        if decision is Redelivery.RESEND:
            coro = self._finish(ctx, resend(self.services, ctx, remembered))
        elif self.turns.backlog(message.agent_id) >= self.settings.agent_backlog_max:
            reason = f"agent backlog is full ({self.settings.agent_backlog_max} messages waiting)"
            error = Rejected(ReplyStatus.RATE_LIMITED, ErrorCode.BACKLOG_FULL, reason)
            self.services.metrics.rejection(error.code)
            coro = self._finish(ctx, self.pipeline.failures.publish(ctx, error))
        else:
            if decision is Redelivery.RUN:  # it failed before: this run's billing gets ids of its own
                ctx.rerun = origin_key(record.origin.topic, record.origin.partition, record.origin.offset)
            ctx.agent_turn = self.turns.agents.get(message.agent_id).take()
            ctx.copy_in_flight = self.in_flight_ids[message.message_id] > 0
            coro = self._finish(ctx, self.pipeline.run(ctx))
        self.in_progress.add(ctx)
        self.in_flight_ids[message.message_id] += 1
        # create_task copies the context: faust's current event is this message for the task's life.
        ctx.task = asyncio.create_task(coro)

    async def _finish(self, ctx: MessageContext, work) -> None:
        with tracing.running(ctx.trace):  # the message's span: its stages' and calls' spans are children
            await work
        self._done(ctx)

    def _absorb(self, ctx: MessageContext) -> None:
        """The same input again, its outputs durable (the outcome row proves it): ack, publish nothing."""
        self.counters["absorbed"] += 1
        tracing.finished(ctx.trace, "absorbed")
        log.info("flow.absorbed message=%s partition=%s offset=%s", ctx.message.message_id, ctx.partition,
                 ctx.slot.event.message.offset)
        self.acker.done(ctx.partition, ctx.slot)

    def _done(self, ctx: MessageContext) -> None:
        if ctx in self.in_progress:
            self.in_progress.discard(ctx)
            self.in_flight_ids[ctx.message.message_id] -= 1
            if not self.in_flight_ids[ctx.message.message_id]:
                del self.in_flight_ids[ctx.message.message_id]
        self._capacity_freed.set()
        self.acker.done(ctx.partition, ctx.slot)

    async def _wait_for_capacity(self) -> None:
        """Backpressure: past `max_pending_messages` unfinished messages, stop reading the stream."""
        while len(self.in_progress) >= self.settings.max_pending_messages:
            self._capacity_freed.clear()
            await self._capacity_freed.wait()

    async def reset(self, finish_seconds: float = PUBLISH_FINISH_SECONDS) -> int:
        """A rebalance revoked our partitions: unacked messages are redelivered from the committed offset.
        Messages already publishing finish first (bounded): cut between their send and their outcome row,
        they would be answered twice. Returns how many messages were cancelled."""
        self.resets += 1
        self.acker.forget_all()  # nothing of the old assignment is acked any more (faust dropped its acks)
        running = [ctx for ctx in self.in_progress if ctx.task is not None and not ctx.task.done()]
        publishing = [ctx.task for ctx in running if ctx.publishing]
        cancelled = [ctx.task for ctx in running if not ctx.publishing]
        for task in cancelled:
            task.cancel()
        if publishing:
            _, late = await asyncio.wait(publishing, timeout=finish_seconds)
            for task in late:
                task.cancel()
            cancelled += late
            await self.services.publisher.flush()  # their outcome rows reach the changelog before the next owner reads it
        if cancelled:
            await asyncio.wait(cancelled, timeout=UNWIND_SECONDS)  # let them unwind (give back their turns)
        self.in_progress.clear()
        self.in_flight_ids.clear()
        cancelled_chores = await self.forgetting.cancel_all()
        self.turns.reset()
        self.services.budgets.reset()
        self._capacity_freed.set()
        self.stores.forget_local_state()
        return len(cancelled) + cancelled_chores

    async def drain(self, grace_seconds: float) -> tuple[int, int]:
        """A graceful stop: read nothing more, let every message past admission finish (within the grace),
        then cancel the rest (they sent nothing yet: the next owner answers them once). Returns (finished,
        cancelled). Messages parked in admission (a profile or a rate window to wait for) do not hold it."""
        self.draining = True
        deadline = time.monotonic() + grace_seconds
        finished = 0
        while engaged := [c.task for c in self.in_progress
                          if c.stage not in (None, "admission") and c.task is not None and not c.task.done()]:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            done, _ = await asyncio.wait(engaged, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            finished += len(done)
        return finished, await self.reset()

    def backlog(self, agent_id: str) -> int:
        return self.turns.backlog(agent_id)
