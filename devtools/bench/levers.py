"""The levers section: the same gateway with each speed lever off and on, one worker, interleaved round by
round on one broker (the order rotates each round), so a lever's before and after come from one run.

A lever is a setting, so "before" is the gateway as it was without it: every variant sets all of them.
Each run drains a backlog through a fresh worker with the `openai` provider (one local fake OpenAI server)
and with echo, and reports answers/s and CPU per answer of the worker and of the broker (see `peers`).
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timezone
from pathlib import Path

from devtools.bench import peers
from devtools.bench.fake_openai import FakeOpenAI
from devtools.bench.measures import median
from devtools.bench.report import _number, code
from devtools.kafka_local import KafkaBroker

# Every lever off: the gateway before them (the SDKs' default httpx stack, no linger, no usage rows kept).
BEFORE = {"GATEWAY_PROVIDER_HTTP_TRANSPORT": "httpx", "GATEWAY_PRODUCER_LINGER_MS": "0",
          "GATEWAY_USAGE_CACHE_ROWS": "0"}
VARIANTS: dict[str, dict[str, str]] = {
    "before (every lever off)": BEFORE,
    "aiohttp under the SDK": {**BEFORE, "GATEWAY_PROVIDER_HTTP_TRANSPORT": "aiohttp"},
    "decoded usage rows kept": {**BEFORE, "GATEWAY_USAGE_CACHE_ROWS": "4096"},
    "producer linger 2 ms": {**BEFORE, "GATEWAY_PRODUCER_LINGER_MS": "2"},
    "producer linger 5 ms": {**BEFORE, "GATEWAY_PRODUCER_LINGER_MS": "5"},
    "the defaults (every lever as shipped)": {},
}
SYSTEMS = ("openai", "echo")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--levers-requests", type=int, default=1_500, help="messages per openai round")
    parser.add_argument("--levers-messages", type=int, default=3_000, help="messages per echo round")


async def measure(args: argparse.Namespace, broker: KafkaBroker, tmp: Path) -> dict[str, object]:
    started = time.monotonic()
    fake = FakeOpenAI()
    runs: dict[tuple[str, str], list[peers.Run]] = {(v, s): [] for v in VARIANTS for s in SYSTEMS}
    keys = list(runs)
    try:
        for round_no in range(args.rounds):
            shift = round_no % len(keys)
            for variant, system in keys[shift:] + keys[:shift]:
                count = args.levers_requests if system == "openai" else args.levers_messages
                # echo needs no SDK: not importing them all makes each fresh worker ready sooner
                env = VARIANTS[variant] if system == "openai" else {"GATEWAY_PRELOAD_PROVIDERS": "", **VARIANTS[variant]}
                run = await peers.gateway_run(broker, tmp, fake, system, 1, count, args.peers_warmup, env=env)
                runs[(variant, system)].append(run)
                print(f"levers round {round_no + 1}: {variant}, {system}: {run.rate:.0f}/s, worker "
                      f"{run.cpu / run.count * 1000:.2f} ms + broker {run.broker_cpu / run.count * 1000:.2f} ms "
                      "per answer", flush=True)
    finally:
        fake.stop()
    return {"runs": runs, "code": code(), "minutes": (time.monotonic() - started) / 60}


def render_levers(detail: dict, host: dict[str, str], args: argparse.Namespace) -> str:
    runs = detail["runs"]

    def figures(variant: str, system: str) -> str:
        group = runs[(variant, system)]
        return " | ".join(_number(x) for x in (
            median([r.rate for r in group]), median([r.cpu / r.count * 1000 for r in group]),
            median([r.broker_cpu / r.count * 1000 for r in group])))

    lines = [
        "## Levers",
        "",
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC with `{args.command}` (rounds {args.rounds}, "
        f"medians, every run interleaved round by round in a rotating order, a fresh worker each; "
        f"{args.levers_requests} messages per openai run and {args.levers_messages} per echo run, each after "
        f"{args.peers_warmup} answers not counted; {detail['code'] or 'commit unknown'}; {detail['minutes']:.1f} min).",
        "",
        "Machine: " + "; ".join(f"{k} {v}" for k, v in host.items()) + ".",
        "",
        "One worker, 8 partitions, 100 agents, 1,000 rooms; a backlog drained first to last reply; CPU per answer",
        "from /proc over the measured run. Each row turns one lever on over the first row; the last row is the",
        "gateway as shipped (`GATEWAY_PROVIDER_HTTP_TRANSPORT`, `GATEWAY_USAGE_CACHE_ROWS`,",
        "`GATEWAY_PRODUCER_LINGER_MS` at their defaults).",
        "",
        "| variant | openai: answers/s | openai: worker CPU (ms) | openai: broker CPU (ms) "
        "| echo: answers/s | echo: worker CPU (ms) | echo: broker CPU (ms) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for variant in VARIANTS:
        lines.append(f"| {variant} | {figures(variant, 'openai')} | {figures(variant, 'echo')} |")
    return "\n".join(lines) + "\n" + detail.get("notes", "")
