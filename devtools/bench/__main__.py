"""`python -m devtools.bench [--only SECTION ...] [--rounds N] [--messages N] [--output docs/benchmarks.md]`

Starts one local broker and measures, side by side and interleaved round by round (median of the
rounds), in sections that can be run alone (`--only NAME`, NAME one of those below, may be repeated;
without `--only` all of them run):

- gateway: the gateway's throughput against a raw aiokafka passthrough, the latency it adds at half its
  maximum rate (open-loop producer), how well it fills its in-flight bound with a 200 ms provider,
  recovery of a table of N profiles, and memory;
- conversations: profiles with `context` against profiles without (throughput, and latency at half the
  context-off rate, messages over `--context-rooms` rooms), then one worker with a conversation row in
  each of `--conversation-rooms` rooms: its RSS against the same run without context, and the table's
  size on disk and on the broker;
- moderation: profiles with every local output check on against profiles with none, and with the default
  checks (throughput, and latency at half the checks-off rate), then the checks' cost per reply in-process
  on the benchmark's reply and on 1 KB replies;
- observability: tracing off, on (all sampled, to a local OTLP receiver), and off with `/metrics` scraped;
- peers: the gateway against the LiteLLM proxy (one fake OpenAI server for both) and against a raw aiokafka
  pipeline moving the gateway's records; CPU per answer, throughput, latency, two-worker balance;
- levers: the gateway with each speed lever off and on (HTTP stack under the SDKs, decoded usage rows
  kept, producer linger), openai and echo, CPU per answer and throughput;
- collaboration: agents answering alone, consulting a collaborator (`tool`) and refining an `always`
  collaborator's draft: end-to-end latency and provider calls per message;
- collector: a full garbage collection's pause in a warmed-up worker, with what warm-up loaded left to the
  collector against frozen out of its sight (no broker needed).

Prints the tables and writes them with the machine's description: each section replaces its own part of
the output file, the other sections' figures are kept. Not a test: nothing here passes or fails.

(A little over 300 lines: every section's flags are here, and splitting the dispatch would scatter it.)
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path

from devtools.bench import collaboration, collector, conversations, levers, measures, moderation, observability, peers, peers_report
from devtools.bench.report import (SECTIONS, Row, code, machine, merge, render, render_conversations,
                                   render_moderation, render_observability)
from devtools.kafka_local import KafkaBroker

PROVIDER_LATENCY_S = 0.2
MAX_IN_FLIGHT = 256  # the gateway's default GATEWAY_MAX_IN_FLIGHT


async def run_gateway(args: argparse.Namespace, broker: KafkaBroker, tmp: Path) -> list[Row]:
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


async def run_conversations(args: argparse.Namespace, broker: KafkaBroker,
                            tmp: Path) -> tuple[list[Row], dict[str, object]]:
    """Context off and on, interleaved round by round (off first); then the table at `--conversation-rooms`."""
    ctx = conversations.CONTEXT
    rates: dict[bool, list[float]] = {False: [], True: []}
    drain_rows, drain_changelog = [], []
    for round_no in range(args.rounds):
        for on in (False, True):
            result = await conversations.drain(broker, tmp, args.messages, args.context_rooms, ctx if on else None)
            rates[on].append(result.rate)
            if on:
                drain_rows.append(result.rows)
                drain_changelog.append(result.changelog_bytes)
        print(f"context round {round_no + 1}: off {rates[False][-1]:.0f}/s, on {rates[True][-1]:.0f}/s "
              f"(rooms held {drain_rows[-1].turns_mean:.1f} turns, {drain_rows[-1].turns_min}-"
              f"{drain_rows[-1].turns_max})", flush=True)
    off_rate, on_rate = measures.median(rates[False]), measures.median(rates[True])

    half = off_rate / 2
    p50: dict[bool, list[float]] = {False: [], True: []}
    p99: dict[bool, list[float]] = {False: [], True: []}
    latency_rows = []
    for round_no in range(args.rounds):
        for on in (False, True):
            lat, rows = await conversations.latency(broker, tmp, half, args.latency_seconds, args.context_rooms,
                                                    args.context_prefill, ctx if on else None)
            p50[on].append(measures.percentile(lat, 0.5))
            p99[on].append(measures.percentile(lat, 0.99))
            if on:
                latency_rows.append(rows)
        print(f"context latency round {round_no + 1} at {half:.0f}/s: off p50 {p50[False][-1] * 1000:.1f} ms p99 "
              f"{p99[False][-1] * 1000:.1f} ms; on p50 {p50[True][-1] * 1000:.1f} ms p99 "
              f"{p99[True][-1] * 1000:.1f} ms (rooms held {latency_rows[-1].turns_mean:.1f} turns)", flush=True)
    added50 = [on - off for on, off in zip(p50[True], p50[False])]
    added99 = [on - off for on, off in zip(p99[True], p99[False])]

    scale = {}
    for on in (False, True):
        scale[on] = await conversations.table_at_scale(broker, tmp, args.conversation_rooms,
                                                       args.conversation_messages, ctx if on else None)
        print(f"{args.conversation_rooms} rooms, context {'on' if on else 'off'}: {scale[on]}", flush=True)
    if scale[True]["rows"] < args.conversation_rooms:
        print(f"warning: the changelog holds {scale[True]['rows']} rows, not {args.conversation_rooms}", flush=True)

    ms, mb, rooms = 1000, 1024 * 1024, args.conversation_rooms
    per_room = f"{rooms} rooms x {args.conversation_messages} message{'s' if args.conversation_messages > 1 else ''}"
    on, off = scale[True], scale[False]
    rows = [
        Row(f"throughput, echo at 0 ms, {args.context_rooms} rooms (msg/s)", on_rate, off_rate, None, None),
        Row("throughput ratio (on / off)", on_rate / off_rate, None, None, None),
        Row(f"end-to-end p50 at {half:.0f} msg/s (ms)", measures.median(p50[True]) * ms,
            measures.median(p50[False]) * ms, None, None),
        Row(f"end-to-end p99 at {half:.0f} msg/s (ms)", measures.median(p99[True]) * ms,
            measures.median(p99[False]) * ms, None, None),
        Row("added latency p50, on - off (ms)", measures.median(added50) * ms, None, None, None),
        Row("added latency p99, on - off (ms)", measures.median(added99) * ms, None, None, None),
        Row(f"throughput, {per_room} (msg/s)", on["rate"], off["rate"], None, None),
        Row("RSS idle before the load (MB)", on["rss_before_mb"], off["rss_before_mb"], None, None),
        Row(f"RSS idle after the load, {per_room} (MB)", on["rss_after_mb"], off["rss_after_mb"], None, None),
        Row("RSS peak under the load (MB)", on["rss_peak_mb"], off["rss_peak_mb"], None, None),
        Row("RSS added by the table, on - off after the load (MB)", on["rss_after_mb"] - off["rss_after_mb"], None,
            None, None),
        Row("conversations table on disk, worker running (MB)", on["table_bytes_running"] / mb,
            off["table_bytes_running"] / mb, None, None),
        Row("on disk per room, worker running, on - off (bytes)",
            (on["table_bytes_running"] - off["table_bytes_running"]) / rooms, None, None, None),
        Row("conversations table on disk, worker stopped (MB)", on["table_bytes"] / mb, off["table_bytes"] / mb,
            None, None),
        Row("on disk per room, worker stopped, on - off (bytes)", (on["table_bytes"] - off["table_bytes"]) / rooms,
            None, None, None),
        Row("row size, mean (bytes)", on["row_bytes_mean"], None, None, None),
        Row("conversations changelog on the broker (MB)", on["changelog_bytes"] / mb, off["changelog_bytes"] / mb,
            None, None),
        Row("changelog per room (bytes)", on["changelog_bytes"] / rooms, None, None, None),
    ]
    detail = {
        "half": half, "rates": rates, "p50": p50, "p99": p99, "drain_rows": drain_rows,
        "drain_changelog": drain_changelog,
        "latency_rows": latency_rows, "scale": scale, "code": code(),
    }
    return rows, detail


async def run_moderation(args: argparse.Namespace, broker: KafkaBroker, tmp: Path) -> dict[str, object]:
    """In-process cost of the checks first (nothing else runs then), then all on / default / off through the
    gateway, interleaved round by round (the order rotates by one each round)."""
    started = time.monotonic()
    cost = await asyncio.to_thread(moderation.cost)
    for label, totals in cost["totals"].items():
        print(f"checks per reply, {label}: " + ", ".join(f"{k} {v:,.0f} us" for k, v in totals.items()), flush=True)
    names = list(moderation.PROFILES)
    # The first drain on a new broker is often slow (see the gateway section's note): one not counted.
    warm = await moderation.drain(broker, tmp, args.moderation_messages // 5, moderation.OFF)
    print(f"moderation warm-up drain (not counted): {warm.rate:.0f}/s", flush=True)
    rates: dict[str, list[float]] = {n: [] for n in names}
    flagged: dict[str, list[int]] = {n: [] for n in names}
    for round_no in range(args.rounds):
        for name in names[round_no % len(names):] + names[:round_no % len(names)]:
            result = await moderation.drain(broker, tmp, args.moderation_messages, moderation.PROFILES[name])
            rates[name].append(result.rate)
            flagged[name].append(result.flagged)
        print(f"moderation round {round_no + 1}: " + ", ".join(f"{n} {rates[n][-1]:.0f}/s" for n in names) +
              " (flagged: " + ", ".join(f"{n} {flagged[n][-1]}" for n in names) + ")", flush=True)
    half = measures.median(rates["off"]) / 2
    p50: dict[str, list[float]] = {n: [] for n in names}
    p99: dict[str, list[float]] = {n: [] for n in names}
    for round_no in range(args.rounds):
        for name in names[round_no % len(names):] + names[:round_no % len(names)]:
            lat = await moderation.latency(broker, tmp, half, args.latency_seconds, moderation.PROFILES[name])
            p50[name].append(measures.percentile(lat, 0.5))
            p99[name].append(measures.percentile(lat, 0.99))
        print(f"moderation latency round {round_no + 1} at {half:.0f}/s: " +
              "; ".join(f"{n} p50 {p50[n][-1] * 1000:.1f} ms p99 {p99[n][-1] * 1000:.1f} ms" for n in names),
              flush=True)
    return {"names": names, "half": half, "rates": rates, "flagged": flagged, "p50": p50, "p99": p99,
            "cost": cost, "code": code(), "minutes": (time.monotonic() - started) / 60}


async def run(args: argparse.Namespace, broker: KafkaBroker, tmp: Path) -> dict[str, str]:
    """The rendered sections that were asked for."""
    host, out = machine(), {}
    if "gateway" in args.only:
        out["gateway"] = render(await run_gateway(args, broker, tmp), host, args)
    if "conversations" in args.only:
        rows, detail = await run_conversations(args, broker, tmp)
        out["conversations"] = render_conversations(rows, detail, host, args)
    if "moderation" in args.only:
        out["moderation"] = render_moderation(await run_moderation(args, broker, tmp), host, args)
    if "observability" in args.only:
        out["observability"] = render_observability(await observability.measure(args, broker, tmp), host, args)
    if "peers" in args.only:
        out["peers"] = peers_report.render_peers(await peers.measure(args, broker, tmp), host, args)
    if "levers" in args.only:
        out["levers"] = levers.render_levers(await levers.measure(args, broker, tmp), host, args)
    if "collaboration" in args.only:
        out["collaboration"] = collaboration.render_collaboration(await collaboration.measure(args, broker, tmp),
                                                                  host, args)
    if "collector" in args.only:
        out["collector"] = collector.render_collector(collector.measure(args), host, args)
    return out


def command(argv: list[str]) -> str:
    """The command line as the report shows it (without --output: it may name a local path)."""
    shown, skip = ["python -m devtools.bench"], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--output":
            skip = True
        elif not arg.startswith("--output="):
            shown.append(arg)
    return " ".join(shown)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devtools.bench")
    parser.add_argument("--only", action="append", choices=SECTIONS,
                        help="run only this section (may be repeated; default: every section); the output "
                             "file's other sections are kept as they are")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=20_000, help="backlog per throughput round")
    parser.add_argument("--slow-messages", type=int, default=10_000)
    parser.add_argument("--latency-seconds", type=float, default=10.0)
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--context-rooms", type=int, default=1_000,
                        help="rooms the context on/off messages are spread over (of 100 agents)")
    parser.add_argument("--context-prefill", type=int, default=10,
                        help="messages per room answered before each context latency round")
    parser.add_argument("--conversation-rooms", type=int, default=100_000,
                        help="rooms of the conversations table measure (one worker)")
    parser.add_argument("--conversation-messages", type=int, default=1,
                        help="messages per room in the conversations table measure")
    parser.add_argument("--moderation-messages", type=int, default=10_000,
                        help="backlog per moderation throughput round (over 1,000 rooms of 100 agents; fewer "
                             "than --messages: three profiles a round)")
    parser.add_argument("--observability-messages", type=int, default=4_000, help="backlog per round")
    parser.add_argument("--observability-latency", action=argparse.BooleanOptionalAction, default=True)
    peers_report.add_arguments(parser)
    levers.add_arguments(parser)
    collaboration.add_arguments(parser)
    parser.add_argument("--output", type=Path, default=Path("docs/benchmarks.md"))
    args = parser.parse_args()
    args.only = args.only or list(SECTIONS)
    args.command = command(sys.argv[1:])
    tmp = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    broker = KafkaBroker(work_dir=tmp / "kafka")
    broker.start()
    try:
        sections = asyncio.run(run(args, broker, tmp))
    except BaseException:
        print(f"benchmark failed; worker logs kept in {tmp}")
        raise
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    finally:
        broker.stop()
    for text in sections.values():
        print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    existing = args.output.read_text() if args.output.exists() else None
    args.output.write_text(merge(existing, sections))
    print(f"written to {args.output} (sections: {', '.join(sections)})")


if __name__ == "__main__":
    main()
