"""Test harness: gateway workers as subprocesses, and a chat-platform client on plain aiokafka."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import murmur2

from devtools.kafka_local import free_port

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Deployment:
    """One isolated gateway deployment: its own app id (consumer group, changelogs) and topic names."""

    bootstrap: str
    name: str
    partitions: int = 4
    env: dict[str, str] = field(default_factory=dict)

    def topic(self, key: str) -> str:
        return f"{self.name}.{key}"

    @property
    def topics(self) -> dict[str, str]:
        keys = ["messages", "profile_created", "profile_updated", "profile_deleted", "replies", "reply_chunks",
                "billing", "dlq", "agent_events"]
        return {key: self.topic(key) for key in keys}

    def environment(self) -> dict[str, str]:
        env = {
            "GATEWAY_BROKER_URL": f"kafka://{self.bootstrap}",
            "GATEWAY_APP_ID": self.name,
            "GATEWAY_TOPIC_PARTITIONS": str(self.partitions),
            "GATEWAY_BROKER_SESSION_TIMEOUT_SECONDS": "6",
            "GATEWAY_COMMIT_INTERVAL_SECONDS": "0.5",
            **{f"GATEWAY_TOPIC_{key.upper()}": name for key, name in self.topics.items()},
        }
        return {**env, **self.env}

    def partition_of(self, agent_id: str) -> int:
        """The internal partition of an agent (murmur2, as aiokafka's default partitioner)."""
        return (murmur2(agent_id.encode()) & 0x7FFFFFFF) % self.partitions


class Worker:
    def __init__(self, deployment: Deployment, tmp: Path, index: int) -> None:
        self.deployment = deployment
        self.data_dir = tmp / f"worker-{index}"
        self.log_path = tmp / f"worker-{index}.log"
        self.web_port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Worker":
        env = {**os.environ, **self.deployment.environment(), "GATEWAY_WEB_PORT": str(self.web_port)}
        cmd = [sys.executable, "-m", "gateway_app.cli", "worker", "--data-dir", str(self.data_dir),
               "--web-port", str(self.web_port), "-l", "info"]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        return self

    def wait_ready(self, timeout: float = 90) -> float:
        """Seconds until /ready answered 200; fails the test (never skips) with the log tail."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.tail()}")
            if self.get("/ready")[0] == 200:
                return time.monotonic() - started
            time.sleep(0.3)
        raise AssertionError(f"worker not ready within {timeout}s:\n{self.tail()}")

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}{path}", timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            body = exc.read()
            try:
                return exc.code, json.loads(body)
            except ValueError:
                return exc.code, body.decode(errors="replace")
        except OSError:
            return 0, None

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 30) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


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
        outputs = [deployment.topic(key) for key in ("replies", "reply_chunks", "billing", "dlq")]
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

    def replies(self) -> list[dict]:
        return [r for _, r in self.seen["replies"]]

    def replies_by_message(self) -> dict[str, list[dict]]:
        by_id: dict[str, list[dict]] = defaultdict(list)
        for reply in self.replies():
            by_id[reply["message_id"]].append(reply)
        return by_id

    async def wait_for(self, predicate, timeout: float = 60, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

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

    def arrival(self, message_id: str) -> float:
        return min(t for t, r in self.seen["replies"] if r["message_id"] == message_id)
