"""Tools of the fault-injection suite: traffic at a steady rate, a sampler of uncommitted input (what a
crash or rebalance may redeliver), and a readout of the verifier's figures."""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from devtools.workers import Deployment
from tests.integration.harness import Chat, message, wait_until
from tests.integration.verifier import Report, Sent, verify

REVOKE_LINE = re.compile(r"rebalance\.revoked partitions=(?P<partitions>\d+) cancelled_jobs=(?P<cancelled>\d+)")
INPUT_KEYS = ("messages", "profile_created", "profile_updated", "profile_deleted", "agent_events")


def conversation_traffic(agents: list[str], rooms: int, count: int, seed: int = 7) -> list[dict]:
    """`count` messages spread over agents x rooms, in a shuffled but reproducible order."""
    rng = random.Random(seed)
    return [message(rng.choice(agents), room_id=f"room-{rng.randrange(rooms)}", content=f"message {i} here")
            for i in range(count)]


async def send_at_rate(chat: Chat, messages: list[dict], rate: float, sent: list[Sent]) -> None:
    """Open loop: message i goes out at start + i / rate, whatever the gateway is doing."""
    start = time.monotonic()
    for i, msg in enumerate(messages):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # pacing: the traffic's own schedule
        await chat.producer.send(chat.d.topic("messages"), json.dumps(msg).encode(), key=msg["roomId"].encode())
        sent.append(Sent(msg["messageId"], msg["agentId"], msg["roomId"]))
    await chat.producer.flush()


@dataclass
class UncommittedSampler:
    """Samples, every `interval`, how many input records the gateway's group has not committed yet.

    A crash or rebalance can redeliver at most what was uncommitted while it happened: the bound for
    raw duplicate replies is the sum, over the disruptions, of the largest sample around each.
    """

    deployment: Deployment
    interval: float = 0.25
    samples: list[tuple[float, int]] = field(default_factory=list)
    events: list[tuple[str, float]] = field(default_factory=list)

    async def run(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.deployment.bootstrap)
        offsets = AIOKafkaConsumer(bootstrap_servers=self.deployment.bootstrap, group_id=None)
        await admin.start()
        await offsets.start()
        try:
            partitions = [TopicPartition(self.deployment.topic(k), p) for k in INPUT_KEYS
                          for p in range(self.deployment.partitions)]
            while True:
                try:
                    self.samples.append((time.monotonic(), await self._uncommitted(admin, offsets, partitions)))
                except Exception:  # a broker restart makes a sample fail; the next one is taken anyway
                    pass
                await asyncio.sleep(self.interval)  # the sampling period
        finally:
            await offsets.stop()
            await admin.close()

    async def _uncommitted(self, admin, offsets, partitions) -> int:
        committed = await admin.list_consumer_group_offsets(self.deployment.name, partitions=partitions)
        ends = await offsets.end_offsets(partitions)
        return sum(max(0, ends[tp] - (committed[tp].offset if tp in committed and committed[tp].offset >= 0 else 0))
                   for tp in partitions)

    def disruption(self, what: str) -> None:
        self.events.append((what, time.monotonic()))

    def bound(self, window: float) -> int:
        """Sum over disruptions of the most records uncommitted in [event - 1 s, event + window]."""
        total = 0
        for _, at in self.events:
            around = [n for t, n in self.samples if at - 1.0 <= t <= at + window]
            total += max(around, default=0)
        return total


def say(capsys, text: str) -> None:
    """Print past pytest's capture: the scenario's figures belong in the CI log, pass or fail."""
    with capsys.disabled():
        print(text)


def _verify(chat: Chat, sent: list[Sent], **checks) -> Report:
    return verify(sent, [r for _, r in chat.seen["replies"]], [b for _, b in chat.seen["billing"]],
                  [d for _, d in chat.seen["dlq"]], **checks)


