"""The worker's side of `gateway-agent-events`: every record in partition order, without ever waiting
on a provider.

- profile records update the table at once (their place in the stream is exact);
- a message already answered (a redelivery) gets its remembered outcome again, no provider call;
- any other message takes its agent's turn now (arrival order) and runs the pipeline in a task of its
  own, created while faust's current event is that message, so its table writes go to the message's
  own partition (the agent's partition);
- when the pipeline has sent the message's outputs, its ack slot is marked done and the acker acks in
  offset order. A cancelled task (rebalance) acks nothing: Kafka redelivers it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pydantic import ValidationError

from gateway_app.contract.events import ErrorCode, ReplyStatus
from gateway_app.contract.internal import MessageRecord, decode_agent_event
from gateway_app.errors import Rejected
from gateway_app.pipeline.acker import InOrderAcker
from gateway_app.pipeline.context import MessageContext
from gateway_app.pipeline.pipeline import Pipeline
from gateway_app.pipeline.stage import Services
from gateway_app.pipeline.stages.outputs import send_outcome

log = logging.getLogger(__name__)


class Dispatcher:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.settings = services.settings
        self.stores = services.stores
        self.turns = services.turns
        self.pipeline = Pipeline(services)
        self.acker = InOrderAcker()
        self.in_progress: set[MessageContext] = set()
        self._capacity_freed = asyncio.Event()  # set whenever a message finishes: the loop may read more
        self.counters = services.counters
        self.resets = 0  # rebalances seen; events that waited across one are dropped

    async def on_event(self, event: Any) -> None:
        partition = event.message.partition
        try:
            record = decode_agent_event(event.value)
        except ValidationError as exc:  # only the gateway writes this topic: a bug, not user input
            log.error("flow.bad_internal_record partition=%s offset=%s error=%s", partition, event.message.offset, exc)
            self.acker.done(partition, self.acker.track(partition, event))
            return
        if isinstance(record, MessageRecord):
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
        self._apply_profile(record.payload)
        self.acker.done(partition, slot)

    def _apply_profile(self, incoming) -> None:
        applied = self.stores.profiles.apply(incoming)
        self.counters["profiles_applied" if applied else "profiles_stale"] += 1
        lane = self.turns.agents.peek(incoming.agent_id)
        if applied and lane is not None:
            lane.notify()  # a message parked for this agent's profile may go on

    def _start(self, record: MessageRecord, partition: int, slot) -> None:
        message = record.payload
        ctx = MessageContext(record, partition, slot, profile=self.stores.profiles.live(message.agent_id))
        remembered = self.stores.outcomes.get(message.message_id)
        if remembered is not None:
            coro = self._replay(ctx, remembered)
        elif self.turns.backlog(message.agent_id) >= self.settings.agent_backlog_max:
            reason = f"agent backlog is full ({self.settings.agent_backlog_max} messages waiting)"
            error = Rejected(ReplyStatus.RATE_LIMITED, ErrorCode.BACKLOG_FULL, reason)
            coro = self._finish(ctx, self.pipeline.failures.publish(ctx, error))
        else:
            ctx.agent_turn = self.turns.agents.get(message.agent_id).take()
            coro = self._finish(ctx, self.pipeline.run(ctx))
        self.in_progress.add(ctx)
        # create_task copies the context: faust's current event is this message for the task's life.
        ctx.task = asyncio.create_task(coro)

    async def _finish(self, ctx: MessageContext, work) -> None:
        await work
        self._done(ctx)

    async def _replay(self, ctx: MessageContext, outcome) -> None:
        """A redelivered, already-answered message: the same bytes again, no provider call."""
        self.counters["redelivered"] += 1
        log.info("flow.redelivered message=%s", ctx.message.message_id)
        await send_outcome(self.services.publisher, ctx, outcome)
        self._done(ctx)

    def _done(self, ctx: MessageContext) -> None:
        self.in_progress.discard(ctx)
        self._capacity_freed.set()
        self.acker.done(ctx.partition, ctx.slot)

    async def _wait_for_capacity(self) -> None:
        """Backpressure: past `max_pending_messages` unfinished messages, stop reading the stream."""
        while len(self.in_progress) >= self.settings.max_pending_messages:
            self._capacity_freed.clear()
            await self._capacity_freed.wait()

    def reset(self) -> int:
        """Cancel all work (a rebalance revoked our partitions): unacked messages are redelivered."""
        self.resets += 1
        cancelled = 0
        for ctx in list(self.in_progress):
            if ctx.task is not None and not ctx.task.done():
                ctx.task.cancel()
                cancelled += 1
        self.in_progress.clear()
        self.turns.reset()
        self._capacity_freed.set()
        self.acker.forget_all()
        self.stores.forget_local_state()
        return cancelled

    def backlog(self, agent_id: str) -> int:
        return self.turns.backlog(agent_id)
