"""faust's Kafka producer, made to keep metadata for every topic it has sent to.

aiokafka's client refreshes metadata for the topics it tracks, or for all topics while it tracks none.
faust forces such a refresh each time it declares a topic (table changelogs, outputs), so the producer
learns those topics' partitions and then sends to them without ever tracking them. The first send to a
topic it has not seen (one created after that refresh) makes that topic the only one tracked; every
refresh from then on asks for it alone, and the partitions of all the others drop out. Batches already
queued for them wait for a leader that never appears: a flush hangs until a later send to the same
topic happens to bring it back, and in the revoke step of a rebalance, or on shutdown, none comes
(reproduced: the demo worker hung on SIGTERM; a join/leave run stalled its rebalance until the
rebalance timeout). So every topic is tracked before its first record is queued.
"""

from __future__ import annotations

from typing import Any, Awaitable

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types.tuples import RecordMetadata


class TrackingProducer(faust_aiokafka.Producer):
    def __post_init__(self) -> None:
        super().__post_init__()
        self._tracked: set[str] = set()

    async def on_start(self) -> None:
        self._tracked = set()  # a new aiokafka producer (and client) is made on every start
        await super().on_start()

    async def send(self, topic: str, *args: Any, **kwargs: Any) -> Awaitable[RecordMetadata]:
        if topic not in self._tracked:
            # Adding a topic forces a metadata refresh; queued batches wait for it, none is lost.
            self._ensure_producer().client.add_topic(topic)
            self._tracked.add(topic)
        return await super().send(topic, *args, **kwargs)
