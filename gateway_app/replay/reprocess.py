"""`gateway replay reprocess`: the messages of a range that were never answered go through the live
pipeline again (after a provider outage, or once a bug is fixed).

Each record of the range is produced again to its own topic and partition (same key, value and headers,
plus `gateway-replay: <run>`), unless its message id already has a final reply (see `answered`), the live
workers have not consumed it yet (its offset is at or past the live group's committed offset: they will
answer it themselves), or it was already sent by this run (the same message twice in the range). The
live pipeline then runs each one once: its outcome row (if any) says it failed, so it is tried again;
an answered message would only get its recorded reply re-sent, which is why those are left out here.
"""

from __future__ import annotations

import json
from collections import Counter
from contextlib import AsyncExitStack
from decimal import Decimal

from aiokafka import ConsumerRecord

from gateway_app.replay.answered import ReplyIndex, ids_of
from gateway_app.replay.costs import (Estimate, SpendCap, TokenEstimate, estimate_cost, estimate_tokens,
                                      price_table)
from gateway_app.replay.profiles import ProfileHistory
from gateway_app.replay.ranges import resume_points
from gateway_app.replay.reader import Batch, TopicReader
from gateway_app.replay.run import CLOCK_SKEW_MS, REPLAY_HEADER, Job, OpenRun, drive, open_run, print_plan
from gateway_app.replay.sources import profile_history, reply_index
from gateway_app.replay.writer import Writer

LISTED = 20  # message ids printed at most


def decide(ids: tuple[str, str] | None, agent: str | None, offset: int, committed: int | None,
           replies: ReplyIndex, sent: set[str]) -> str:
    """What happens to one record of the range: `send`, or why not."""
    if ids is None:
        return "unreadable"
    message_id, agent_id = ids
    if agent is not None and agent_id != agent:
        return "other_agent"
    if committed is None or offset >= committed:
        return "not_consumed"
    if replies.answered(message_id):
        return "answered"
    if message_id in sent:
        return "duplicate"
    return "send"


def content_of(value: bytes | None) -> str:
    try:
        data = json.loads(value or b"")
    except ValueError:
        return ""
    content = data.get("content") if isinstance(data, dict) else None
    return content if isinstance(content, str) else ""


