"""The baseline: a raw aiokafka consume -> produce loop, at-least-once like the gateway (offsets committed
only after what was read has been produced and acknowledged), run as its own process like a worker.

    python -m devtools.bench.passthrough BOOTSTRAP INPUT_TOPIC OUTPUT_TOPIC GROUP
"""

from __future__ import annotations

import asyncio
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

COMMIT_INTERVAL_SECONDS = 1.0  # as the gateway's default


async def relay(bootstrap: str, source: str, group: str, producer: AIOKafkaProducer, handle) -> None:
    """Consume `source` in `group`, `handle` each record (it produces with `producer`), and commit every
    COMMIT_INTERVAL_SECONDS once what was read is written: the loop both raw pipelines share."""
    consumer = AIOKafkaConsumer(source, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    loop = asyncio.get_running_loop()
    last_commit = loop.time()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=100, max_records=500)
            for records in batches.values():
                for record in records:
                    await handle(record)
            if loop.time() - last_commit >= COMMIT_INTERVAL_SECONDS:
                await producer.flush()  # everything read so far is written: now it may be committed
                await consumer.commit()
                last_commit = loop.time()
    finally:
        await consumer.stop()


async def run(bootstrap: str, source: str, target: str, group: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()

    async def forward(record) -> None:
        await producer.send(target, record.value, key=record.key)

    try:
        await relay(bootstrap, source, group, producer, forward)
    finally:
        await producer.stop()


if __name__ == "__main__":
    asyncio.run(run(*sys.argv[1:5]))
