"""Test harness: a chat-platform client on plain aiokafka, and profile/message factories.
Workers as subprocesses live in `devtools.workers` (the benchmark uses them too)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import defaultdict
from typing import Any, Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from devtools.workers import Deployment, Worker


async def wait_until(predicate: Callable[[], bool], timeout: float = 60, what: str = "condition") -> None:
    """Poll `predicate` until it holds; fail after `timeout` seconds. Tests wait for what they assert
    with this, never for a fixed time."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            explain = getattr(predicate, "explain", None)  # what the predicate last saw, when it says
            raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f": {explain()}" if explain else ""))
        await asyncio.sleep(0.1)  # the polling interval


def profiles_applied(worker: Worker, versions: dict[str, int]) -> Callable[[], bool]:
    """A predicate for `wait_until`: every agent's profile is in force at (at least) its version, as any
    worker's `/agents/{id}` reports it (it asks the owner). Agents already seen are not asked again."""
    waiting = dict(versions)
    last: list = []

    def applied() -> bool:
        if worker.proc is not None and worker.proc.poll() is not None:  # fail now, with what it said last
            raise AssertionError(f"worker {worker.index} exited with {worker.proc.returncode}:\n{worker.tail(25)}")
        for agent_id, version in list(waiting.items()):
            status, body = worker.get(f"/agents/{agent_id}")
            if status != 200 or body["version"] < version:
                last[:] = [agent_id, status, body]
                return False
            del waiting[agent_id]
        return True

    def explain() -> str:
        ready = worker.get("/ready")
        return f"/agents/{last[0] if last else '?'} answered {last[1:]}; /ready {ready}; log tail:\n{worker.tail(12)}"

    applied.explain = explain
    return applied


def profile(agent_id: str, version: int = 1, **overrides: Any) -> dict[str, Any]:
    return {"agentId": agent_id, "version": version, "name": agent_id, "provider": "echo", "model": "echo-1",
            "systemPrompt": "", "temperature": 0, "maxTokens": 64, "rateLimits": {"rpm": None, "tpm": None},
            **overrides}


def message(agent_id: str, room_id: str = "room-1", content: str = "hello there", **extra: Any) -> dict[str, Any]:
    return {"messageId": f"m-{uuid.uuid4()}", "agentId": agent_id, "roomId": room_id, "userId": "u-1",
            "content": content, **extra}


class Chat:
    """Produces inputs like a chat service and collects every output record with its arrival time."""

    def __init__(self, deployment: Deployment) -> None:
        self.d = deployment
        self.producer = AIOKafkaProducer(bootstrap_servers=deployment.bootstrap, acks="all", linger_ms=5)
        outputs = [deployment.topic(key) for key in ("replies", "reply_chunks", "billing", "dlq", "moderation_events",
                                                   "audio", "provider_grants")]
        self.consumer = AIOKafkaConsumer(*outputs, bootstrap_servers=deployment.bootstrap,
                                         auto_offset_reset="earliest", group_id=None)
        self.seen: dict[str, list[tuple[float, dict]]] = defaultdict(list)
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> "Chat":
        await self.producer.start()
        await self.consumer.start()
        self._task = asyncio.create_task(self._collect())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._task.cancel()
        await self.producer.stop()
        await self.consumer.stop()

    async def _collect(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=200)
            now = time.monotonic()
            for tp, records in batches.items():
                kind = tp.topic.rsplit(".", 1)[-1]
                for record in records:
                    self.seen[kind].append((now, json.loads(record.value)))

    async def send(self, topic_key: str, value: dict | bytes | None, key: bytes | None = None) -> None:
        raw = value if isinstance(value, (bytes, type(None))) else json.dumps(value).encode()
        await self.producer.send_and_wait(self.d.topic(topic_key), raw, key=key)

    async def profile(self, value: dict, topic_key: str = "profile_updated") -> None:
        await self.send(topic_key, value, key=value["agentId"].encode())

    async def message(self, value: dict) -> None:
        await self.send("messages", value, key=value["roomId"].encode())

    async def tool_results(self, value: dict) -> None:
        await self.send("tool_results", value, key=value["roomId"].encode())

    async def signal(self, value: dict) -> None:
        await self.send("moderation_signals", value, key=value["roomId"].encode())

    def moderation_events(self) -> list[dict]:
        return [e for _, e in self.seen["moderation_events"]]

    async def clear(self, agent_id: str, room_id: str, **extra: Any) -> None:
        await self.send("conversation_cleared", {"agentId": agent_id, "roomId": room_id, **extra},
                        key=room_id.encode())

    def replies(self) -> list[dict]:
        return [r for _, r in self.seen["replies"]]

    def replies_by_message(self) -> dict[str, list[dict]]:
        by_id: dict[str, list[dict]] = defaultdict(list)
        for reply in self.replies():
            by_id[reply["message_id"]].append(reply)
        return by_id

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 60, what: str = "condition") -> None:
        await wait_until(predicate, timeout, what)

    async def wait_replies(self, message_ids: list[str], timeout: float = 60) -> dict[str, list[dict]]:
        wanted = set(message_ids)
        await self.wait_for(lambda: wanted <= set(self.replies_by_message()), timeout,
                            f"replies to {len(wanted)} messages")
        return self.replies_by_message()

    def chunks_of(self, message_id: str) -> list[tuple[float, dict]]:
        return [(t, c) for t, c in self.seen["reply_chunks"] if c["message_id"] == message_id]

    def billing_of(self, message_id: str) -> list[dict]:
        return [b for _, b in self.seen["billing"] if b["message_id"] == message_id]

    def dlq_of(self, message_id: str) -> list[dict]:
        return [d for _, d in self.seen["dlq"] if d.get("message_id") == message_id]

    async def grants(self) -> list[dict]:
        """Every capacity owner's answer on `gateway-provider-grants` so far, in the order announced (the
        topic has one partition, whose offsets here start at 0: its end offset is how many records it holds)."""
        tp = TopicPartition(self.d.topic("provider_grants"), 0)
        end = (await self.consumer.end_offsets([tp]))[tp]
        await self.wait_for(lambda: len(self.seen["provider_grants"]) >= end, 30, f"{end} grants read")
        return [g for _, g in self.seen["provider_grants"] if g.get("kind") == "grant"]

    def arrival(self, message_id: str) -> float:
        return min(t for t, r in self.seen["replies"] if r["message_id"] == message_id)