class Reprocess:
    def __init__(self, job: Job, opened: OpenRun, replies: ReplyIndex, profiles: ProfileHistory,
                 committed: dict[int, int | None], writer: Writer | None) -> None:
        self.job, self.state = job, opened.state
        self.replies, self.profiles, self.committed, self.writer = replies, profiles, committed, writer
        self.table = price_table(None)
        self.cap = SpendCap(job.args.max_cost_usd, Decimal(self.state.totals.get("estimated_usd", "0")))
        self.counts: Counter[str] = Counter()
        self.estimate = Estimate()
        self.sent: set[str] = set()
        self.sent_before = int(self.state.totals.get("sent", 0))  # by earlier invocations of this run
        self.listed: list[str] = []

    async def handle(self, batch: Batch) -> dict[int, int]:
        nexts = batch.next_offsets
        for index, record in enumerate(batch.records):
            if not await self.one(record):
                self.state.stopped = (f"spend cap ${self.job.args.max_cost_usd} reached before partition "
                                      f"{record.partition} offset {record.offset}")
                nexts = resume_points([(r.partition, r.offset) for r in batch.records], index, batch.next_offsets)
                break
        # Saved with the resume point: the cap covers the whole run, across resumes.
        self.state.totals["estimated_usd"] = f"{self.cap.spent:f}"
        self.state.totals["sent"] = self.sent_before + len(self.sent)
        return nexts

    async def one(self, record: ConsumerRecord) -> bool:
        """Handle one record; False when the spend cap stops the run before it."""
        ids = ids_of(record.value)
        verdict = decide(ids, self.job.args.agent, record.offset, self.committed.get(record.partition),
                         self.replies, self.sent)
        if verdict == "send":
            cost, tokens = self.cost_of(ids[1], record.value)
            if not self.cap.reserve(cost or Decimal(0)):
                return False
            self.cap.settle(cost or Decimal(0), cost or Decimal(0))  # the CLI never learns the real cost
            self.estimate.add(cost, tokens)
            self.sent.add(ids[0])
            verdict = "send_error_only" if self.replies.seen(ids[0]) else "send_no_reply"
            await self.send(record)
            if len(self.listed) < LISTED:
                self.listed.append(f"  {ids[0]} (partition {record.partition}, offset {record.offset})")
        self.counts[verdict] += 1
        return True

    def cost_of(self, agent_id: str, value: bytes | None) -> tuple[Decimal | None, TokenEstimate | None]:
        """At the agent's current profile: the live pipeline binds a message sent again to it."""
        profile = self.profiles.latest(agent_id)
        if profile is None:
            return None, None
        tokens = estimate_tokens(profile, content_of(value))
        return estimate_cost(self.table, profile.provider, profile.model, tokens), tokens

    async def send(self, record: ConsumerRecord) -> None:
        if self.writer is None:
            return
        headers = [*(record.headers or ()), (REPLAY_HEADER, self.state.run.encode())]
        await self.writer.send(record.topic, record.value, key=record.key, headers=headers, partition=record.partition)

    def note(self) -> str:
        return f"{self.counts['send_error_only'] + self.counts['send_no_reply']} sent"

    def report(self) -> None:
        sent = self.counts["send_error_only"] + self.counts["send_no_reply"]
        verb = "sent again" if self.writer is not None else "would be sent again"
        self.job.say(f"{sent} messages {verb} to {self.state.topic} ({self.counts['send_error_only']} with only "
                     f"error replies, {self.counts['send_no_reply']} with no reply)")
        self.job.say(f"left out: {self.counts['answered']} answered, {self.counts['not_consumed']} not consumed by "
                     f"the live workers yet, {self.counts['other_agent']} of other agents, {self.counts['duplicate']} "
                     f"duplicates, {self.counts['unreadable']} without a message id and agent id")
        self.job.say(self.estimate.line())
        for line in self.listed:
            self.job.say(line)
        if sent > len(self.listed):
            self.job.say(f"  ... and {sent - len(self.listed)} more")
        if self.sent_before:
            self.job.say(f"(and {self.sent_before} sent by earlier invocations of this run)")
        if self.state.stopped:
            self.job.say(f"STOPPED: {self.state.stopped}; raise --max-cost-usd and run the same command with "
                         f"--run {self.state.run} to go on")


async def lag_warning(job: Job, reader: TopicReader) -> None:
    """Messages the intake forwarded but the workers have not answered yet have no reply either: sent
    again now, they would get their reply twice (same ids). Say so when the workers are behind."""
    topic = job.settings.topics.agent_events
    partitions = await reader.partitions(topic)
    if not partitions:
        return
    committed = await reader.committed(job.settings.app_id, topic, partitions)
    _, end = await reader.bounds(topic, partitions)
    behind = sum(end[p] - (committed[p] or 0) for p in partitions)
    if behind:
        job.say(f"warning: the live workers have {behind} records of {topic} to process; a message among them "
                f"has no reply yet and would be answered twice (same ids) if sent again: wait for them")


async def run_reprocess(job: Job) -> int:
    topic = job.args.topic or job.settings.topics.messages
    signature = {"from": job.args.start_text, "to": job.args.stop_text, "agent": job.args.agent}
    async with TopicReader(job.settings) as reader, AsyncExitStack() as stack:
        opened = await open_run(job, reader, "reprocess", topic, signature)
        print_plan(job, opened)
        since = None if opened.state.range_start_ms is None else opened.state.range_start_ms - CLOCK_SKEW_MS
        replies = await reply_index(reader, job.settings.topics.replies, since)
        profiles = await profile_history(reader, job.settings.topics)
        committed = await reader.committed(job.settings.app_id, topic, [r.partition for r in opened.state.ranges])
        await lag_warning(job, reader)
        writer = await stack.enter_async_context(Writer(job.settings)) if job.execute else None
        mode = Reprocess(job, opened, replies, profiles, committed, writer)
        await drive(job, reader, opened, writer, mode.handle, mode.note)
        mode.report()
    return 0
