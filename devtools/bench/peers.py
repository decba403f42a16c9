"""The peers section: the gateway against the gateway users would pick instead (the LiteLLM proxy), both
calling one local fake OpenAI server, and against the limit of its own topology (a raw aiokafka pipeline
moving the same records), on one broker, interleaved round by round (the order rotates by one each round).

Each run starts its processes fresh, warms them up (the first calls import and build things) and then
measures: the rate at saturation (the proxy: `--peers-concurrency` HTTP clients in a process of their own;
the gateway and the pipelines: draining a pre-produced backlog, first to last reply) and the CPU the
measured processes used meanwhile, from /proc of their process trees (the gateway's workers and the
broker apart; the proxy's whole tree; the pipeline's process). Then the latency of the gateway and of the
proxy at its best worker count at one offered load, open loop: half the slower one's rate.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from devtools.bench import load, measures, peer_proxy
from devtools.bench.cpu import tree_cpu
from devtools.bench.fake_openai import FakeOpenAI
from devtools.bench.measures import AGENTS, PARTITIONS, Passthrough, percentile
from devtools.bench.report import code
from devtools.kafka_local import KafkaBroker
from devtools.workers import REPO, Worker

ROOMS = 1000
OPENAI_PROFILE = {"provider": "openai", "model": "gpt-4o-mini"}
# (system, workers): every run of a round; the table's rows in this order.
RUNS = (("proxy", 1), ("proxy", 2), ("openai", 1), ("openai", 2), ("echo", 1), ("echo", 2), ("pipeline", 1),
        ("passthrough", 1))


@dataclass
class Run:
    rate: float  # answers/s at saturation
    count: int  # answers measured
    cpu: float  # CPU seconds of the measured process trees (the gateway's workers, the proxy, the pipeline)
    broker_cpu: float  # CPU seconds of the broker in the same time (Kafka runs only)
    fake_cpu: float  # CPU seconds of the fake OpenAI server in the same time
    shares: list[int] = field(default_factory=list)  # answers per gateway worker (/health counters)
    errors: int = 0


def openai_env(fake: FakeOpenAI) -> dict[str, str]:
    return {"OPENAI_API_KEY": "sk-bench-dummy", "OPENAI_BASE_URL": fake.url, "GATEWAY_PRELOAD_PROVIDERS": "openai"}


async def _answered(worker: Worker) -> int:
    status, body = await asyncio.to_thread(worker.get, "/health")
    return body["counters"].get("answered", 0) if status == 200 else 0


async def gateway_run(broker: KafkaBroker, tmp: Path, fake: FakeOpenAI, provider: str, workers: int,
                      count: int, warm: int, env: dict[str, str] | None = None) -> Run:
    """`workers` fresh workers of one deployment drain `warm` messages, then a backlog of `count`; `env`:
    settings for the workers (the levers section's variants)."""
    d = measures.deployment(broker, **(openai_env(fake) if provider == "openai" else {}), **(env or {}))
    nodes = [Worker(d, tmp, i) for i in range(workers)]
    for node in nodes:  # one data dir and log per worker of this deployment
        node.data_dir, node.log_path = tmp / f"{d.name}-{node.index}", tmp / f"{d.name}-{node.index}.log"
        node.start()
    try:
        for node in nodes:
            await asyncio.to_thread(node.wait_ready, 120)
        extra = OPENAI_PROFILE if provider == "openai" else None
        await load.produce(broker.bootstrap, d.topic("profile_updated"), measures.profile_records(AGENTS, extra=extra))
        deadline = time.monotonic() + 120
        while sum([(await asyncio.to_thread(n.get, "/health"))[1]["counters"]["profiles_applied"] for n in nodes]) \
                < AGENTS:
            if time.monotonic() > deadline:
                raise TimeoutError("profiles not applied:\n" + "\n".join(n.tail(20) for n in nodes))
            await asyncio.sleep(0.2)
        topic = d.topic("messages")
        async with load.Collector(broker.bootstrap, d.topic("replies")) as replies:
            await load.produce(broker.bootstrap, topic, [load.encode(m) for m in load.messages(warm, AGENTS, ROOMS)])
            await replies.wait_for(warm, 300)
            await asyncio.sleep(1.0)  # let the warm-up's commits and changelog writes settle
            before = [await _answered(n) for n in nodes]
            cpu = sum(tree_cpu(n.proc.pid) for n in nodes), tree_cpu(broker.pid), tree_cpu(fake.proc.pid)
            batch = load.messages(count, AGENTS, ROOMS)
            await load.produce(broker.bootstrap, topic, [load.encode(m) for m in batch])
            await replies.wait_for(warm + count, 900)
            used = (sum(tree_cpu(n.proc.pid) for n in nodes) - cpu[0], tree_cpu(broker.pid) - cpu[1],
                    tree_cpu(fake.proc.pid) - cpu[2])
            shares = [await _answered(n) - b for n, b in zip(nodes, before)]
            rate = _rate([replies.arrivals[m["messageId"]] for m in batch])
    finally:
        for node in nodes:
            await asyncio.to_thread(node.stop)
    return Run(rate, count, *used, shares=shares)


def _rate(times: list[float]) -> float:
    times = sorted(times)
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0


async def proxy_run(venv: Path, tmp: Path, fake: FakeOpenAI, workers: int, count: int, warm: int,
                    concurrency: int) -> Run:
    proxy = peer_proxy.Proxy(venv, fake.url, workers, tmp)
    try:
        await asyncio.to_thread(proxy.wait_ready)
        await asyncio.to_thread(peer_proxy.load, proxy.url, "closed", concurrency, warm)
        cpu = proxy.cpu(), tree_cpu(fake.proc.pid)
        out = await asyncio.to_thread(peer_proxy.load, proxy.url, "closed", concurrency, count)
        used = proxy.cpu() - cpu[0], tree_cpu(fake.proc.pid) - cpu[1]
    finally:
        await asyncio.to_thread(proxy.stop)
    return Run(out["rate"], len(out["latencies"]), used[0], 0.0, used[1], errors=out["errors"])


async def kafka_baseline_run(broker: KafkaBroker, kind: str, count: int, warm: int) -> Run:
    """The one-hop passthrough, or the pipeline moving the gateway's records (`records_pipeline`)."""
    tag = uuid.uuid4().hex[:6]
    names = {k: f"{kind}-{k}-{tag}" for k in ("in", "internal", "replies", "billing", "outcomes")}
    await measures.create_topics(broker, [names[k] for k in ("in", "internal", "replies", "billing")])
    await _create_compacted(broker, names["outcomes"])
    target = names["replies"]
    if kind == "pipeline":
        proc = _spawn(["devtools.bench.records_pipeline", broker.bootstrap, names["in"], names["internal"],
                       names["replies"], names["billing"], names["outcomes"], f"rp-{tag}"])
    else:
        proc = Passthrough(broker, names["in"], target).proc
    try:
        async with load.Collector(broker.bootstrap, target) as out:
            await load.produce(broker.bootstrap, names["in"], [load.encode(m) for m in load.messages(warm, AGENTS, ROOMS)])
            await out.wait_for(warm, 300)
            await asyncio.sleep(1.0)
            cpu = tree_cpu(proc.pid), tree_cpu(broker.pid)
            batch = load.messages(count, AGENTS, ROOMS)
            await load.produce(broker.bootstrap, names["in"], [load.encode(m) for m in batch])
            await out.wait_for(warm + count, 600)
            used = tree_cpu(proc.pid) - cpu[0], tree_cpu(broker.pid) - cpu[1]
            rate = _rate([out.arrivals[m["messageId"]] for m in batch])
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 10)
    return Run(rate, count, used[0], used[1], 0.0)


