"""The collector section: what a full garbage collection costs a worker once it has warmed up, with what
warm-up loaded (the default providers' SDKs, the moderation word lists) left in the collector's sight
against frozen out of it (`gateway_app.app.freeze_long_lived`, which a worker runs after warm-up).

Each probe is a fresh interpreter that builds the gateway as `python -m gateway_app` does (the app, then
the CLI's freeze), runs the worker's warm-up (word lists, then every provider of
`GATEWAY_PRELOAD_PROVIDERS`' default), and then, per variant, counts the objects a full collection scans
and times five full collections (the median). The variants alternate round by round. A full collection
blocks the event loop: every call in flight waits it out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

from devtools.bench.measures import median
from devtools.bench.report import code

VARIANTS = ("in sight", "frozen")  # what warm-up loaded: left to the collector (before) / frozen (now)

PROBE = """
import asyncio, gc, json, sys, time
from gateway_app.app import create_gateway, freeze_long_lived
from gateway_app.moderation import checks
from gateway_app.settings import get_settings

settings = get_settings()
gateway = create_gateway(settings)
freeze_long_lived()  # the CLI's, before the app starts
checks.warm_up(with_language=False)
failed = asyncio.run(gateway.services.caller.providers.preload(settings.preload_providers))
if sys.argv[1] == "frozen":
    freeze_long_lived()  # the worker's, after warm-up
gc.collect()
tracked = len(gc.get_objects())
pauses = []
for _ in range(5):
    started = time.perf_counter()
    gc.collect()
    pauses.append((time.perf_counter() - started) * 1000)
print(json.dumps({"tracked": tracked, "frozen": gc.get_freeze_count(), "pause_ms": sorted(pauses)[2],
                  "failed": failed}))
"""


def probe(variant: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="gateway-bench-collector-") as data:
        env = {**os.environ, "GATEWAY_DATA_DIR": data}
        env.pop("GATEWAY_PRELOAD_PROVIDERS", None)  # the default: every provider
        done = subprocess.run([sys.executable, "-c", PROBE, variant], env=env, capture_output=True, text=True,
                              timeout=300, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(args: argparse.Namespace) -> dict[str, object]:
    started = time.monotonic()
    runs: dict[str, list[dict]] = {variant: [] for variant in VARIANTS}
    for round_no in range(args.rounds):
        for variant in VARIANTS if round_no % 2 == 0 else VARIANTS[::-1]:
            runs[variant].append(probe(variant))
            last = runs[variant][-1]
            print(f"collector round {round_no + 1}: {variant}: {last['tracked']} tracked, full collection "
                  f"{last['pause_ms']:.1f} ms", flush=True)
    return {"runs": runs, "code": code(), "minutes": (time.monotonic() - started) / 60}


def render_collector(detail: dict, host: dict[str, str], args: argparse.Namespace) -> str:
    runs = detail["runs"]
    lines = [
        "## Collector pauses",
        "",
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC with `{args.command}` (rounds {args.rounds}, "
        f"a fresh interpreter per probe, the variants alternating; {detail['code'] or 'commit unknown'}; "
        f"{detail['minutes']:.1f} min).",
        "",
        "Machine: " + "; ".join(f"{k} {v}" for k, v in host.items()) + ".",
        "",
        "The gateway built as a worker builds it, then its warm-up: the moderation word lists and every",
        "provider of `GATEWAY_PRELOAD_PROVIDERS`' default. `in sight`: what warm-up loaded is left to the",
        "collector; `frozen`: the worker freezes it after warm-up (`freeze_long_lived`). Objects a full",
        "collection scans, and the median of five full collections' time (the event loop's pause).",
        "",
        "| what warm-up loaded | objects a full collection scans | full collection (ms) |",
        "|---|---:|---:|",
    ]
    for variant in VARIANTS:
        tracked = median([run["tracked"] for run in runs[variant]])
        pause = median([run["pause_ms"] for run in runs[variant]])
        lines.append(f"| {variant} | {tracked:,.0f} | {pause:.1f} |")
    return "\n".join(lines) + "\n" + NOTES


NOTES = """
### Reading the figures

- A full collection runs when enough objects have survived two younger collections; a worker draining
  an openai backlog ran one about every 10 s (three in a 33 s drain, counted with `gc.get_stats()`).
  Each one stops the event loop for the time above: every provider call in flight, every stream and
  every commit waits it out, so the pause lands in the latency tail.
- `frozen` is the heap right after warm-up. Under traffic a full collection still scans what traffic
  keeps alive (connections, caches, messages in flight): about 27 000 objects in that drain, against
  about 163 000 with the openai SDK left in sight.
- What is frozen is never collected: only what lives as long as the process is frozen (what was built
  and imported before traffic; the CLI freezes after building the app, the worker again after its
  warm-up). An SDK loaded later, at its provider's first call, stays in sight.
"""
