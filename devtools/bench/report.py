"""The benchmark's tables, the description of the machine they ran on, and the output file.

The file is one title and then one part per section, each between `<!-- bench:NAME -->` and
`<!-- /bench:NAME -->` lines: a run replaces the sections it measured and keeps the others as they
were (a file written before the sections existed is read as the gateway section).

It is longer than 300 lines because each section's notes on reading its figures are kept here, as text,
next to the code that renders the section's table."""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from devtools.kafka_local import KAFKA_VERSION

SECTIONS = ("gateway", "conversations", "moderation", "observability", "peers", "levers", "collaboration",
            "collector")  # in the order of the file
TITLE = "# Benchmarks"


@dataclass(frozen=True)
class Row:
    metric: str
    gateway: float
    baseline: float | None
    target: str | None
    met: bool | None


def machine() -> dict[str, str]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown")
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    return {"cpu": f"{cpu}, {os.cpu_count()} cores", "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
            "os": f"{platform.system()} {platform.release()}", "python": sys.version.split()[0],
            "kafka": f"{KAFKA_VERSION} (single local KRaft broker)"}


def code() -> str | None:
    """The commit measured, and whether the gateway's files (the benchmark's own left out) differed from it."""
    repo = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":!devtools/bench", ":!docs/benchmarks.md"], cwd=repo, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"commit {sha}" + (", with uncommitted changes" if dirty else "")


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"


def render(rows: list[Row], host: dict[str, str], args: argparse.Namespace) -> str:
    lines = [
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC with `{getattr(args, 'command', 'make bench')}` "
        f"(rounds {args.rounds}, medians; {args.messages} messages per throughput round, "
        f"{args.slow_messages} with the 200 ms provider, {args.latency_seconds:.0f} s of open-loop load per "
        f"latency round, {args.profiles} profiles for recovery and memory).",
        "",
        "Machine: " + "; ".join(f"{k} {v}" for k, v in host.items()) + ".",
        "",
        "Gateway: one worker, echo provider, RocksDB tables, at-least-once, 8 partitions. Baseline: a raw",
        "aiokafka consume -> produce loop on topics of the same partitions, message size and commit policy.",
        "Broker, load generator, gateway and baseline share the machine.",
        "",
        *_table(rows, "gateway", "baseline", targets=True),
    ]
    return "\n".join(lines) + "\n" + READING


def _table(rows: list[Row], first: str, second: str, targets: bool) -> list[str]:
    lines = [f"| metric | {first} | {second} |" + (" target | met |" if targets else ""),
             "|---|---:|---:|" + ("---|---|" if targets else "")]
    for row in rows:
        line = f"| {row.metric} | {_number(row.gateway)} | {_number(row.baseline)} |"
        if targets:
            met = "" if row.met is None else ("yes" if row.met else "**no**")
            line += f" {row.target or ''} | {met} |"
        lines.append(line)
    return lines


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _rounds(values: list[float]) -> str:
    return ", ".join(_number(v) for v in values)


