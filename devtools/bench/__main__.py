"""`python -m devtools.bench [--rounds N] [--messages N] [--profiles N] [--output docs/benchmarks.md]`

Starts one local broker and measures, side by side and interleaved round by round (median of the
rounds): the gateway's throughput against a raw aiokafka passthrough, the latency it adds at half its
maximum rate (open-loop producer), how well it fills its in-flight bound with a 200 ms provider,
recovery of a table of N profiles, and memory. Prints a table and writes it with the machine's
description. Not a test: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
from pathlib import Path

from devtools.bench import measures
from devtools.bench.report import Row, machine, render
from devtools.kafka_local import KafkaBroker

PROVIDER_LATENCY_S = 0.2
MAX_IN_FLIGHT = 256  # the gateway's default GATEWAY_MAX_IN_FLIGHT


async def run(args: argparse.Namespace, broker: KafkaBroker, tmp: Path) -> list[Row]:
    gateway, passthrough, peaks = [], [], []
    for round_no in range(args.rounds):
        rate, peak = await measures.gateway_backlog_rate(broker, tmp, args.messages)
        gateway.append(rate)
        peaks.append(peak)
        passthrough.append(await measures.passthrough_backlog_rate(broker, args.messages))
        print(f"round {round_no + 1}: gateway {rate:.0f}/s, passthrough {passthrough[-1]:.0f}/s", flush=True)
    gw_rate, pt_rate = measures.median(gateway), measures.median(passthrough)

    half = gw_rate / 2
    added50, added99, gw50, gw99, pt50, pt99 = [], [], [], [], [], []
    for round_no in range(args.rounds):
        gw_lat, pt_lat = await measures.latency_at(broker, tmp, half, args.latency_seconds)
        gw50.append(measures.percentile(gw_lat, 0.5))
        gw99.append(measures.percentile(gw_lat, 0.99))
        pt50.append(measures.percentile(pt_lat, 0.5))
        pt99.append(measures.percentile(pt_lat, 0.99))
        added50.append(gw50[-1] - pt50[-1])
        added99.append(gw99[-1] - pt99[-1])
        print(f"latency round {round_no + 1} at {half:.0f}/s: gateway p50 {gw50[-1] * 1000:.1f} ms p99 "
              f"{gw99[-1] * 1000:.1f} ms; passthrough p50 {pt50[-1] * 1000:.1f} ms p99 {pt99[-1] * 1000:.1f} ms",
              flush=True)

    slow = []
    for round_no in range(args.rounds):
        rate, _ = await measures.gateway_backlog_rate(broker, tmp, args.slow_messages,
                                                      latency_ms=int(PROVIDER_LATENCY_S * 1000))
        slow.append(rate)
        print(f"200 ms provider round {round_no + 1}: {rate:.0f}/s", flush=True)
    bound = min(MAX_IN_FLIGHT / PROVIDER_LATENCY_S, gw_rate)

    recovery = await measures.recovery(broker, tmp, args.profiles, args.rounds, args.messages)
    print(f"recovery: {recovery}", flush=True)

    ms = 1000
    return [
        Row("throughput, echo at 0 ms (msg/s)", gw_rate, pt_rate, None, None),
        Row("efficiency ratio (gateway / passthrough)", gw_rate / pt_rate, None, ">= 0.5", gw_rate / pt_rate >= 0.5),
        Row(f"end-to-end p50 at {half:.0f} msg/s (ms)", measures.median(gw50) * ms, measures.median(pt50) * ms,
            None, None),
        Row(f"end-to-end p99 at {half:.0f} msg/s (ms)", measures.median(gw99) * ms, measures.median(pt99) * ms,
            None, None),
        Row("added latency p50 (ms)", measures.median(added50) * ms, None, "<= 2",
            measures.median(added50) * ms <= 2),
        Row("added latency p99 (ms)", measures.median(added99) * ms, None, "<= 10",
            measures.median(added99) * ms <= 10),
        Row("throughput, 200 ms provider (msg/s)", measures.median(slow), bound, None, None),
        Row("concurrency efficiency", measures.median(slow) / bound, None, ">= 0.9",
            measures.median(slow) / bound >= 0.9),
        Row("ready, empty data dir (s)", recovery["empty_ready_s"], None, None, None),
        Row(f"ready, warm restart, {args.profiles} profiles (s)", recovery["warm_ready_s"], None, "<= 5",
            recovery["warm_ready_s"] <= 5),
        Row(f"ready, cold restore, {args.profiles} profiles (s)", recovery["cold_ready_s"], None, None, None),
        Row("changelog restore (rows/s)", recovery["restore_rows_per_s"], None, ">= 50000",
            recovery["restore_rows_per_s"] >= 50_000),
        Row(f"RSS idle, {args.profiles} profiles (MB)", recovery["idle_rss_mb"], None, "<= 250",
            recovery["idle_rss_mb"] <= 250),
        Row(f"RSS under load, {args.profiles} profiles (MB)", recovery["load_rss_mb"], None, "<= 250",
            recovery["load_rss_mb"] <= 250),
        Row("RSS under load, 100 profiles (MB)", max(peaks), None, None, None),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devtools.bench")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--slow-messages", type=int, default=10_000)
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--output", type=Path, default=Path("docs/benchmarks.md"))
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    broker = KafkaBroker(work_dir=tmp / "kafka")
    broker.start()
    try:
        rows = asyncio.run(run(args, broker, tmp))
    except BaseException:
        print(f"benchmark failed; worker logs kept in {tmp}")
        raise
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    finally:
        broker.stop()
    text = render(rows, machine(), args)
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
