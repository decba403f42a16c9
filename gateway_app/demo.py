"""`gateway demo`: publish a demo `echo` agent profile and a message, then print the gateway's reply.

It talks to Kafka the way a chat service would (plain aiokafka producer/consumer, JSON values).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from gateway_app.settings import Settings, get_settings

DEMO_AGENT = "demo-echo-agent"


def bootstrap(settings: Settings) -> str:
    return settings.broker_url.split("://", 1)[-1].replace(";", ",")


def demo_profile(version: int) -> dict:
    return {
        "agentId": DEMO_AGENT,
        "version": version,
        "name": "Demo echo agent",
        "provider": "echo",
        "model": "echo-1",
        "systemPrompt": "You repeat what you are told.",
        "temperature": 0,
        "maxTokens": 256,
        "rateLimits": {"rpm": 60, "tpm": 100000},
    }


def demo_message() -> dict:
    return {
        "messageId": f"demo-{uuid.uuid4()}",
        "agentId": DEMO_AGENT,
        "roomId": "demo-room",
        "userId": "demo-user",
        "content": "Hello from the ai-gateway demo!",
    }


async def run_demo(settings: Settings, timeout: float = 60.0) -> dict:
    servers = bootstrap(settings)
    consumer = AIOKafkaConsumer(settings.topics.replies, bootstrap_servers=servers, auto_offset_reset="latest",
                                group_id=None)
    producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all")
    await consumer.start()
    await producer.start()
    try:
        await _wait_assigned(consumer)
        message = demo_message()
        await producer.send_and_wait(settings.topics.profile_updated, json.dumps(demo_profile(int(time.time()))).encode(),
                                     key=DEMO_AGENT.encode())
        await producer.send_and_wait(settings.topics.messages, json.dumps(message).encode(), key=b"demo-room")
        print(f"published profile for {DEMO_AGENT!r} and message {message['messageId']!r}; waiting for the reply")
        return await _wait_reply(consumer, message["messageId"], timeout)
    finally:
        await producer.stop()
        await consumer.stop()


async def _wait_assigned(consumer: AIOKafkaConsumer) -> None:
    # With group_id=None the consumer fetches all partitions; make it resolve "latest" before we produce.
    while not consumer.assignment():
        await asyncio.sleep(0.1)
    for tp in consumer.assignment():
        await consumer.position(tp)


async def _wait_reply(consumer: AIOKafkaConsumer, message_id: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batches = await consumer.getmany(timeout_ms=500)
        for records in batches.values():
            for record in records:
                reply = json.loads(record.value)
                if reply.get("message_id") == message_id:
                    return reply
    raise TimeoutError(f"no reply for {message_id} within {timeout}s")


def main() -> int:
    reply = asyncio.run(run_demo(get_settings()))
    print(json.dumps(reply, indent=2))
    return 0 if reply["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
