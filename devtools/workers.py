"""Gateway workers as subprocesses of one isolated deployment: used by the integration tests, the
fault-injection suite and the benchmark."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka.partitioner import murmur2

from devtools.kafka_local import free_port

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Deployment:
    """One isolated gateway deployment: its own app id (consumer group, changelogs) and topic names."""

    bootstrap: str
    name: str
    partitions: int = 4
    env: dict[str, str] = field(default_factory=dict)
    static_membership: bool = False  # each worker gets GATEWAY_INSTANCE_ID = <name>-<index>

    def topic(self, key: str) -> str:
        return f"{self.name}.{key}"

    @property
    def topics(self) -> dict[str, str]:
        keys = ["messages", "profile_created", "profile_updated", "profile_deleted", "tool_results",
                "conversation_cleared", "moderation_signals", "replies", "reply_chunks", "billing", "dlq",
                "moderation_events", "agent_events", "room_events", "provider_capacity", "provider_grants",
                "audio"]
        return {key: self.topic(key) for key in keys}

    def environment(self) -> dict[str, str]:
        env = {
            "GATEWAY_BROKER_URL": f"kafka://{self.bootstrap}",
            "GATEWAY_APP_ID": self.name,
            "GATEWAY_TOPIC_PARTITIONS": str(self.partitions),
            "GATEWAY_BROKER_SESSION_TIMEOUT_SECONDS": "6",
            "GATEWAY_COMMIT_INTERVAL_SECONDS": "0.5",
            # Most workers here answer from the echo provider: importing every SDK before /ready would add
            # seconds to each start. Deployments that call SDK providers name them (provider_env does).
            "GATEWAY_PRELOAD_PROVIDERS": "",
            **{f"GATEWAY_TOPIC_{key.upper()}": name for key, name in self.topics.items()},
        }
        return {**env, **self.env}

    def partition_of(self, agent_id: str) -> int:
        """The internal partition of an agent (murmur2, as aiokafka's default partitioner)."""
        return (murmur2(agent_id.encode()) & 0x7FFFFFFF) % self.partitions


class Worker:
    def __init__(self, deployment: Deployment, tmp: Path, index: int) -> None:
        self.deployment = deployment
        self.index = index
        self.data_dir = tmp / f"worker-{index}"
        self.log_path = tmp / f"worker-{index}.log"
        self.web_port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Worker":
        env = {**os.environ, **self.deployment.environment(), "GATEWAY_WEB_PORT": str(self.web_port)}
        if self.deployment.static_membership:
            env["GATEWAY_INSTANCE_ID"] = f"{self.deployment.name}-{self.index}"
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

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.web_port}{path}", headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
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
