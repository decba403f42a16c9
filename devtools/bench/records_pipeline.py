"""The limit of the gateway's topology: a raw aiokafka pipeline that moves the records the gateway moves per
message and does nothing else, at-least-once like the gateway and the passthrough (offsets committed once a
second, after what was read has been produced and acknowledged), run as its own process like a worker.

    python -m devtools.bench.records_pipeline BOOTSTRAP INPUT INTERNAL REPLIES BILLING OUTCOMES GROUP

Per message: consume the input record, produce it re-keyed by agent id to INTERNAL (the gateway's
`agent_events`), consume that, then produce a reply, a billing event and one row to the compacted OUTCOMES
topic (the gateway's `message-outcomes` changelog). The sizes are those of the gateway's records for the
bench's message with the echo provider (read off a run's topics); the reply carries `message_id` so the
bench's collector times it. The gateway also writes a small room row, a room event and usage rows per
message; those are left out (the brief: the records above, no more).
"""

from __future__ import annotations

import asyncio
import json
import sys

from aiokafka import AIOKafkaProducer

from devtools.bench.passthrough import relay

INTERNAL_BYTES, REPLY_BYTES, BILLING_BYTES, OUTCOME_BYTES = 1250, 670, 524, 1233


def _padded(fields: dict, size: int) -> bytes:
    body = json.dumps({**fields, "pad": ""}).encode()
    return json.dumps({**fields, "pad": "x" * max(0, size - len(body))}).encode()


async def run(bootstrap: str, source: str, internal: str, replies: str, billing: str, outcomes: str,
              group: str) -> None:
    # One producer for both stages, as a faust worker has one.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()

    async def intake(record) -> None:
        message = json.loads(record.value)  # the re-key needs the agent id, as the gateway's intake does
        await producer.send(internal, _padded({"message": message}, INTERNAL_BYTES),
                            key=message["agentId"].encode())

    async def processor(record) -> None:
        message = json.loads(record.value)["message"]
        ids = {"message_id": message["messageId"], "agent_id": message["agentId"], "room_id": message["roomId"]}
        await producer.send(replies, _padded(ids, REPLY_BYTES), key=record.key)
        await producer.send(billing, _padded(ids, BILLING_BYTES), key=record.key)
        await producer.send(outcomes, _padded(ids, OUTCOME_BYTES), key=message["messageId"].encode())

    try:
        await asyncio.gather(relay(bootstrap, source, f"{group}-intake", producer, intake),
                             relay(bootstrap, internal, f"{group}-processor", producer, processor))
    finally:
        await producer.stop()


if __name__ == "__main__":
    asyncio.run(run(*sys.argv[1:8]))