def render_conversations(rows: list[Row], detail: dict, host: dict[str, str], args: argparse.Namespace) -> str:
    rates, p50, p99 = detail["rates"], detail["p50"], detail["p99"]
    drained, waited = detail["drain_rows"], detail["latency_rows"]
    scale = detail["scale"]
    per_room = args.conversation_messages
    lines = [
        "## Conversations",
        "",
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC with `{args.command}` (rounds {args.rounds}, "
        f"medians; context off and on interleaved round by round, a fresh worker each; {args.messages} "
        f"messages per throughput round over {args.context_rooms} rooms of "
        f"100 agents; before each latency round {args.context_prefill} messages per room answered, then "
        f"{args.latency_seconds:.0f} s of open-loop load at half the context-off rate after a warm-up; "
        f"{args.conversation_rooms} rooms with {per_room} message{'s' if per_room > 1 else ''} each for the "
        f"table).",
        "",
        "Machine: " + "; ".join(f"{k} {v}" for k, v in host.items()) + ".",
        "",
        *([f"Code: {detail['code']}.", ""] if detail.get("code") else []),
        "Gateway as above (one worker, echo provider at 0 ms, RocksDB tables, 8 partitions). \"context on\":",
        "every profile has `\"context\": {\"maxTurns\": 20, \"maxTokens\": 4000}`; \"context off\": the",
        "same profiles without `context`.",
        "",
        *_table(rows, "context on", "context off", targets=False),
        "",
        "Rounds (off / on): throughput " + "; ".join(f"{_number(a)} / {_number(b)}"
                                                      for a, b in zip(rates[False], rates[True])) + " msg/s; "
        "p50 " + "; ".join(f"{_number(a * 1000)} / {_number(b * 1000)}" for a, b in zip(p50[False], p50[True])) +
        " ms; p99 " + "; ".join(f"{_number(a * 1000)} / {_number(b * 1000)}"
                                for a, b in zip(p99[False], p99[True])) + " ms.",
        "",
        f"Turns per room at the end of each context-on drain: mean {_rounds([r.turns_mean for r in drained])} "
        f"(min {min(r.turns_min for r in drained)}, max {max(r.turns_max for r in drained)}), rows of "
        f"{_number(_median([r.row_bytes_mean for r in drained]))} bytes on average; each drain wrote "
        f"{_number(_median([r.records for r in drained]))} changelog records, "
        f"{_number(_median(detail['drain_changelog']) / 1024 / 1024)} MB "
        f"({_number(_median(detail['drain_changelog']) / args.messages)} bytes per message). At the end "
        f"of each latency round: mean {_rounds([r.turns_mean for r in waited])} turns per room. Table measure: "
        f"{scale[True]['rows']:,} rows, {scale[True]['turns_appended']:,} turns appended, "
        f"{scale[True]['table_dirs']} RocksDB directories (one per partition); it took "
        f"{scale[True]['seconds']:.0f} s with context and {scale[False]['seconds']:.0f} s without.",
        "",
    ]
    return "\n".join(lines) + READING_CONVERSATIONS


def render_moderation(detail: dict, host: dict[str, str], args: argparse.Namespace) -> str:
    names, half = detail["names"], detail["half"]
    rates, p50, p99, flagged = detail["rates"], detail["p50"], detail["p99"], detail["flagged"]
    cost = detail["cost"]
    ms, off = 1000, "off"

    def added(series: dict[str, list[float]], name: str) -> float | None:
        return None if name == off else _median([a - b for a, b in zip(series[name], series[off])]) * ms

    rows: list[tuple[str, list[float | None]]] = [
        ("throughput, echo at 0 ms, 1000 rooms (msg/s)", [_median(rates[n]) for n in names]),
        ("throughput ratio (to off)", [_median(rates[n]) / _median(rates[off]) for n in names]),
        (f"end-to-end p50 at {half:.0f} msg/s (ms)", [_median(p50[n]) * ms for n in names]),
        (f"end-to-end p99 at {half:.0f} msg/s (ms)", [_median(p99[n]) * ms for n in names]),
        ("added latency p50, minus off (ms)", [added(p50, n) for n in names]),
        ("added latency p99, minus off (ms)", [added(p99, n) for n in names]),
        ("verdicts recorded per 100 messages (drain)",
         [_median(flagged[n]) / args.moderation_messages * 100 for n in names]),
        *[(f"checks per reply in-process, {label} (us)", [cost["totals"][label][n] for n in names])
          for label in cost["totals"]],
    ]
    checks = cost["names"]
    per_check = ["| reply | " + " | ".join(f"`{c}`" for c in checks) + " | fired |",
                 "|---|" + "---:|" * len(checks) + "---|"]
    for label, timings in cost["checks"].items():
        per_check.append(f"| {label} | " + " | ".join(_number(timings[c]) for c in checks) +
                         f" | {timings['fired']} |")
    lines = [
        "## Moderation",
        "",
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC with `{args.command}` (rounds {args.rounds}, "
        f"medians; the three profiles interleaved round by round, their order rotated by one each round, a "
        f"fresh worker each, after one drain not counted; {args.moderation_messages} messages per throughput "
        f"round over 1000 rooms of 100 agents; "
        f"{args.latency_seconds:.0f} s of open-loop load per latency round at half the checks-off rate, after a "
        f"warm-up; the section took {detail['minutes']:.0f} minutes).",
        "",
        "Machine: " + "; ".join(f"{k} {v}" for k, v in host.items()) + ".",
        "",
        *([f"Code: {detail['code']}.", ""] if detail.get("code") else []),
        "Gateway as above (one worker, echo provider at 0 ms, RocksDB tables, 8 partitions). \"all on\": every",
        "profile has `\"moderation\": {\"outputChecks\": {...}, \"maxChars\": 4000}, \"language\": \"en\"` with",
        "all eight local checks (`wordlist`, `pii`, `repetition`, `empty`, `refusal`, `truncated`, `language`,",
        "`too_long`) at action `flag`; \"default\": no `moderation` field (the five default checks: `wordlist`,",
        "`pii`, `empty`, `refusal`, `truncated`, action `flag`); \"off\": `\"moderation\": {\"outputChecks\": {}}`.",
        "Every message of the benchmark is the same short English sentence (64 characters) and the echo",
        "provider replies with it, so the gateway rows measure the checks on that reply only; the last rows and",
        "the table below time the checks in-process (`run_local` with the rules and settings a worker builds for",
        "the profile, before any gateway run; the fastest of 7 batches of 0.1 s) on it and on 1 KB replies.",
        "",
        "| metric | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
        *[f"| {metric} | " + " | ".join(_number(v) for v in values) + " |" for metric, values in rows],
        "",
        "Each check alone, all-on settings, microseconds per reply (and which of them fired):",
        "",
        *per_check,
        "",
        "Rounds (" + " / ".join(names) + "): throughput " +
        "; ".join(" / ".join(_number(rates[n][i]) for n in names) for i in range(args.rounds)) + " msg/s; p50 " +
        "; ".join(" / ".join(_number(p50[n][i] * ms) for n in names) for i in range(args.rounds)) + " ms; p99 " +
        "; ".join(" / ".join(_number(p99[n][i] * ms) for n in names) for i in range(args.rounds)) + " ms; "
        "verdicts per drain " +
        "; ".join(" / ".join(str(flagged[n][i]) for n in names) for i in range(args.rounds)) + ". Throughput "
        "ratio to off per round (" + " / ".join(n for n in names if n != off) + "): " +
        "; ".join(" / ".join(_number(rates[n][i] / rates[off][i]) for n in names if n != off)
                  for i in range(args.rounds)) + ".",
        "",
    ]
    return "\n".join(lines) + READING_MODERATION


def render_observability(detail: dict, host: dict[str, str], args: argparse.Namespace) -> str:
    runs, half = detail["runs"], detail["half"]
    names = ("off", "tracing", "scraped")
    ms, off = 1000, "off"
    rates = {n: [r.rate for r in runs[n]] for n in names}
    rounds = range(len(rates[off]))

    def paired(values: dict[str, list[float]], name: str, scale: float = ms) -> float | None:
        """The median of the rounds' differences to tracing off (rounds pair runs made one after the other)."""
        return None if name == off else _median([a - b for a, b in zip(values[name], values[off])]) * scale

    def scrape(name: str, pick) -> float | None:
        return pick([r for r in runs[name] if r.scrapes]) if name == "scraped" else None

    seconds_per = {n: [1 / r for r in rates[n]] for n in names}
    drain_cpu = {n: [r.drain_cpu / r.count for r in runs[n]] for n in names}
    paced_cpu = {n: [r.paced_cpu / r.paced for r in runs[n]] for n in names} if half else {}
    traced = runs["tracing"]
    rows: list[tuple[str, list[float | None]]] = [
        ("throughput, echo at 0 ms, 1000 rooms (msg/s)", [_median(rates[n]) for n in names]),
        ("throughput ratio (to tracing off)", [_median(rates[n]) / _median(rates[off]) for n in names]),
        ("time per message added, drain, minus off (ms)", [paired(seconds_per, n) for n in names]),
        ("worker CPU per message, drain (ms)", [_median(drain_cpu[n]) * ms for n in names]),
        ("worker CPU per message added, drain, minus off (ms)", [paired(drain_cpu, n) for n in names]),
    ]
    if half:
        p50, p99 = detail["p50"], detail["p99"]
        rows += [
            (f"end-to-end p50 at {half:.0f} msg/s (ms)", [_median(p50[n]) * ms for n in names]),
            (f"end-to-end p99 at {half:.0f} msg/s (ms)", [_median(p99[n]) * ms for n in names]),
            ("added latency p50, minus off (ms)", [paired(p50, n) for n in names]),
            ("added latency p99, minus off (ms)", [paired(p99, n) for n in names]),
            (f"worker CPU per message at {half:.0f} msg/s (ms)", [_median(paced_cpu[n]) * ms for n in names]),
            (f"worker CPU per message added at {half:.0f} msg/s, minus off (ms)",
             [paired(paced_cpu, n) for n in names]),
        ]
    rows += [
        ("message traces received per message answered",
         [_median([r.traces / (r.count + r.paced) for r in runs[n]]) for n in names]),
        ("spans per message trace", [_median([r.spans / max(1, r.traces) for r in traced]) if n == "tracing"
                                     else None for n in names]),
        ("receiver CPU per message, drain (ms)",
         [_median([r.receiver_cpu / r.count for r in traced]) * ms if n == "tracing" else None for n in names]),
        ("/metrics scrapes per drain", [_median([r.drain_scrapes for r in runs[n]]) if n == "scraped" else None
                                        for n in names]),
        ("/metrics scrape, mean duration (ms)",
         [scrape(n, lambda rs: statistics.fmean(d for r in rs for d in r.scrapes) * ms) for n in names]),
        ("/metrics scrape, slowest (ms)", [scrape(n, lambda rs: max(d for r in rs for d in r.scrapes) * ms)
                                          for n in names]),
        ("/metrics response size (KB)",
         [scrape(n, lambda rs: _median([b for r in rs for b in r.scrape_bytes]) / 1024) for n in names]),
    ]
    columns = ["tracing off", "tracing on, 100 % sampled", "tracing off, /metrics scraped every second"]
    failures = sum(r.scrape_failures for r in runs["scraped"])
    lines = [
        "## Observability",
        "",
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC with `{args.command}` (rounds {args.rounds}, "
        f"medians; the three variants interleaved round by round, their order rotated by one each round, a "
        f"fresh worker each, after one drain not counted, tracing off; each worker drains a backlog of "
        f"{args.observability_messages} messages over 1000 rooms of 100 agents" +
        (f", then gets {args.latency_seconds:.0f} s of open-loop load at half the uncounted drain's rate "
         f"({detail['warm']:.0f} msg/s), after a warm-up at that rate; " if half else " (no open-loop load); ") +
        f"the section took {detail['minutes']:.0f} minutes).",
        "",
        "Machine: " + "; ".join(f"{k} {v}" for k, v in host.items()) + ".",
        "",
        *([f"Code: {detail['code']}.", ""] if detail.get("code") else []),
        "Gateway as above (one worker, echo provider at 0 ms, RocksDB tables, 8 partitions). \"tracing off\":",
        "no `OTEL_*` variable (the default). \"tracing on\": `OTEL_TRACES_EXPORTER=otlp`,",
        "`OTEL_TRACES_SAMPLER=always_on`, `OTEL_EXPORTER_OTLP_ENDPOINT` a local OTLP/HTTP receiver (another",
        "process on the same machine, which decodes each request and counts its spans), the batch span",
        "processor's defaults. \"/metrics scraped\": tracing off, and `GET /metrics` of the worker requested",
        "once a second from the start of the backlog to the last reply of the open-loop load, timed from the",
        "request to the last byte. CPU: the worker process's user + system time (all its threads) from the",
        "first message sent to the last reply, per message answered.",
        "",
        "| metric | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
        *[f"| {metric} | " + " | ".join(_number(v) for v in values) + " |" for metric, values in rows],
        "",
        "Rounds (" + " / ".join(columns) + "): throughput " +
        "; ".join(" / ".join(_number(rates[n][i]) for n in names) for i in rounds) + " msg/s" +
        ("; p50 " + "; ".join(" / ".join(_number(p50[n][i] * ms) for n in names) for i in rounds) + " ms; p99 " +
         "; ".join(" / ".join(_number(p99[n][i] * ms) for n in names) for i in rounds) + " ms"
         if half else "") +
        "; worker CPU per message, drain " +
        "; ".join(" / ".join(_number(drain_cpu[n][i] * ms) for n in names) for i in rounds) + " ms" +
        ("; at the open-loop rate " + "; ".join(" / ".join(_number(paced_cpu[n][i] * ms) for n in names)
                                                for i in rounds) + " ms" if half else "") +
        "; tracing on, per worker: " + ", ".join(f"{r.traces:,} message traces for {r.count + r.paced:,} messages, "
                                                 f"{_number(r.spans / max(1, r.traces))} spans each" for r in traced) +
        "; other spans (the profile updates' traces, and any whose root never came) " +
        ", ".join(str(r.other_spans) for r in traced) +
        (f"; {failures} scrapes failed" if failures else "") + ".",
        "",
    ]
    return "\n".join(lines) + READING_OBSERVABILITY


def _marked(name: str, text: str) -> str:
    return f"<!-- bench:{name} -->\n{text.strip()}\n<!-- /bench:{name} -->"


def parse(text: str) -> dict[str, str]:
    """The sections of an output file, by name (their text without the markers)."""
    found = {m.group(1): m.group(2) for m in
             re.finditer(r"^<!-- bench:(\w+) -->\n(.*?)\n<!-- /bench:\1 -->$", text, re.S | re.M)}
    if not found and text.strip():
        body = text.strip()
        if body.startswith(TITLE):
            body = body[len(TITLE):]
        found["gateway"] = body.strip()
    return found


def merge(existing: str | None, sections: dict[str, str]) -> str:
    """The output file: the sections just measured, and the other sections of `existing` as they were."""
    kept = {**parse(existing or ""), **sections}
    names = [n for n in SECTIONS if n in kept] + sorted(n for n in kept if n not in SECTIONS)
    return TITLE + "\n\n" + "\n\n".join(_marked(n, kept[n]) for n in names) + "\n"


READING = """
## Reading the figures

This machine is shared and its speed varies from day to day: the raw passthrough moved 78,902 msg/s
on the day of the previous report and 19,000-28,000 msg/s on this one. Compare figures of one run
only; the before/after figures below come from interleaved runs on one broker (medians of 3).

- **Efficiency ratio and added latency.** The passthrough does one consume and one produce per record
  and nothing else. Per message the gateway consumes twice (the input topic, then the internal
  `gateway-agent-events` topic it re-keys by agent id, which is what makes per-agent state have one
  owner and profile changes take effect at an exact offset), produces four records (the internal
  event, the reply, the billing event and the `message-outcomes` changelog row that makes redelivery
  skip the provider), validates the event and reads and writes tables. Profiled under a backlog
  (py-spy), the worker's main thread is CPU-bound (96-97% of a core): about 1.7 ms of CPU per message,
  0.6 ms in the intake hop and 1.0 ms in the processor (alone, intake forwarded ~1,500 msg/s and the
  processor answered ~950 msg/s). The time is spread: produce requests ~15%, faust's per-record
  delivery (fetch loop, conductor, stream, event, acks) ~20%, the outcome row and its changelog ~10%,
  JSON and model (de)serialisation ~10%; no single spot of ours dominates. At half the maximum rate
  the gateway has little headroom on this machine (load generator, collector and broker share its two
  cores), and its latency is bimodal: in 14 separate rounds at 268 msg/s (a fresh worker each), 11
  had p50 56-121 ms and p99 107-360 ms, one p50 442 ms and p99 3.9 s, and 2 fell behind and stayed
  behind for the 10 s (p50 3.9-4.4 s; the three slow ones were each the first round on a new broker).
  A `make bench` run whose rounds fall behind reports seconds. The ratio and latency targets
  are not met on this design; meeting them would take fewer hops and records per message or a leaner
  Kafka client than faust's.
- **Where the added latency goes.** One worker at 60 msg/s (a quarter of the rate above, open loop):
  it uses 55% of a core against 1% idle; each of the three hops adds 7-17 ms at p50 (input sent to
  internal record created by the intake, internal record to reply created by the processor, reply
  created to reply read), and inside the worker a record waits 9.3 ms at p50 (p90 19 ms) from `send`
  to the broker's acknowledgement, where the passthrough's whole round trip is 3-5 ms. So the time is
  not in the gateway's own steps but in moving records: faust runs aiokafka's consumer in a second
  thread, at low rates a fetch (40 partitions) returns as soon as one record arrives and is encoded,
  decoded and handed between threads in Python, and the producer's one request in flight per broker
  waits behind them. End to end at 60 msg/s the gateway's p50 is 12-14 ms in most rounds (passthrough
  4-6 ms), so about 8-10 ms added; at 240 msg/s, with the two cores shared by broker, load generator and
  gateway, queueing takes it to 35-65 ms. A shorter GIL switch interval (0.2-1 ms instead of 5 ms), to
  cut the time the two threads wait for each other, gave p50 36-60 ms against 46-110 ms at 240 msg/s
  over 5 alternating rounds with p99 no better, and no difference at 60 msg/s over 4: not adopted.
- **What profiling changed** (backlog drain, interleaved medians): outputs sent straight to the
  producer instead of through faust's channel layer, outcome rows as raw bytes, decoded profiles
  cached, no rejection fields built for valid input: 485 -> 682 msg/s; a fetch loop of our own instead
  of faust's (which raced four futures per record): 538 -> 760 msg/s; giving each stream record two
  event-loop turns (so calls in flight stay ahead of intake under load) costs part of that back:
  423 -> 534 msg/s from before the profiling to now. End-to-end p50 at 250 msg/s: 102 -> 72 ms.
- **Concurrency efficiency.** The in-flight bound (256 calls / 0.2 s = 1,280 msg/s) is above the
  zero-latency rate, so the bound is that rate; with a 200 ms provider the worker keeps up with it. A
  figure above 1 is the spread of the zero-latency rounds it is divided by (their range is printed
  while the benchmark runs).
- **Restore rate.** The worker times its own restore (`/health` `restore`: rows written from the
  start of the restore to its end); the rows are the profiles plus the outcome and rate-window rows of
  the messages answered before. faust-streaming 0.15's recovery loop took one changelog row at a time
  (a task per row, and the remaining offsets of every partition recomputed after each row) and decoded
  each row from JSON only for the RocksDB store to write the row's raw bytes. The gateway's loop
  (`gateway_app/kafka/recovery.py`) takes every queued row in one batch and reads changelogs as bytes.
  Same machine, same day, profiles only: before, 50,000 rows took 9.4 s (about 5,300 rows/s); after,
  100,000 rows take 4.0-4.2 s (24,000-25,000 rows/s), and a cold start with 100,000 profiles is ready
  in about 11 s instead of 29-32 s. The rest is faust's per-record delivery (fetch, conductor, one
  event per row: most of the restore's CPU in py-spy), which the target would take a restore path around.
  The previous report's 3,785 rows/s divided the rows by the difference between a cold and an empty
  start, which also counted start-up work. A warm restart does not replay the changelog and is ready
  in about the time of an empty start.
"""

READING_CONVERSATIONS = """
### Reading the figures

Figures of 2026-11-30: two runs of this section, the same code, the table above is the second (with
`--conversation-messages 2`; the default, 1 message per room, keeps a run under 20 minutes on a slow
day: the first run took 13 minutes, the second 15). Other work (test suites with their own broker and
workers) used the machine at times that day: the context-off drain moved 685-916 msg/s in the first run
and 1,094-1,289 in the second. Compare on with off within a run: they alternate round by round.

- **Throughput.** In a drain each of the 1,000 rooms (10 per agent) gets 20 messages, so the history
  sent grows from 0 to 19 earlier turns (9.5 on average) and every row ends with 20 turns (4.5 KB, about
  220 bytes a turn). Neither budget binds: at most 19 earlier turns, and a turn counts about 24 tokens
  (the echo provider counts words), some 460 for 19, far under 4,000. On/off: 0.58 (rounds 0.66, 0.62,
  0.55); first run 0.63 (0.81, 0.63, 0.52), i.e. 0.6-0.8 ms more per message. In both runs the
  context-off rate rose from round to round while context-on stayed flat. The 100,000-room measure
  (one earlier turn at most) gave 0.60 here and 0.83 in the first run (1 message per room); those are
  one run each, context off then on, minutes apart, so less reliable than the interleaved drains.
- **What context costs per message, and why.** The row is read three times (admission reads its
  header to reserve the earlier turns' tokens, the prompt stage reads and decodes every turn, the
  append after the reply reads and decodes it again); the earlier turns become up to 38 more chat
  messages for the provider (echo joins them and counts their words); and the whole row is encoded and
  written back: one more RocksDB write and one more changelog record per message, each carrying the
  whole row, not the new turn. Timed in-process on the same rows, the Python part (header, two decodes,
  window, append and encode, echo's join) takes 54 us with 1 earlier turn, 149 us with 10 and 239 us
  with 19: a fifth to a quarter of the difference. The rest was not profiled; it lies in the table's read
  and write path through faust and RocksDB and in moving the bigger records: a drain writes 20,000
  changelog records, 47 MB (2.5 KB a message on average), which the worker produces and the broker
  writes on the same two cores.
- **Latency at half the context-off rate.** 615 msg/s is 86% of the context-on drain rate (718), and
  there the context-on worker fell behind in all three rounds (p50 164 ms, 349 ms and 3.1 s; p99
  3.5-3.8 s) while context-off kept up (p50 30-56 ms, p99 56-136 ms). So the added-latency rows
  measure a worker near saturation, not the work of one message. The first run, at 376 msg/s (79% of
  its context-on rate of 475), is closer to that: one context-on round fell behind (p50 2.0 s, p99
  3.7 s); the other two had p50 76 and 68 ms against 27 and 30 ms without context (p99 275 and 237 ms
  against 272 and 76 ms): about 40-50 ms added at p50 when the worker keeps up, far more than the
  0.6-0.8 ms of work, because at the same rate the worker is busier and its queues longer. A round at
  half the context-on rate (359 msg/s) tried later that day, with test suites running beside it, had
  even context-off fall behind (p50 over 3 s): not reported. In the latency rounds the rooms held 10
  turns before the warm-up and 18 at the end.
- **Memory: the table costs what was written, not what is kept.** 100,000 rooms with 2 turns: 103 MB
  more RSS than the same run without context, for 100,000 live rows of 497 bytes (50 MB). Rows go to
  RocksDB's memtables (and its write-ahead log) and stay there until a memtable is full: faust's default
  write buffer is 64 MB per partition database, 8 partitions per table, up to 3 buffers each while one
  is flushed; and every version of a row counts until then (each turn rewrites the whole row). Here
  91.5 MB were written (the write-ahead log) for 103 MB of RSS; in the first run (1 turn per room)
  35 MB for 44 MB. So, by that configuration, the conversations table of a worker owning the 8
  partitions can take about 0.5 GB of RAM (1.5 GB at worst) before anything is flushed, whatever the
  number of rooms. The context-off worker grows the same way:
  106 -> 449 MB over 200,000 messages here (286 MB after 100,000 in the first run), mostly the
  outcome rows (1.35 KB a message in the `message-outcomes` memtables, checked apart with 50,000
  messages); the gateway section's "RSS under load" drains 20,000 messages and does not show it.
- **On disk.** While the worker runs the table is its write-ahead log: 91.5 MB, 957 bytes per room for
  two writes of 279 and 497 bytes (plus the key and the log's framing). When the worker stops the
  memtables are flushed into SST files, newest version only, compressed: 14.3 MB, 148 bytes per room.
  Every message of the benchmark is the same sentence, so real text compresses much less; read the
  running figure as the bound. The changelog holds one record per turn with the whole row: 200,000
  records, 961 bytes per room. It is compacted, so Kafka keeps only each room's newest row in the end,
  but only once a segment rolls (1 GB or 7 days by default), not within a run.
"""

READING_MODERATION = """
### Reading the figures

Figures of 2026-11-30: three runs of this section on the same commit, the table above is the third. The
first ran an earlier version of this benchmark (6,000 messages per drain, no drain left uncounted), the
second and third the code as it is. Other engineers' test suites, with their own brokers and workers,
and another benchmark ran on the machine at the same time (load average 2-5 on its 2 cores): over the
three runs the off drains moved 484-960 msg/s and the all-on ones 238-551. The gateway rows are noisy;
the in-process ones are not (the second and third runs agree within 8%; the first, which took the median
batch instead of the fastest, under heavier load, was up to 20% higher).

- **Throughput, all on.** All on was slower than off in each of the nine interleaved rounds of the three
  runs (ratio 0.30-0.96; medians 0.70 in the second run, 0.37 in the third), i.e. 0.1-2.6 ms more per
  message, where the checks themselves take 0.18 ms in-process. The rest was not profiled and could not
  be pinned down on this machine that day: a separate run of 2 interleaved rounds with off, all on
  without `repetition`, `repetition` alone and all on moved 233-839 msg/s with no consistent order (all on
  faster than off in one round). What all on does here besides the checks: every message of the benchmark
  is the same sentence, so `repetition` fires from a room's second reply on (similarity 1.0; 9,000 of
  10,000 replies per drain): each such reply carries a verdict and adds a record on
  `ai-moderation-events`; and while `repetition` runs, every reply reads and rewrites the room's
  `room-moderation` row (a RocksDB write and a changelog record). Real replies rarely repeat, so the
  events would be few; the row write stays.
- **Throughput, default.** The five default checks take 20 us per reply in-process, about 2% of the
  1.1-1.4 ms a message costs the worker at 700-900 msg/s. The rounds cannot show that: default against off
  was 1.09-1.42 in the second run and 0.72-0.86 in the third. Read it as no difference measured.
- **Latency.** The rate is half the off drain rate. In the third run off drained at 918 msg/s, its
  fastest of the three runs, and the latency rounds came after the other work on the machine had picked
  up (load average about 2-3 during the drains, 3.3-4.1 during the latency rounds): at 459 msg/s every
  round but one fell behind (p50 2.7-7.9 s; default's first round had p50 103 ms and p99 4.2 s), so the
  table's latency rows are queues, not checks.
  The second run (356 msg/s, 71% of its all-on drain rate of 498) is the readable one: off kept up in all
  three rounds (p50 27-33 ms, p99 60-65 ms), default too (p50 26-101 ms, p99 74-367 ms), all on fell
  behind in two (p50 214 and 274 ms, p99 3.6-3.8 s) and kept up in the third (p50 31 ms, p99 67 ms). When
  the worker keeps up, the checks add their in-process time to a reply (0.18 ms here); near its capacity,
  which all on lowers, the queues decide. The first run (264 msg/s) had off and default fall behind in one
  round each and all on in none.
- **In-process, per check.** On the benchmark's reply (64 characters) `language` (py3langid) is about
  140 of the 182 us; each other check 2-10 us. On a 1 KB English reply all on takes 0.87-0.93 ms: `language`
  0.53-0.59 ms, `repetition` 0.13 ms (rapidfuzz against five earlier 1 KB replies), `wordlist` 0.1 ms.
  Digits change `pii`: from 6 digits on, phonenumbers' matcher scans the text once per configured region
  (4 by default: US, GB, DE, FR), so the same reply with an order number, a time, a price and two
  ranges of days (12 digits) takes 0.5 ms in `pii` instead of 0.04, and 0.6 ms with the default checks
  alone.
- **Known weakness: digits.** A reply of 1 KB of 3-4 digit groups (phone-number-like) takes 20.4-20.6 ms
  in `pii` (24.7 in the first run; 4-8 ms per region, US the slowest), 21-22 ms with either the default
  checks or all of them: `pii` is a default check. The checks run on the worker's event loop
  (`run_local` is called directly in `moderation_out`), so every other message of that worker waits while
  they run: a worker answering only such replies would manage under 50 a second. Tables of figures, lists
  of numbers or codes in replies would meet this; fewer regions or a cap on the digits scanned would
  bound it (not measured here).
"""

READING_OBSERVABILITY = """
### Reading the figures

Figures of 2026-11-30: five full runs of this section, the table above is the fifth; the ranges below are
of the first four. The first ran an earlier version of it (latency rounds on workers of their own, at half
the median tracing-off drain rate), the others the code as it is. Other work ran on the machine at the
same time (other engineers' brokers, workers and installs, and during part of the first run two
processes taking about 0.8 of its 2 cores; load average 2-7): a worker rarely had a core to itself, and
the share of a core a draining worker got (its CPU per message times its rate) went from 0.4 to 1.0,
tracing on or off. So the drain rates are noisy: tracing off moved 177-612 msg/s, tracing on 135-295,
and the throughput ratio was 0.55, 1.02, 0.35 and 0.53 in the four runs (in the second, tracing on was
faster than off in two rounds of three). The worker's CPU per message does not depend on that share, and
it is steady: read the rates around it.

- **Tracing on costs the worker about 1.2-2.2 ms of CPU per message.** In the drains, 1.6-2.1 ms per
  message off and 3.1-3.9 ms on, in every round of the four runs (per round 1.2-2.2 ms more; medians
  1.62, 1.41, 2.13 and 1.72). Where the worker is CPU-bound, as draining a backlog, that is its
  throughput: at 2 ms a message a core answers 500 msg/s, at 3.5 ms 285. The worker's CPU includes the
  batch span processor's thread, which encodes the spans (OTLP protobuf, in Python) and posts them in
  batches of 512; how the cost splits between that and making the spans was not profiled. That is at or
  above the top of the README's figure for sampled tracing (0.5-1.5 ms per message, a micro-benchmark).
- **Every trace arrived.** 19 spans per message, one trace per message answered, none dropped (the
  batch processor's queue, 2,048 spans by default, did not overflow at these rates); the profile updates
  make 2 spans each (the "other spans"). One tracing-on worker of the third run got 5,438 message traces
  for 5,088 messages (18.03 spans on average): about 350 input records were taken in a second time, each
  a second and shorter trace. The bench counts each reply once, so its rate is not affected; the worker's
  log is kept only when the bench fails, so why they were redelivered was not established. The receiver,
  decoding in C, used 0.03-0.04 ms of CPU per message: a collector on the same machine adds its own cost.
- **Scraping `/metrics` once a second costs nothing measurable.** A scrape took 6-15 ms on average (the
  slowest 27-193 ms, under a drain's load) for about 19 KB of Prometheus text; the worker's CPU per message
  in the drains was the same as without (-0.2 to +0.4 ms against off per round, no consistent sign). A
  10 ms scrape once a second is at most 1% of a core. Odd, and not explained: the scraped drains were
  faster than the tracing-off ones in 9 rounds of 12 (ratio of the medians 0.96, 1.51, 1.26, 1.25) with
  the same CPU per message, i.e. those workers got a larger share of a core; 9 of 12 is not far from
  chance, and both variants are the same worker but for the scrapes.
- **Latency.** The open-loop rate is half the uncounted drain's rate, which varies with the machine: 205
  msg/s in the second run, 84 in the third (that drain moved 168 msg/s, the counted tracing-off ones
  195-612), 128 in the fourth. At 205 msg/s tracing off itself fell behind in two rounds of three (p50
  2.9 s): queues, not tracing. At 84 and 128 msg/s every variant kept up in every round: p50 7-45 ms off,
  7-14 ms scraped, 12-112 ms with tracing on; p99 17-174 ms off, 42-154 ms scraped, 124-491 ms on. So
  tracing on adds latency beyond its CPU time even when the worker keeps up, most at p99 (not profiled;
  the export of a batch shares the GIL with the event loop). At these rates a worker's CPU goes mostly
  to work done every second whatever the load (4-7 ms per message at 84-128 msg/s against 1.6-2.1 in a
  drain), so the CPU rows at the open-loop rate show little; a worker that falls behind answers in
  batches and spends less per message.
"""
