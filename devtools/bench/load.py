"""Load for the benchmark: pre-produced backlogs, an open-loop producer, and a collector that notes when
each output first arrives."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

CONTENT = "How long does shipping to Lisbon take for an order placed today?"  # the same size for every run


def messages(count: int, agents: int, rooms: int) -> list[dict]:
    return [{"messageId": f"b-{uuid.uuid4().hex}", "agentId": f"agent-{i % agents}",
             "roomId": f"room-{i % rooms}", "userId": "u-1", "content": CONTENT} for i in range(count)]


def encode(message: dict) -> tuple[bytes, bytes]:
    return message["roomId"].encode(), json.dumps(message).encode()


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for key, value in records:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def open_loop(bootstrap: str, topic: str, batch: list[dict], rate: float) -> dict[str, float]:
    """Send message i at start + i / rate whatever happens downstream; returns each message's send time."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    sent: dict[str, float] = {}
    try:
        start = time.monotonic()
        for i, message in enumerate(batch):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            key, value = encode(message)
            sent[message["messageId"]] = time.monotonic()
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()
    return sent


@dataclass
class Collector:
    """Reads an output topic from its start; first arrival time per message id."""

    bootstrap: str
    topic: str
    arrivals: dict[str, float] = field(default_factory=dict)
    _task: asyncio.Task | None = None

    async def __aenter__(self) -> "Collector":
        self._consumer = AIOKafkaConsumer(self.topic, bootstrap_servers=self.bootstrap, group_id=None,
                                          auto_offset_reset="earliest", fetch_max_wait_ms=5)
        await self._consumer.start()
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._task.cancel()
        await self._consumer.stop()

    async def _read(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=50)
            now = time.monotonic()
            for records in batches.values():
                for record in records:
                    data = json.loads(record.value)
                    self.arrivals.setdefault(data.get("message_id") or data.get("messageId"), now)

    async def wait_for(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.arrivals) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.arrivals)} of {count} outputs on {self.topic} after {timeout}s")
            await asyncio.sleep(0.05)

    def rate(self) -> float:
        """Outputs per second between the first and the last arrival."""
        times = sorted(self.arrivals.values())
        return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
