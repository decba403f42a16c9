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
    return "\n".join(lines) + "\n" + detail.get("notes", NOTES)


NOTES = """
### Reading the figures

- **The HTTP stack under the SDKs** is the lever that shows. The openai and anthropic SDKs ship an
  aiohttp-backed client of their own (`DefaultAioHttpClient`), and it spends markedly less CPU per call
  than their default httpx client. httpx runs its asyncio I/O through anyio, which is most of what the
  profile in the issue found inside the SDK. In a loop of SDK calls alone, in one process against the
  same fake server, it went from 1.68–1.75 to 1.19–1.35 ms per call. Errors keep their codes: the
  classifier reads the aiohttp error under the SDK's exception (see docs/providers.md, "HTTP stack").
  Kept: the default.
- **Decoded usage rows kept** (`GATEWAY_USAGE_CACHE_ROWS`). Each message read its agent's day row and
  user row twice (the plan) and once more to add to them, decoding JSON and decimals each time. This was
  about a tenth of the worker's samples in a profile under a backlog. The rows are now kept decoded,
  up to 4,096 per worker, cleared at every rebalance. Kept.
- **Producer linger** (`GATEWAY_PRODUCER_LINGER_MS`) saves broker CPU per message. It does not reliably
  save the worker's CPU, and it adds up to its value of latency at each of a message's two hops. Not
  made the default: operators who trade latency for broker CPU can set it.
- **uvloop** was tried as the worker's loop (faust supports it) in the run of 2026-12-01 00:12 (commit
  8e5dba8, same sizes).
  - openai: 238 answers/s at 4.17 ms of worker CPU, against 199 at 4.39 ms with every lever off.
  - echo: 592/s at 1.61 ms, against 505 at 1.60 ms.
  - with the other levers on: 291/s at 3.27 ms (openai) and 605 at 1.40 ms (echo). The other levers
    alone gave 257 at 3.19 ms and 520 at 1.48 ms.

  No CPU saving beyond the noise between rounds, so it was removed again (one dependency less).
- **Still missed**, with the reasons the profile gives:
  - The worker CPU per message target (2 ms with openai; 0.5 ms with echo). The rest of a worker's CPU
    is spread over faust's per-record delivery (fetch loop, conductor, stream, event, acks: about 40 %
    of samples) and aiokafka's producer. No single spot of the gateway's own stands out, and a
    per-batch redesign of the faust agents is the lever left.
  - The ratios against the peer follow from that figure (the Peers section).
"""
