"""Writing what a replay produces: records sent in order, acknowledged by the broker before the run's
resume point moves past them (`flush`), and the run's own topics created before their first record.

Every topic is tracked before its first send: aiokafka's client otherwise forgets, at its next metadata
refresh, the partitions of topics it learnt only from the all-topics refresh at start, and records
queued for them never leave (the same fix as the worker's `kafka.producer`).
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from gateway_app.replay.reader import bootstrap
from gateway_app.settings import Settings

TOPIC_EXISTS = 36  # Kafka's TOPIC_ALREADY_EXISTS error code


class Writer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap(settings), acks="all", enable_idempotence=True)
        self.tracked: set[str] = set()
        self.pending: list[asyncio.Future] = []

    async def __aenter__(self) -> "Writer":
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()  # sends what is queued; a run that failed has not saved past it

    async def create_topics(self, names: list[str]) -> None:
        """The run's own topics, with the deployment's partition count and replication (kept if they exist)."""
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap(self.settings))
        await admin.start()
        try:
            response = await admin.create_topics([NewTopic(name, self.settings.topic_partitions,
                                                           self.settings.topic_replication) for name in names])
        finally:
            await admin.close()
        for name, code, *detail in response.topic_errors:
            if code not in (0, TOPIC_EXISTS):
                raise RuntimeError(f"cannot create topic {name}: error {code} {detail}")

    async def send(self, topic: str, value: bytes | None, key: bytes | None = None,
                   headers: list[tuple[str, bytes]] | None = None, partition: int | None = None) -> None:
        if topic not in self.tracked:
            await self.producer.client.add_topic(topic)
            self.tracked.add(topic)
        self.pending.append(await self.producer.send(topic, value, key=key, headers=headers, partition=partition))

    async def flush(self) -> None:
        """Wait until the broker acknowledged everything sent so far (raises if a send failed)."""
        pending, self.pending = self.pending, []
        await asyncio.gather(*pending)
