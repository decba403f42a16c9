"""The collaboration measures: an agent answering alone, consulting a collaborator through `consult_agent`
(`tool`), and refining an `always` collaborator's draft, on one broker and one fake OpenAI server.

Each run is a fresh worker; the three kinds are interleaved round by round in a rotating order. Latency is
end to end (sent to the input topic -> its reply read from the reply topic) at an open-loop rate, after a
warm-up at the same rate; provider calls per message are the fake server's request count over the
measured messages (every call is also one billing event).

What the figures mean for a chain: `tool` costs the asking call, the collaborator's call and the answering
call, plus two hops through Kafka (the question to the collaborator's partition, its answer back);
`always` costs the collaborator's call and the agent's own, plus the same two hops.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from devtools.bench import load, measures, peers
from devtools.bench.fake_openai import FakeOpenAI
from devtools.bench.measures import WARMUP_SECONDS, median, percentile, wait_health
from devtools.bench.report import code
from devtools.kafka_local import KafkaBroker
from devtools.workers import Worker

KINDS = ("alone", "tool", "always")  # the table's rows, in this order
AGENTS = 10  # per kind, each with its own collaborator
ROOMS = 200


def profile_records() -> list[tuple[bytes, bytes]]:
    def one(agent_id: str, collaborators: list[dict]) -> tuple[bytes, bytes]:
        value = {"agentId": agent_id, "version": 1, "provider": "openai", "model": "gpt-4o-mini", "maxTokens": 64,
                 "collaborators": collaborators}
        return agent_id.encode(), json.dumps(value).encode()

    records = []
    for i in range(AGENTS):
        records += [one(f"alone-{i}", []), one(f"helper-{i}", []),
                    one(f"tool-{i}", [{"agentId": f"helper-{i}", "when": "tool"}]),
                    one(f"always-{i}", [{"agentId": f"helper-{i}", "when": "always"}])]
    return records


def messages(kind: str, count: int) -> list[dict]:
    def content(i: int) -> str:
        return f"CONSULT:helper-{i % AGENTS}:{load.CONTENT}" if kind == "tool" else load.CONTENT

    return [{"messageId": f"c-{uuid.uuid4().hex}", "agentId": f"{kind}-{i % AGENTS}", "roomId": f"room-{i % ROOMS}",
             "userId": "u-1", "content": content(i)} for i in range(count)]


async def run_one(broker: KafkaBroker, tmp: Path, fake: FakeOpenAI, kind: str, rate: float,
                  seconds: float) -> tuple[list[float], float]:
    """End-to-end seconds per message, and provider calls per message, for one kind on a fresh worker."""
    d = measures.deployment(broker, **peers.openai_env(fake))
    worker = Worker(d, tmp, 0)
    worker.data_dir, worker.log_path = tmp / d.name, tmp / f"{d.name}.log"
    worker.start()
    try:
        await asyncio.to_thread(worker.wait_ready, 120)
        records = profile_records()
        await load.produce(broker.bootstrap, d.topic("profile_updated"), records)
        await wait_health(worker, lambda h: h["counters"]["profiles_applied"] >= len(records), 120)
        async with load.Collector(broker.bootstrap, d.topic("replies")) as replies:
            warm = await load.open_loop(broker.bootstrap, d.topic("messages"),
                                        messages(kind, int(rate * WARMUP_SECONDS)), rate)
            await replies.wait_for(len(warm), 120)
            before = fake.requests() or 0
            sent = await load.open_loop(broker.bootstrap, d.topic("messages"), messages(kind, int(rate * seconds)),
                                        rate)
            await replies.wait_for(len(warm) + len(sent), 300)
            calls = ((fake.requests() or 0) - before) / len(sent)
            return [replies.arrivals[m] - t for m, t in sent.items()], calls
    finally:
        worker.stop()


async def measure(args: argparse.Namespace, broker: KafkaBroker, tmp: Path) -> dict[str, object]:
    started = time.monotonic()
    fake = FakeOpenAI()
    latencies: dict[str, list[float]] = {kind: [] for kind in KINDS}
    p50s: dict[str, list[float]] = {kind: [] for kind in KINDS}
    calls: dict[str, list[float]] = {kind: [] for kind in KINDS}
    try:
        for round_no in range(args.rounds):
            shift = round_no % len(KINDS)
            for kind in KINDS[shift:] + KINDS[:shift]:
                seconds, per_message = await run_one(broker, tmp, fake, kind, args.collaboration_rate,
                                                     args.latency_seconds)
                latencies[kind] += seconds
                p50s[kind].append(percentile(seconds, 0.5) * 1000)
                calls[kind].append(per_message)
                print(f"collaboration round {round_no + 1}: {kind}: p50 {p50s[kind][-1]:.1f} ms, "
                      f"{per_message:.2f} calls per message", flush=True)
    finally:
        fake.stop()
    return {"latencies": latencies, "p50s": p50s, "calls": calls, "code": code(),
            "minutes": (time.monotonic() - started) / 60}


def render_collaboration(detail: dict, host: dict[str, str], args: argparse.Namespace) -> str:
    p50s, calls, latencies = detail["p50s"], detail["calls"], detail["latencies"]
    alone = median(p50s["alone"])
    lines = [
        "## Collaboration",
        "",
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC with `{args.command}` (rounds {args.rounds}, "
        f"a fresh worker per run, the kinds interleaved in a rotating order; {args.collaboration_rate:g} messages/s "
        f"for {args.latency_seconds:g} s per run after {WARMUP_SECONDS:g} s of warm-up; "
        f"{detail['code'] or 'commit unknown'}; {detail['minutes']:.1f} min).",
        "",
        "Machine: " + "; ".join(f"{k} {v}" for k, v in host.items()) + ".",
        "",
        f"One worker, {AGENTS} agents of each kind over {ROOMS} rooms, every agent on the openai provider against",
        "one local fake server (answering at once). `alone`: no collaborators; `tool`: the model calls",
        "`consult_agent` and answers with the collaborator's answer; `always`: the collaborator drafts, the",
        "agent refines. Latency: median of the rounds' p50, and p99 over every measured message.",
        "",
        "| kind | p50 (ms) | p99 (ms) | p50 added over alone (ms) | provider calls per message |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind in KINDS:
        p50 = median(p50s[kind])
        lines.append(f"| {kind} | {p50:.1f} | {percentile(latencies[kind], 0.99) * 1000:.1f} | "
                     f"{p50 - alone:+.1f} | {median(calls[kind]):.2f} |")
    return "\n".join(lines) + "\n" + NOTES


NOTES = """
### Reading the figures

- Each consultation adds a collaborator's whole pipeline (its admission, conversation, checks and call)
  and two records through the broker: the question, on the collaborator's partition, and its answer,
  back on the asker's. With a provider that answers in 1–2 s, the calls dominate: `tool` takes about
  three calls' time, `always` two.
- Money: every call is billed to the agent that made it. `tool` pays the asking call (its prompt
  includes the `consult_agent` tool's definition: 481 characters of JSON with one collaborator, about
  120 tokens by the gateway's characters / 4 estimate; providers count their own way), the collaborator's call and the
  answering call (which carries the question and the answer); `always` pays the collaborator's call and
  the agent's own, which carries the draft.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--collaboration-rate", type=float, default=20.0,
                        help="messages/s of each collaboration latency run (open loop)")