async def settle_and_verify(chat: Chat, sent: list[Sent], *, timeout: float, title: str, capsys,
                            settle: float = 3.0, outputs_timeout: float = 30.0, **checks) -> Report:
    """Wait until every sent message has a reply and the verifier is satisfied (billing and DLQ records
    arrive after their replies), let late duplicates arrive, verify, print."""
    try:
        await chat.wait_replies([m.message_id for m in sent], timeout=timeout)
        await wait_until(lambda: _verify(chat, sent, **checks).ok, outputs_timeout, "billing and DLQ records")
    except AssertionError:
        pass  # the verifier counts and names what is missing
    # Late duplicates (redeliveries after a disruption) are counted against the bound, not waited for:
    # give them time to arrive before counting.
    await asyncio.sleep(settle)
    replies = [r for _, r in chat.seen["replies"]]
    report = _verify(chat, sent, **checks)
    with capsys.disabled():  # the figures belong in the CI log, pass or fail (see `say`)
        print(f"\n[{title}]")
        for line in report.lines():
            print(f"  {line}")
        for mid in report.order_violations[:2]:
            _explain_order(sent, replies, mid)
        if report.lost:
            by_agent = {m.message_id: m.agent_id for m in sent}
            partitions = Counter(chat.d.partition_of(by_agent[mid]) for mid in report.lost)
            print(f"  lost messages per internal partition: {dict(partitions)}")
    return report


def _explain_order(sent: list[Sent], replies: list[dict], violator: str) -> None:
    """Print the conversation of an out-of-order reply: every reply in arrival order, with its position."""
    by_id = {m.message_id: (i, m) for i, m in enumerate(sent)}
    _, message = by_id[violator]
    print(f"  conversation of {violator} ({message.agent_id}, {message.room_id}), replies in arrival order:")
    for reply in replies:
        if reply["agent_id"] == message.agent_id and reply["room_id"] == message.room_id:
            position = by_id.get(reply["message_id"], ("?",))[0]
            print(f"    sent #{position} {reply['message_id'][-8:]} created {reply['created_at']} "
                  f"latency {reply['latency_ms']} ms attempts {reply['attempts']}")


@dataclass
class WorkerLogFigures:
    """What the workers' own logs say about redeliveries (logs are appended across restarts)."""

    republished: int = 0      # `flow.redelivered`: a remembered outcome sent again
    absorbed: int = 0         # `flow.absorbed`: a redelivery whose outputs were durable, acked silently
    rebalances: int = 0       # `rebalance.revoked` lines of workers that held partitions, over all workers
    cancelled_jobs: int = 0   # messages in flight that those rebalances cancelled

    @staticmethod
    def mark(workers) -> dict:
        """Where each worker's log stands now: `read(workers, since=mark)` counts only what came after."""
        return {w.log_path: len(w.log_path.read_text(errors="replace").splitlines()) for w in workers}

    @classmethod
    def read(cls, workers, since: dict | None = None) -> "WorkerLogFigures":
        figures = cls()
        for path in {w.log_path for w in workers}:
            for line in path.read_text(errors="replace").splitlines()[(since or {}).get(path, 0):]:
                figures.republished += "flow.redelivered" in line
                figures.absorbed += "flow.absorbed" in line
                revoke = REVOKE_LINE.search(line)
                if revoke and revoke["partitions"] != "0":  # not a start's empty revoke
                    figures.rebalances += 1
                    figures.cancelled_jobs += int(revoke["cancelled"])
        return figures

    def line(self) -> str:
        return (f"workers' logs: {self.republished} outcomes re-published, {self.absorbed} redeliveries absorbed, "
                f"{self.rebalances} revokes cancelling {self.cancelled_jobs} messages in flight")


async def forwarded_more_than_once(deployment: Deployment) -> int:
    """How many internal records repeat a message the intake had already forwarded (re-forwards of input
    it had not committed when it crashed or lost its partitions): read the whole internal topic."""
    consumer = AIOKafkaConsumer(bootstrap_servers=deployment.bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(deployment.topic("agent_events"), p) for p in range(deployment.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        seen: Counter = Counter()
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    event = json.loads(record.value)
                    if event["kind"] == "message":
                        seen[event["payload"]["message_id"]] += 1
        return sum(n - 1 for n in seen.values())
    finally:
        await consumer.stop()
