"""The peers section's tables and notes (rendered from `peers.measure`'s figures), and its command-line flags."""

from __future__ import annotations

import argparse
from datetime import datetime, timezone

from devtools.bench.measures import median
from devtools.bench.report import _number

LABELS = {"proxy": "LiteLLM proxy, fake OpenAI", "openai": "gateway, openai provider (fake OpenAI)",
          "echo": "gateway, echo provider", "pipeline": "raw aiokafka, the gateway's records",
          "passthrough": "raw aiokafka passthrough (one hop)"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--peers-requests", type=int, default=2_000,
                        help="requests per proxy round, and messages per gateway openai round")
    parser.add_argument("--peers-messages", type=int, default=5_000,
                        help="backlog per round of the gateway with echo and of the raw aiokafka pipelines")
    parser.add_argument("--peers-warmup", type=int, default=300, help="answers before each measured run")
    parser.add_argument("--peers-concurrency", type=int, default=32, help="HTTP clients against the proxy")
    parser.add_argument("--peers-latency-seconds", type=float, default=8.0, help="open-loop load per latency round")


def _ms(runs: list, attr: str) -> float:
    return median([getattr(r, attr) / r.count * 1000 for r in runs])


def render_peers(detail: dict, host: dict[str, str], args: argparse.Namespace) -> str:
    runs, best, half, lat = detail["runs"], detail["best_proxy"], detail["half"], detail["latency"]
    rate = {k: median([r.rate for r in v]) for k, v in runs.items()}
    cpu = {k: _ms(v, "cpu") for k, v in runs.items()}
    broker = {k: _ms(v, "broker_cpu") for k, v in runs.items()}
    fake = {k: _ms(v, "fake_cpu") for k, v in runs.items()}
    lines = [
        "## Peers",
        "",
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC with `{args.command}` (rounds {args.rounds}, "
        f"medians, every run interleaved round by round in a rotating order, fresh processes each; "
        f"{args.peers_requests} requests per proxy and gateway-openai round, {args.peers_messages} messages "
        f"per echo and raw-pipeline round, each after {args.peers_warmup} answers not counted; "
        f"{args.peers_concurrency} concurrent HTTP clients against the proxy; "
        f"{args.peers_latency_seconds:.0f} s of open-loop load per latency round; {detail['code'] or 'commit unknown'}"
        f"; {detail['minutes']:.1f} min).",
        "",
        "Machine: " + "; ".join(f"{k} {v}" for k, v in host.items()) + ".",
        "",
        f"Peer: the LiteLLM proxy {detail['version']} (`litellm[proxy]`, in a virtual environment of its own, not",
        "a project dependency), one model name mapped to `openai/gpt-4o-mini`, telemetry, spend logs, callbacks",
        "and database off. It and the gateway's `openai` provider call one local fake OpenAI server (a fixed",
        "short completion with usage, in a process of its own). Gateway: 8 partitions, 100 agents, 1,000 rooms.",
        "CPU per answer from /proc over the measured run: the measured process tree (the gateway's workers;",
        "the proxy with all its worker processes; the raw pipeline's process), the broker apart.",
        "",
        "| system | workers | throughput (answers/s) | CPU per answer (ms) | broker CPU per answer (ms) "
        "| fake OpenAI CPU per answer (ms) | answers per worker |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for key, group in runs.items():
        system, workers = key
        shares = " / ".join(str(int(median([r.shares[i] for r in group]))) for i in range(workers)) \
            if system in ("openai", "echo") else ""
        lines.append(f"| {LABELS[system]} | {workers} | {_number(rate[key])} | {_number(cpu[key])} | "
                     f"{_number(broker[key]) if system != 'proxy' else ''} | "
                     f"{_number(fake[key]) if system in ('proxy', 'openai') else ''} | {shares} |")
    proxy_best, gw = ("proxy", best), ("openai", 1)
    gw_best = max((("openai", 1), ("openai", 2)), key=lambda k: rate[k])
    efficiency = rate[("echo", 1)] / rate[("pipeline", 1)]
    targets = [
        ("gateway worker CPU per request, openai (ms)", cpu[gw], "<= 2", cpu[gw] <= 2),
        ("gateway worker CPU / proxy CPU per request", cpu[gw] / cpu[proxy_best], "<= 0.25",
         cpu[gw] / cpu[proxy_best] <= 0.25),
        ("gateway worker + broker CPU / proxy CPU per request", (cpu[gw] + broker[gw]) / cpu[proxy_best], "<= 0.5",
         (cpu[gw] + broker[gw]) / cpu[proxy_best] <= 0.5),
        (f"gateway throughput ({gw_best[1]} worker{'s' if gw_best[1] > 1 else ''}) / proxy's best "
         f"({best} worker{'s' if best > 1 else ''})", rate[gw_best] / rate[proxy_best], ">= 3",
         rate[gw_best] / rate[proxy_best] >= 3),
        ("gateway worker CPU per message, echo (ms)", cpu[("echo", 1)], "<= 0.5", cpu[("echo", 1)] <= 0.5),
        ("efficiency: gateway echo / raw pipeline of its records", efficiency, ">= 0.5", efficiency >= 0.5),
        ("for reference: gateway echo / one-hop passthrough", rate[("echo", 1)] / rate[("passthrough", 1)], None,
         None),
        ("for reference: raw pipeline of its records / one-hop passthrough",
         rate[("pipeline", 1)] / rate[("passthrough", 1)], None, None),
    ]
    lines += ["", "| target | figure | target | met |", "|---|---:|---|---|"]
    for name, value, target, met in targets:
        lines.append(f"| {name} | {_number(value)} | {target or ''} | "
                     f"{'' if met is None else ('yes' if met else '**no**')} |")
    p = {w: (median([a for a, _ in lat[w]]) * 1000, median([b for _, b in lat[w]]) * 1000) for w in lat}
    lines += [
        "",
        f"Latency at {half:.0f} requests/s (half the slower one's throughput), open loop, medians of the rounds "
        f"(per round p50 / p99 ms: gateway {', '.join(f'{a * 1000:.0f}/{b * 1000:.0f}' for a, b in lat['gateway'])};"
        f" proxy {', '.join(f'{a * 1000:.0f}/{b * 1000:.0f}' for a, b in lat['proxy'])}):",
        "",
        "| system | p50 (ms) | p99 (ms) |",
        "|---|---:|---:|",
        f"| gateway, openai, 1 worker (message produced -> reply read from Kafka) | {_number(p['gateway'][0])} | "
        f"{_number(p['gateway'][1])} |",
        f"| LiteLLM proxy, {best} worker{'s' if best > 1 else ''} (request sent -> response read) | "
        f"{_number(p['proxy'][0])} | {_number(p['proxy'][1])} |",
        "",
    ]
    return "\n".join(lines) + detail.get("notes", NOTES)


NOTES = """
### Reading the figures

- **Scale-out is balance, not speed-up, here.** The machine has 2 cores shared by the broker, the load
  generator, the collector and the workers: the two-worker rows show how evenly the partitions' messages
  split between the workers ("answers per worker", from their `/health` counters), not how the gateway
  scales with cores.
- **What each CPU figure counts.** The proxy's figure is all of its processes; the gateway's is its
  workers only, its broker's share apart (the broker's also includes the load producer's and the
  collector's requests, which the proxy has no counterpart for). The fake OpenAI server's column shows
  what each one's provider calls cost the provider's side.
- **Latency is not the same path.** The gateway's is Kafka to Kafka (two hops inside the worker and the
  reply read back by a consumer), the proxy's one HTTP request and response.
- **The raw pipeline** consumes the input, produces it re-keyed by agent id to an internal topic,
  consumes that and produces the reply, the billing event and one row to a compacted topic, of the
  gateway's record sizes, at-least-once with commits every second, 8 partitions everywhere. It does not
  write the gateway's small room rows, room events and usage rows, so it is an upper bound of the topology,
  a little above what the gateway's exact records would allow.
"""
