"""The per-worker message flow over `gateway-agent-events`: join, rate limits, calls, outputs, acks.

The agent loop calls `on_event` for every record in partition order and never waits on a provider:
- profile records update the table at once (their place in the stream is exact);
- each message becomes a task, created while faust's current event is that message, so the task's
  table writes go to the message's own partition (the agent's partition);
- a task first takes its agent's lane turn (arrival order: profile wait, disabled check, rate window),
  then its conversation's turn (one call at a time per agent + room), then an in-flight slot;
- when the reply (or the error and its DLQ record) is sent, the task marks its event done and the
  acker acks in offset order. A cancelled task (rebalance) acks nothing: Kafka redelivers it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Hashable

from pydantic import ValidationError

from agents_tables import profiles as profile_rows
from agents_tables import windows
from agents_tables import outcomes as outcome_rows
from agents_tables.outcomes import Outcome, RecentKeys
from agents_tables.profiles import BoundedCache
from agents_tables.tables import GatewayTables
from gateway_app.contract.events import (
    AgentProfile,
    AgentProfileDeleted,
    ErrorCode,
    MessageCreated,
    ReplyStatus,
)
from gateway_app.contract.internal import AgentEvent
from gateway_app.flow import records
from gateway_app.flow.acker import InOrderAcker
from gateway_app.flow.calls import Answer, Caller, CallFailed, Target, targets_of
from gateway_app.flow.chunks import ChunkPipe
from gateway_app.flow.lanes import Lanes, Ticket
from gateway_app.pricing.prices import current_table
from gateway_app.providers.base import ChatMessage, ChatRequest, ChatResult
from gateway_app.providers.registry import ProviderPool
from gateway_app.publisher import Publisher
from gateway_app.resilience.endpoints import Endpoints
from gateway_app.settings import Settings

log = logging.getLogger(__name__)
_PAYLOADS = {"message": MessageCreated, "profile": AgentProfile, "profile_deleted": AgentProfileDeleted}


class Rejected(Exception):
    """A message that will get a non-ok reply (and a DLQ record) instead of a provider call."""

    def __init__(self, status: ReplyStatus, code: ErrorCode, reason: str, profile: dict | None = None) -> None:
        super().__init__(reason)
        self.status, self.code, self.reason, self.profile = status, code, reason, profile


@dataclass(eq=False)
class Job:
    """One message on its way through the flow."""

    record: AgentEvent
    message: MessageCreated
    partition: Hashable
    slot: list
    arrived: float
    profile: dict[str, Any] | None
    agent_ticket: Ticket | None = None
    conversation_ticket: Ticket | None = None
    reserved: tuple[int, int] | None = None  # (window start ms, tokens reserved)
    attempts: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    task: asyncio.Task | None = field(default=None, repr=False)

    @property
    def conversation(self) -> str:
        return f"{self.message.agent_id}\x1f{self.message.room_id}"


class MessageFlow:
    def __init__(self, settings: Settings, tables: GatewayTables, publisher: Publisher, providers: ProviderPool):
        self.settings = settings
        self.tables = tables
        self.publisher = publisher
        self.providers = providers
        self.prices = current_table()
        self.acker = InOrderAcker()
        self.agent_lanes = Lanes()
        self.conversations = Lanes()
        self.endpoints = Endpoints(settings.breaker_policy(), settings.provider_caps())
        self.caller = Caller(settings, providers, self.endpoints, asyncio.Semaphore(settings.max_in_flight))
        self.jobs: set[Job] = set()
        self._room = asyncio.Event()  # set whenever a job finishes: the loop may take more messages
        self.recent: dict[Hashable, RecentKeys] = {}
        self.profile_cache = BoundedCache(settings.profile_cache_size)
        self.window_ms = int(settings.rate_window_seconds * 1000)
        self.counters = {"answered": 0, "rejected": 0, "redelivered": 0, "profiles_applied": 0, "profiles_stale": 0}
        self.resets = 0  # rebalances seen; events that waited across one are dropped

    # ---- the agent loop's entry point -------------------------------------------------------

    async def on_event(self, event: Any) -> None:
        try:
            record = AgentEvent.model_validate_json(event.value)
            parsed = _PAYLOADS[record.kind].model_validate(record.payload)
        except ValidationError as exc:  # only the gateway writes this topic: a bug, not user input
            log.error("flow.bad_internal_record partition=%s offset=%s error=%s",
                      event.message.partition, event.message.offset, exc)
            record = parsed = None
        if isinstance(parsed, MessageCreated):
            resets = self.resets
            await self._wait_for_room()  # profiles never wait: parked messages may need them
            if self.resets != resets:
                # A rebalance happened while this event waited: it belongs to the old assignment and
                # is redelivered from the committed offset, in order; starting it now would reorder it.
                log.info("flow.stale_event_dropped partition=%s offset=%s", event.message.partition,
                         event.message.offset)
                return
        partition = event.message.partition
        slot = self.acker.track(partition, event)
        if isinstance(parsed, MessageCreated):
            self._start(record, parsed, partition, slot)
            return
        if parsed is not None:
            self._apply_profile(record.kind, parsed, record.payload)
        self.acker.done(partition, slot)

    def _apply_profile(self, kind: str, incoming: AgentProfile | AgentProfileDeleted, payload: dict) -> None:
        row = self._profile_row(incoming.agent_id)
        if not profile_rows.should_apply(row, incoming.version):
            self.counters["profiles_stale"] += 1
            log.info("profile.ignored_stale agent=%s version=%s stored=%s", incoming.agent_id, incoming.version,
                     profile_rows.stored_version(row))
            return
        new_row = payload if kind == "profile" else profile_rows.tombstone(incoming.version)
        self.tables.profiles[incoming.agent_id] = new_row
        self.profile_cache.put(incoming.agent_id, new_row)
        self.counters["profiles_applied"] += 1
        log.info("profile.applied agent=%s version=%s kind=%s", incoming.agent_id, incoming.version, kind)
        lane = self.agent_lanes.peek(incoming.agent_id)
        if lane is not None:
            lane.notify()

    def _profile_row(self, agent_id: str) -> dict[str, Any] | None:
        """The agent's profile row: every write goes through `_apply_profile`, which keeps the cache true."""
        return self.profile_cache.get(agent_id, self.tables.profiles.get)

    def _start(self, record: AgentEvent, message: MessageCreated, partition: Hashable, slot: list) -> None:
        profile = profile_rows.live(self._profile_row(message.agent_id))
        job = Job(record, message, partition, slot, time.monotonic(), profile)
        remembered = self.tables.outcomes.get(message.message_id)
        if remembered is not None:
            coro = self._replay_outcome(job, remembered)
        elif self.backlog(message.agent_id) >= self.settings.agent_backlog_max:
            reason = f"agent backlog is full ({self.settings.agent_backlog_max} messages waiting)"
            coro = self._finish_rejected(job, Rejected(ReplyStatus.RATE_LIMITED, ErrorCode.BACKLOG_FULL, reason, profile))
        else:
            job.agent_ticket = self.agent_lanes.get(message.agent_id).take()
            coro = self._run(job)
        self.jobs.add(job)
        # create_task copies the context: faust's current event is this message for the task's life.
        job.task = asyncio.create_task(coro)

    async def _wait_for_room(self) -> None:
        """Backpressure: past `max_pending_messages` unfinished messages, stop reading the stream."""
        while len(self.jobs) >= self.settings.max_pending_messages:
            self._room.clear()
            await self._room.wait()

    # ---- one message ------------------------------------------------------------------------

    async def _run(self, job: Job) -> None:
        try:
            profile = await self._admit(job)
            await self._answer(job, profile)
        except Rejected as rejected:
            await self._finish_rejected(job, rejected)
        except Exception as exc:  # a bug must not lose the message: answer with an error and dead-letter it
            log.exception("flow.internal_error message=%s", job.message.message_id)
            await self._finish_rejected(
                job, Rejected(ReplyStatus.ERROR, ErrorCode.INTERNAL_ERROR, f"internal error: {exc!r}", job.profile)
            )

    async def _admit(self, job: Job) -> dict[str, Any]:
        """Hold the agent's lane turn until the message may call its provider (or is rejected)."""
        agent_id = job.message.agent_id
        lane = self.agent_lanes.get(agent_id)
        try:
            await lane.wait(job.agent_ticket)
            profile = job.profile or await self._wait_for_profile(job)
            if not profile.get("enabled", True):
                raise Rejected(ReplyStatus.AGENT_UNAVAILABLE, ErrorCode.AGENT_DISABLED, "agent is disabled", profile)
            await self._wait_for_window(job, profile)
            job.conversation_ticket = self.conversations.get(job.conversation).take()
            return profile
        finally:
            self.agent_lanes.release(agent_id, job.agent_ticket)

    async def _wait_for_profile(self, job: Job) -> dict[str, Any]:
        lane = self.agent_lanes.get(job.message.agent_id)
        deadline = job.arrived + self.settings.profile_wait_seconds
        while True:
            profile = profile_rows.live(self._profile_row(job.message.agent_id))
            if profile is not None:
                job.profile = profile
                return profile
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                reason = f"no profile for agent {job.message.agent_id!r} within {self.settings.profile_wait_seconds}s"
                raise Rejected(ReplyStatus.AGENT_UNAVAILABLE, ErrorCode.AGENT_UNKNOWN, reason)
            await lane.wait_changed(remaining)

    async def _wait_for_window(self, job: Job, profile: dict[str, Any]) -> None:
        limits = windows.Limits(profile["rate_limits"].get("rpm"), profile["rate_limits"].get("tpm"))
        if limits.rpm is None and limits.tpm is None:
            return  # nothing to enforce: no window row to read or write (two table writes per message)
        estimate = self._estimate(job, profile)
        while True:
            now_ms = int(time.time() * 1000)
            decision = windows.admit(
                self.tables.rate_windows.get(job.message.agent_id), now_ms, self.window_ms, limits, estimate
            )
            if decision.admitted:
                self.tables.rate_windows[job.message.agent_id] = decision.row
                job.reserved = (decision.row["start_ms"], estimate)
                return
            if decision.never:
                reason = f"request needs about {estimate} tokens; the agent's limit is {limits.tpm} per window"
                raise Rejected(ReplyStatus.RATE_LIMITED, ErrorCode.EXCEEDS_TPM, reason, profile)
            log.debug("rate.deferred agent=%s until_ms=%s", job.message.agent_id, decision.retry_at_ms)
            await asyncio.sleep(max(0.0, (decision.retry_at_ms - now_ms) / 1000))

    def _estimate(self, job: Job, profile: dict[str, Any]) -> int:
        prompt = profile.get("system_prompt", "") + job.message.content
        return windows.estimate_tokens(prompt) + int(profile["max_tokens"])

    async def _answer(self, job: Job, profile: dict[str, Any]) -> None:
        try:
            await self.conversations.get(job.conversation).wait(job.conversation_ticket)
            try:
                answer = await self._call(job, profile)
            except CallFailed as failed:
                job.attempts, job.history = failed.attempts, failed.history
                raise Rejected(ReplyStatus.ERROR, failed.code, failed.reason, profile) from None
            job.attempts = answer.attempts
            self._reconcile(job, answer.result)
            await self._publish_ok(job, profile, answer)
        finally:
            self.conversations.release(job.conversation, job.conversation_ticket)

    async def _call(self, job: Job, profile: dict[str, Any]) -> Answer:
        pipe = ChunkPipe(self.publisher, job.message) if profile.get("stream") else None
        try:
            return await self.caller.call(job.message.message_id, targets_of(profile),
                                          lambda target: self._request(job, profile, target),
                                          self._estimate(job, profile), pipe.put if pipe else None)
        except asyncio.CancelledError:
            if pipe is not None:
                pipe.cancel()
                pipe = None
            raise
        finally:
            if pipe is not None:
                await pipe.close()  # every chunk goes out before the reply (or the error reply)

    def _request(self, job: Job, profile: dict[str, Any], target: Target) -> ChatRequest:
        return ChatRequest(
            model=target.model,
            system_prompt=profile.get("system_prompt", ""),
            messages=(ChatMessage("user", job.message.content),),
            temperature=float(profile.get("temperature", 0.7)),
            max_tokens=int(profile["max_tokens"]),
            stop=tuple(profile.get("stop") or ()),
            tools=tuple({"type": "function", "function": tool["function"]} for tool in profile.get("tools") or ()),
            options=target.options,
        )

    def _reconcile(self, job: Job, result: ChatResult) -> None:
        if job.reserved is None:
            return
        start_ms, reserved = job.reserved
        used = result.usage.input_tokens + result.usage.output_tokens
        row = windows.reconcile(self.tables.rate_windows.get(job.message.agent_id), start_ms, used - reserved)
        if row is not None:
            self.tables.rate_windows[job.message.agent_id] = row

    # ---- outputs ----------------------------------------------------------------------------

    async def _publish_ok(self, job: Job, profile: dict[str, Any], answer: Answer) -> None:
        reply = records.ok_reply(job.message, profile, answer)
        bill = None
        if answer.result.usage.input_tokens or answer.result.usage.output_tokens:
            bill = records.billing(job.message, answer, self.prices)
        outcome = Outcome(reply.model_dump_json().encode(), bill.model_dump_json().encode() if bill else None)
        # Remember first: a redelivery then re-sends these bytes instead of calling the provider again.
        self._remember(job, outcome)
        await self._send_outcome(job, outcome)
        self.counters["answered"] += 1
        self._done(job)

    async def _send_outcome(self, job: Job, outcome: Outcome) -> None:
        await self.publisher.send_reply_bytes(job.message.room_id, outcome.reply)
        if outcome.billing is not None:
            await self.publisher.send_billing_bytes(job.message.agent_id, outcome.billing)

    def _remember(self, job: Job, outcome: Outcome) -> None:
        self.tables.outcomes[job.message.message_id] = outcome_rows.encode(outcome)
        recent = self.recent.setdefault(job.partition, RecentKeys(self.settings.dedupe_per_partition))
        for old in recent.add(job.message.message_id):
            self.tables.outcomes.pop(old, None)

    async def _replay_outcome(self, job: Job, row: bytes) -> None:
        """A redelivered, already-answered message: the same bytes again, no provider call."""
        self.counters["redelivered"] += 1
        log.info("flow.redelivered message=%s", job.message.message_id)
        await self._send_outcome(job, outcome_rows.decode(row))
        self._done(job)

    async def _finish_rejected(self, job: Job, rejected: Rejected) -> None:
        message = job.message
        latency_ms = int((time.monotonic() - job.arrived) * 1000)
        reply = records.failed_reply(
            message_id=message.message_id, agent_id=message.agent_id, room_id=message.room_id,
            user_id=message.user_id, status=rejected.status, code=rejected.code, reason=rejected.reason,
            profile=rejected.profile, latency_ms=latency_ms, attempts=job.attempts,
        )
        dead = records.dead_letter(job.record.origin, rejected.code, rejected.reason, attempts=job.attempts,
                                   message_id=message.message_id, agent_id=message.agent_id, history=job.history)
        await self.publisher.dead_letter(dead)
        await self.publisher.reply(reply)
        self.counters["rejected"] += 1
        self._done(job)

    def _done(self, job: Job) -> None:
        self.jobs.discard(job)
        self._room.set()
        self.acker.done(job.partition, job.slot)

    # ---- rebalances and views ---------------------------------------------------------------

    def reset(self) -> int:
        """Cancel all work (a rebalance revoked our partitions): unacked messages are redelivered."""
        self.resets += 1
        cancelled = 0
        for job in list(self.jobs):
            if job.task is not None and not job.task.done():
                job.task.cancel()
                cancelled += 1
        self.jobs.clear()
        # Fresh lanes: a task cancelled before its first step never runs the `finally` that gives back
        # the agent-lane ticket `_start` took for it, and that stale ticket would block the agent here.
        # Late releases by the cancelled tasks find nothing in the new lanes and do nothing.
        self.agent_lanes = Lanes()
        self.conversations = Lanes()
        self._room.set()
        self.acker.forget_all()
        self.recent.clear()
        self.profile_cache.clear()  # the next owner of a partition may have changed its rows
        return cancelled

    def backlog(self, agent_id: str) -> int:
        lane = self.agent_lanes.peek(agent_id)
        return len(lane) if lane is not None else 0

    def usage(self, agent_id: str, profile: dict[str, Any]) -> dict[str, Any]:
        now_ms = int(time.time() * 1000)
        limits = {"rpm": profile["rate_limits"].get("rpm"), "tpm": profile["rate_limits"].get("tpm")}
        tracked = limits["rpm"] is not None or limits["tpm"] is not None
        win = windows.current(self.tables.rate_windows.get(agent_id), now_ms, self.window_ms)
        return {
            "agent_id": agent_id,
            "window": {"start_ms": win["start_ms"], "length_ms": self.window_ms},
            "tracked": tracked,  # windows are counted only for agents with a limit (billing counts them all)
            "requests": win["requests"] if tracked else None,
            "tokens": win["tokens"] if tracked else None,
            "limits": limits,
            "backlog": self.backlog(agent_id),
        }