def _spawn(args: list[str]):
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-m", *args], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


async def _create_compacted(broker: KafkaBroker, name: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:  # as the gateway's changelogs: compacted, the table's partition count
        await admin.create_topics([NewTopic(name, PARTITIONS, 1, topic_configs={"cleanup.policy": "compact"})])
    finally:
        await admin.close()


async def gateway_latency(broker: KafkaBroker, tmp: Path, fake: FakeOpenAI, rate: float, seconds: float) -> list[float]:
    """End-to-end seconds per message through one fresh `openai` worker, open loop at `rate` after a warm-up."""
    gw = await measures.Gateway.start(broker, tmp, extra=OPENAI_PROFILE, **openai_env(fake))
    try:
        topic = gw.d.topic("messages")
        async with load.Collector(broker.bootstrap, gw.d.topic("replies")) as replies:
            warm = await load.open_loop(broker.bootstrap, topic,
                                        load.messages(int(rate * measures.WARMUP_SECONDS), AGENTS, ROOMS), rate)
            await replies.wait_for(len(warm), 120)
            sent = await load.open_loop(broker.bootstrap, topic, load.messages(int(rate * seconds), AGENTS, ROOMS), rate)
            await replies.wait_for(len(warm) + len(sent), 300)
            return [replies.arrivals[m] - t for m, t in sent.items()]
    finally:
        await asyncio.to_thread(gw.stop)


async def proxy_latency(venv: Path, tmp: Path, fake: FakeOpenAI, workers: int, rate: float,
                        seconds: float) -> list[float]:
    proxy = peer_proxy.Proxy(venv, fake.url, workers, tmp)
    try:
        await asyncio.to_thread(proxy.wait_ready)
        await asyncio.to_thread(peer_proxy.load, proxy.url, "open", rate, int(rate * measures.WARMUP_SECONDS))
        out = await asyncio.to_thread(peer_proxy.load, proxy.url, "open", rate, int(rate * seconds))
    finally:
        await asyncio.to_thread(proxy.stop)
    return out["latencies"]


async def measure(args, broker: KafkaBroker, tmp: Path) -> dict[str, object]:
    started = time.monotonic()
    venv = await asyncio.to_thread(peer_proxy.install)
    fake = await asyncio.to_thread(FakeOpenAI)
    runs: dict[tuple[str, int], list[Run]] = {r: [] for r in RUNS}
    try:
        for round_no in range(args.rounds):
            shift = round_no % len(RUNS)
            for system, workers in RUNS[shift:] + RUNS[:shift]:
                if system == "proxy":
                    run = await proxy_run(venv, tmp, fake, workers, args.peers_requests, args.peers_warmup,
                                          args.peers_concurrency)
                elif system in ("openai", "echo"):
                    count = args.peers_requests if system == "openai" else args.peers_messages
                    run = await gateway_run(broker, tmp, fake, system, workers, count, args.peers_warmup)
                else:
                    run = await kafka_baseline_run(broker, system, args.peers_messages, args.peers_warmup)
                runs[(system, workers)].append(run)
            print(f"peers round {round_no + 1}: " + "; ".join(
                f"{s} x{w} {runs[(s, w)][-1].rate:.0f}/s, CPU {runs[(s, w)][-1].cpu / runs[(s, w)][-1].count * 1000:.2f}"
                f" ms" + (f" + broker {runs[(s, w)][-1].broker_cpu / runs[(s, w)][-1].count * 1000:.2f} ms"
                          if runs[(s, w)][-1].broker_cpu else "") +
                (f" shares {runs[(s, w)][-1].shares}" if w > 1 and s != "proxy" else "") for s, w in RUNS),
                flush=True)
        best_proxy = max((1, 2), key=lambda w: measures.median([r.rate for r in runs[("proxy", w)]]))
        slower = min(measures.median([r.rate for r in runs[("proxy", best_proxy)]]),
                     measures.median([r.rate for r in runs[("openai", 1)]]))
        half = slower / 2
        latency: dict[str, list[tuple[float, float]]] = {"gateway": [], "proxy": []}
        for round_no in range(args.rounds):
            order = ("gateway", "proxy") if round_no % 2 == 0 else ("proxy", "gateway")
            for who in order:
                lat = (await gateway_latency(broker, tmp, fake, half, args.peers_latency_seconds) if who == "gateway"
                       else await proxy_latency(venv, tmp, fake, best_proxy, half, args.peers_latency_seconds))
                latency[who].append((percentile(lat, 0.5), percentile(lat, 0.99)))
            print(f"peers latency round {round_no + 1} at {half:.0f}/s: " + "; ".join(
                f"{w} p50 {latency[w][-1][0] * 1000:.1f} ms p99 {latency[w][-1][1] * 1000:.1f} ms" for w in latency),
                flush=True)
    finally:
        fake.stop()
    return {"runs": runs, "best_proxy": best_proxy, "half": half, "latency": latency, "version": peer_proxy.VERSION,
            "code": code(), "minutes": (time.monotonic() - started) / 60}
