"""The benchmark's measurements. Each takes a running broker and a scratch directory and returns figures;
gateway and passthrough runs of one measure are interleaved, round by round, on the same broker."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from devtools.bench import load
from devtools.kafka_local import KafkaBroker
from devtools.workers import REPO, Deployment, Worker

PARTITIONS = 8
AGENTS = 100
WARMUP_SECONDS = 3.0


def deployment(broker: KafkaBroker, **env: str) -> Deployment:
    return Deployment(broker.bootstrap, f"bench-{uuid.uuid4().hex[:8]}", partitions=PARTITIONS,
                      env={"GATEWAY_COMMIT_INTERVAL_SECONDS": "1.0", "GATEWAY_BROKER_SESSION_TIMEOUT_SECONDS": "10",
                           **env})


def profile_records(count: int, latency_ms: int = 0, version: int = 1,
                    context: dict | None = None, extra: dict | None = None) -> list[tuple[bytes, bytes]]:
    """`count` echo profiles; with `context` (e.g. {"maxTurns": 20, "maxTokens": 4000}) they keep conversations;
    `extra`: more profile fields (e.g. `moderation`, `language`), as the profile's JSON spells them."""
    return [(f"agent-{i}".encode(), json.dumps({
        "agentId": f"agent-{i}", "version": version, "provider": "echo", "model": "echo-1", "maxTokens": 64,
        "options": {"latency_ms": latency_ms} if latency_ms else {},
        **({"context": context} if context else {}), **(extra or {})}).encode()) for i in range(count)]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Gateway:
    """One deployment with its worker, profiles loaded."""

    d: Deployment
    worker: Worker

    @classmethod
    async def start(cls, broker: KafkaBroker, tmp: Path, agents: int = AGENTS, latency_ms: int = 0,
                    context: dict | None = None, extra: dict | None = None, **env: str) -> "Gateway":
        d = deployment(broker, **env)
        worker = Worker(d, tmp, 0)
        worker.data_dir, worker.log_path = tmp / d.name, tmp / f"{d.name}.log"  # one of each per deployment
        worker.start()
        await asyncio.to_thread(worker.wait_ready, 120)
        await load.produce(broker.bootstrap, d.topic("profile_updated"),
                           profile_records(agents, latency_ms, context=context, extra=extra))
        await wait_health(worker, lambda h: h["counters"]["profiles_applied"] >= agents, 120)
        return cls(d, worker)

    def stop(self) -> None:
        self.worker.stop()


async def wait_health(worker: Worker, predicate, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = await asyncio.to_thread(worker.get, "/health")
        if status == 200 and predicate(body):
            return body
        await asyncio.sleep(0.2)
    raise TimeoutError(f"worker health condition not met within {timeout}s:\n{worker.tail(20)}")


class Passthrough:
    """The baseline process: consume a topic, produce every record to another one."""

    def __init__(self, broker: KafkaBroker, source: str, target: str) -> None:
        cmd = [sys.executable, "-m", "devtools.bench.passthrough", broker.bootstrap, source, target,
               f"pt-{uuid.uuid4().hex[:8]}"]
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env={**os.environ})

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def gateway_backlog_rate(broker: KafkaBroker, tmp: Path, count: int, latency_ms: int = 0,
                               rooms: int = 1000, **env: str) -> tuple[float, float]:
    """Replies/s draining a pre-produced backlog (first to last reply), and the worker's RSS under it."""
    gw = await Gateway.start(broker, tmp, latency_ms=latency_ms, **env)
    try:
        batch = load.messages(count, AGENTS, rooms)
        async with load.Collector(broker.bootstrap, gw.d.topic("replies")) as replies:
            peak = 0.0
            await load.produce(broker.bootstrap, gw.d.topic("messages"), [load.encode(m) for m in batch])
            deadline = time.monotonic() + 600
            while len(replies.arrivals) < count and time.monotonic() < deadline:
                peak = max(peak, rss_mb(gw.worker.proc.pid))
                await asyncio.sleep(0.2)
            await replies.wait_for(count, 10)
            return replies.rate(), peak
    finally:
        gw.stop()


async def passthrough_backlog_rate(broker: KafkaBroker, count: int) -> float:
    source, target = f"pt-in-{uuid.uuid4().hex[:6]}", f"pt-out-{uuid.uuid4().hex[:6]}"
    await create_topics(broker, [source, target])
    batch = load.messages(count, AGENTS, 1000)
    await load.produce(broker.bootstrap, source, [load.encode(m) for m in batch])
    async with load.Collector(broker.bootstrap, target) as out:
        baseline = Passthrough(broker, source, target)
        try:
            await out.wait_for(count, 600)
        finally:
            baseline.stop()
        return out.rate()


async def create_topics(broker: KafkaBroker, names: list[str]) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, PARTITIONS, 1) for n in names])
    finally:
        await admin.close()


