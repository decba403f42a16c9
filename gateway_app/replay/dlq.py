"""`gateway dlq replay --code C --since T`: dead letters of one error code sent back to their topics.

Reads the DLQ topic from T to now, keeps the records with that `error_code` (and `agent_id`), and
produces each one's original record (`key_b64`, `value_b64`) to its `source_topic`, in its
`source_partition` when the topic still has it, with the header `gateway-replay: <run>`. Left out: a
message id that has a final reply meanwhile (see `answered`: sent again, the pipeline would only re-send
that reply), a second dead letter of the same message, and a record the DLQ kept no value of.
"""

from __future__ import annotations

import base64
import json
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from gateway_app.replay.answered import ReplyIndex
from gateway_app.replay.ranges import describe
from gateway_app.replay.reader import TopicReader
from gateway_app.replay.run import CLOCK_SKEW_MS, REPLAY_HEADER, Job
from gateway_app.replay.sources import reply_index
from gateway_app.replay.state import check_run_name, new_run_id
from gateway_app.replay.writer import Writer


@dataclass(frozen=True)
class DeadLetter:
    message_id: str | None
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None

    @property
    def source(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"

    @property
    def identity(self) -> str:
        """What makes two dead letters the same message: its id, else its source record."""
        return self.message_id or self.source


def b64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def matching(value: bytes | None, code: str, agent: str | None) -> DeadLetter | None:
    """The dead letter in a DLQ record, when it has the code (and agent) asked for."""
    try:
        record: Any = json.loads(value or b"")
        if record.get("error_code") != code or (agent is not None and record.get("agent_id") != agent):
            return None
        return DeadLetter(record.get("message_id"), record["source_topic"], int(record["source_partition"]),
                          int(record["source_offset"]), b64(record.get("key_b64")), b64(record.get("value_b64")))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def verdict(dead: DeadLetter, replies: ReplyIndex, taken: set[str]) -> str:
    if dead.value is None:
        return "no original record"
    if dead.partition is None or dead.partition < 0:
        return "no source topic (not an input record: e.g. a profile-service answer)"
    if dead.message_id is not None and replies.answered(dead.message_id):
        return "answered meanwhile"
    if dead.identity in taken:
        return "duplicate"
    return "send"


async def dead_letters(reader: TopicReader, topic: str, since_ms: int, code: str, agent: str | None
                       ) -> list[DeadLetter]:
    found = []
    async for batch in reader.since(topic, since_ms):
        for record in batch.records:
            dead = matching(record.value, code, agent)
            if dead is not None:
                found.append(dead)
    return found


async def run_dlq_replay(job: Job) -> int:
    args, settings = job.args, job.settings
    run = check_run_name(args.run) if args.run else new_run_id("dlq")
    topic = args.topic or settings.topics.dlq
    since = args.since_bound
    kind = "EXECUTE" if job.execute else "dry run, nothing is sent (--execute sends)"
    job.say(f"dlq replay run {run}: {kind}; {topic} from {describe(since)}, code {args.code}"
            + (f", agent {args.agent}" if args.agent else ""))
    async with TopicReader(settings) as reader, AsyncExitStack() as stack:
        found = await dead_letters(reader, topic, since.ms, args.code, args.agent)
        replies = await reply_index(reader, settings.topics.replies, since.ms - CLOCK_SKEW_MS)
        writer = await stack.enter_async_context(Writer(settings)) if job.execute else None
        partitions: dict[str, list[int]] = {}
        taken: set[str] = set()
        for dead in found:
            decision = verdict(dead, replies, taken)
            if decision == "send":
                taken.add(dead.identity)
                if writer is not None:
                    if dead.topic not in partitions:
                        partitions[dead.topic] = await reader.partitions(dead.topic)
                    partition = dead.partition if dead.partition in partitions[dead.topic] else None
                    await writer.send(dead.topic, dead.value, key=dead.key, partition=partition,
                                      headers=[(REPLAY_HEADER, run.encode())])
            shown = ("sent" if writer is not None else "would send") if decision == "send" else f"left out: {decision}"
            job.say(f"  {dead.message_id or '-'}  {dead.source}  {shown}")
        if writer is not None:
            await writer.flush()
    verb = "sent back" if job.execute else "would be sent back"
    job.say(f"{len(taken)} of {len(found)} dead letters with code {args.code} {verb} to their source topics")
    return 0

