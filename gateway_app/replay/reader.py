"""Reading a range of a topic by partition assignment: a consumer with no group id, `assign` and `seek`.

No group means nothing is ever committed and no group is joined: the live workers' committed offsets
(group = GATEWAY_APP_ID) cannot move, whatever a replay reads. The live group's offsets are only read
(an admin request), to tell which records the live workers have not consumed yet.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import AsyncIterator

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from gateway_app.replay.ranges import Bound, PartitionRange, TimeBound, plan, unknown_partitions
from gateway_app.settings import Settings

BATCH_RECORDS = 500
POLL_MS = 500
STALL_POLLS = 60  # polls in a row without a record or a moved position: the range cannot be read (30 s)


def bootstrap(settings: Settings) -> str:
    """`kafka://h1:9092;h2:9092` -> `h1:9092,h2:9092` (as `gateway report` reads it)."""
    return settings.broker_url.split("://", 1)[-1].replace(";", ",")


@dataclass(frozen=True)
class Batch:
    records: list[ConsumerRecord]
    next_offsets: dict[int, int]  # per partition read: where reading goes on after this batch


class TopicReader:
    def __init__(self, settings: Settings) -> None:
        self.servers = bootstrap(settings)
        self.admin = AIOKafkaAdminClient(bootstrap_servers=self.servers)
        # "earliest": a seek below the partition's first offset (retention deleted that part since the run
        # was planned or stopped) goes on from the first record still there; aiokafka's default ("latest")
        # would jump to the end and skip every record that is still on the broker.
        self.consumer = AIOKafkaConsumer(bootstrap_servers=self.servers, group_id=None, enable_auto_commit=False,
                                         auto_offset_reset="earliest")

    async def __aenter__(self) -> "TopicReader":
        await self.admin.start()
        await self.consumer.start()
        # aiokafka's group-less consumer starts a task at start-up; stopped before that task first ran
        # (a command that fails at once), its cancellation escapes `stop()`. Let it run once.
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def partitions(self, topic: str) -> list[int]:
        """The topic's partitions; none when it does not exist."""
        described = await self.admin.describe_topics([topic])
        return sorted(p["partition"] for d in described if not d.get("error_code") for p in d["partitions"])

    async def bounds(self, topic: str, partitions: list[int]) -> tuple[dict[int, int], dict[int, int]]:
        """First offsets and end offsets (the offset the next record gets) per partition."""
        tps = [TopicPartition(topic, p) for p in partitions]
        first = await self.consumer.beginning_offsets(tps)
        end = await self.consumer.end_offsets(tps)
        return {tp.partition: n for tp, n in first.items()}, {tp.partition: n for tp, n in end.items()}

    async def offsets_at(self, topic: str, partitions: list[int], ms: int) -> dict[int, int | None]:
        """Per partition, the first offset whose timestamp is at or after `ms` (None: no such record)."""
        found = await self.consumer.offsets_for_times({TopicPartition(topic, p): ms for p in partitions})
        return {tp.partition: (None if at is None else at.offset) for tp, at in found.items()}

    async def plan(self, topic: str, start: Bound, stop: Bound | None) -> list[PartitionRange]:
        partitions = await self.partitions(topic)
        if not partitions:
            raise ValueError(f"topic {topic} does not exist")
        wrong = unknown_partitions(start, partitions) + unknown_partitions(stop, partitions)
        if wrong:
            raise ValueError(f"topic {topic} has no partition {', '.join(map(str, wrong))}")
        first, end = await self.bounds(topic, partitions)
        start_times = await self.offsets_at(topic, partitions, start.ms) if isinstance(start, TimeBound) else None
        stop_times = await self.offsets_at(topic, partitions, stop.ms) if isinstance(stop, TimeBound) else None
        return plan(partitions, first, end, start, stop, start_times, stop_times)

    async def batches(self, topic: str, ranges: list[PartitionRange],
                      max_records: int = BATCH_RECORDS) -> AsyncIterator[Batch]:
        """The records of the ranges, in offset order per partition, a batch at a time."""
        active = {r.partition: r for r in ranges if r.size}
        if not active:
            return
        tps = {p: TopicPartition(topic, p) for p in active}
        self.consumer.assign(list(tps.values()))
        for partition, wanted in active.items():
            self.consumer.seek(tps[partition], wanted.start)
        idle, last = 0, {}
        while active:
            fetched = await self.consumer.getmany(*[tps[p] for p in active], timeout_ms=POLL_MS,
                                                  max_records=max_records)
            records = [record for tp, batch in fetched.items() if tp.partition in active
                       for record in batch if record.offset < active[tp.partition].end]
            nexts = {}
            for partition in list(active):
                nexts[partition] = min(await self.consumer.position(tps[partition]), active[partition].end)
                if nexts[partition] >= active[partition].end:
                    self.consumer.pause(tps[partition])  # read to its end: not fetched any more
                    del active[partition]
            idle = 0 if records or nexts != last else idle + 1
            if idle >= STALL_POLLS:
                raise RuntimeError(f"{topic}: no progress reading partitions {sorted(active)} at {nexts}")
            last = nexts
            if records or not active:
                yield Batch(records, nexts)

    async def since(self, topic: str, ms: int | None) -> AsyncIterator[Batch]:
        """From the first record at or after `ms` (None: the topic's start) to the topic's end as it is now."""
        partitions = await self.partitions(topic)
        if not partitions:
            return
        first, end = await self.bounds(topic, partitions)
        at = await self.offsets_at(topic, partitions, ms) if ms is not None else {}
        ranges = [PartitionRange(p, first[p] if ms is None else (end[p] if at[p] is None else at[p]), end[p])
                  for p in partitions]
        async for batch in self.batches(topic, ranges):
            yield batch

    async def first_timestamp(self, topic: str, ranges: list[PartitionRange]) -> int | None:
        """The earliest timestamp among the first records of the ranges (None: all empty)."""
        heads = [PartitionRange(r.partition, r.start, min(r.start + 1, r.end)) for r in ranges]
        stamps = [record.timestamp async for batch in self.batches(topic, heads) for record in batch.records]
        return min(stamps, default=None)

    async def committed(self, group: str, topic: str, partitions: list[int]) -> dict[int, int | None]:
        """The group's committed offsets on the topic (read only; None: nothing committed there)."""
        tps = [TopicPartition(topic, p) for p in partitions]
        found = await self.admin.list_consumer_group_offsets(group, partitions=tps)
        offsets = {tp.partition: meta.offset for tp, meta in found.items()}
        return {p: offsets[p] if offsets.get(p, -1) >= 0 else None for p in partitions}