async def latency_at(broker: KafkaBroker, tmp: Path, rate: float, seconds: float) -> tuple[list[float], list[float]]:
    """End-to-end seconds per message, open loop at `rate`: (gateway, passthrough)."""
    count = int(rate * seconds)
    gw = await Gateway.start(broker, tmp)
    try:
        async with load.Collector(broker.bootstrap, gw.d.topic("replies")) as replies:
            # Warm up at the same rate first (first calls import and build things), then measure.
            warm = await load.open_loop(broker.bootstrap, gw.d.topic("messages"),
                                        load.messages(int(rate * WARMUP_SECONDS), AGENTS, 1000), rate)
            await replies.wait_for(len(warm), 120)
            sent = await load.open_loop(broker.bootstrap, gw.d.topic("messages"), load.messages(count, AGENTS, 1000),
                                        rate)
            await replies.wait_for(len(warm) + count, 120)
            gateway = [replies.arrivals[m] - t for m, t in sent.items()]
    finally:
        gw.stop()
    source, target = f"pt-in-{uuid.uuid4().hex[:6]}", f"pt-out-{uuid.uuid4().hex[:6]}"
    await create_topics(broker, [source, target])
    async with load.Collector(broker.bootstrap, target) as out:
        baseline = Passthrough(broker, source, target)
        try:
            warm = await load.open_loop(broker.bootstrap, source, load.messages(int(rate * WARMUP_SECONDS), AGENTS, 1000),
                                        rate)
            await out.wait_for(len(warm), 120)
            sent = await load.open_loop(broker.bootstrap, source, load.messages(count, AGENTS, 1000), rate)
            await out.wait_for(len(warm) + count, 120)
            passthrough = [out.arrivals[m] - t for m, t in sent.items()]
        finally:
            baseline.stop()
    return gateway, passthrough


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def median(values: list[float]) -> float:
    return statistics.median(values)


async def recovery(broker: KafkaBroker, tmp: Path, profiles: int, rounds: int, messages: int) -> dict[str, float]:
    """With `profiles` rows in the profile table: time to /ready empty, warm (data dir kept) and cold (data
    dir deleted: everything from the changelog), medians of `rounds`; RSS idle and draining `messages`."""
    d = deployment(broker)
    worker = Worker(d, tmp, 0)
    worker.data_dir, worker.log_path = tmp / d.name, tmp / f"{d.name}.log"
    empty_ready = await asyncio.to_thread(worker.start().wait_ready, 120)
    await load.produce(broker.bootstrap, d.topic("profile_updated"), profile_records(profiles))
    await wait_health(worker, lambda h: h["counters"]["profiles_applied"] >= profiles, 900)
    await asyncio.sleep(3.0)  # let the changelog writes and commits settle
    idle_rss = rss_mb(worker.proc.pid)
    load_rss = await _drain_rss(broker, d, worker, messages, profiles)
    warm, cold, restore_rates = [], [], []
    for _ in range(rounds):
        await asyncio.to_thread(worker.stop)
        warm.append(await asyncio.to_thread(worker.start().wait_ready, 300))
    for _ in range(rounds):
        await asyncio.to_thread(worker.stop)
        shutil.rmtree(worker.data_dir)
        cold.append(await asyncio.to_thread(worker.start().wait_ready, 900))
        # The worker times its own restore (rows written / seconds from the start of the restore to its end).
        restore = (await wait_health(worker, lambda h: not h["restore"]["in_progress"], 60))["restore"]
        if restore["rows"] < profiles:
            raise AssertionError(f"cold start restored {restore['rows']} rows, expected at least {profiles}")
        restore_rates.append(restore["rows_per_second"])
    status, body = await asyncio.to_thread(worker.get, f"/agents/agent-{profiles - 1}")
    await asyncio.to_thread(worker.stop)
    if status != 200:
        raise AssertionError(f"profile agent-{profiles - 1} not restored: {status} {body}")
    cold_ready = median(cold)
    return {"empty_ready_s": empty_ready, "warm_ready_s": median(warm), "cold_ready_s": cold_ready,
            "restore_rows_per_s": median(restore_rates), "idle_rss_mb": idle_rss,
            "load_rss_mb": load_rss}


async def _drain_rss(broker: KafkaBroker, d: Deployment, worker: Worker, count: int, agents: int) -> float:
    """Peak RSS while the worker answers `count` messages spread over all `agents`."""
    batch = load.messages(count, agents, 1000)
    peak = rss_mb(worker.proc.pid)
    async with load.Collector(broker.bootstrap, d.topic("replies")) as replies:
        await load.produce(broker.bootstrap, d.topic("messages"), [load.encode(m) for m in batch])
        deadline = time.monotonic() + 600
        while len(replies.arrivals) < count and time.monotonic() < deadline:
            peak = max(peak, rss_mb(worker.proc.pid))
            await asyncio.sleep(0.2)
    return peak
