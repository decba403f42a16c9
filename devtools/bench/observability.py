"""The observability measures: the gateway with tracing off (the default), with tracing on and every
message sampled, and with tracing off while `GET /metrics` is scraped once a second, on one broker.

- `run`: one fresh worker drains a backlog (throughput, and the worker's CPU per message), then gets
  open-loop load at a fixed rate (end-to-end latency); `measure` interleaves the three variants round by
  round.
- `Receiver`: a local OTLP/HTTP trace receiver that only counts what it gets, in a process of its own.
- `Scraper`: `GET /metrics` of the worker once a second while a round runs, timed.

The receiver is not the tests' fake (`tests/fakes/otlp_receiver.py`): devtools does not import from the
tests, and that fake keeps every span as a Python object with its attributes (19 spans a message, some
100,000 a worker here), in a thread of the process that serves it, which would be the bench's own (whose
collector times the replies). This one decodes each request (upb, in C) and counts spans per trace: the
bench needs no more to show that tracing was on and whether the worker dropped spans (its batch processor
drops them when its queue is full). Profile updates are traced too (their own traces), so spans are
counted by their trace's root span.

Run as `python -m devtools.bench.observability PORT` it is that receiver: `POST /v1/traces` counts,
`GET /counts` answers `{"spans": n, "requests": n, "roots": {"process messages": [traces, spans], ...}}`:
traces by their root span's name with the deployment's topic prefix left out ("(no root)": spans whose
trace's root has not arrived).
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from devtools.bench import load
from devtools.bench.measures import AGENTS, WARMUP_SECONDS, Gateway, percentile
from devtools.bench.report import code
from devtools.bench.server_process import ServerProcess
from devtools.kafka_local import KafkaBroker

ROOMS = 1000
VARIANTS = ("off", "tracing", "scraped")  # the table's columns, in this order
SCRAPE_INTERVAL_S = 1.0


# ---- the receiver ---------------------------------------------------------------------------------

class _Counts(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the exporter sends one request per batch of 512 spans
    counts = {"spans": 0, "requests": 0}
    traces: dict[bytes, list] = {}  # trace id -> [spans, root span's name or None]
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 (the base class's naming)
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        export = ExportTraceServiceRequest.FromString(body)
        with self.lock:
            for resource_spans in export.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        trace = self.traces.setdefault(span.trace_id, [0, None])
                        trace[0] += 1
                        if not span.parent_span_id:
                            trace[1] = span.name
                        self.counts["spans"] += 1
            self.counts["requests"] += 1
        self._answer(b"", "application/x-protobuf")  # an empty ExportTraceServiceResponse: all accepted

    def do_GET(self) -> None:  # noqa: N802
        roots: dict[str, list[int]] = {}
        with self.lock:
            for spans, name in self.traces.values():
                # "process bench-1a2b3c4d.messages" -> "process messages": the same key in every deployment
                key = f"{name.split(' ', 1)[0]} {name.rsplit('.', 1)[-1]}" if name else "(no root)"
                entry = roots.setdefault(key, [0, 0])
                entry[0] += 1
                entry[1] += spans
            body = json.dumps({**self.counts, "roots": roots}).encode()
        self._answer(body, "application/json")

    def _answer(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass  # one line per export would be noise


class Receiver(ServerProcess):
    """The counting receiver as a subprocess on a free local port (its CPU is not the bench process's)."""

    def __init__(self) -> None:
        super().__init__("devtools.bench.observability", "OTLP receiver")
        self.url = self.base

    def counts(self) -> dict:
        counts = self.get_counts()
        if counts is None:
            raise RuntimeError("the OTLP receiver does not answer")
        return counts

    def env(self) -> dict[str, str]:
        """Tracing on, every message sampled, exported to this receiver; the SDK's defaults otherwise."""
        return {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": self.url,
                "OTEL_TRACES_SAMPLER": "always_on"}


# ---- the scraper ----------------------------------------------------------------------------------

@dataclass
class Scraper:
    """`GET /metrics` once a second (a thread does the blocking request) from `start` to `stop`."""

    port: int
    durations: list[float] = field(default_factory=list)  # seconds per scrape, request to last byte
    sizes: list[int] = field(default_factory=list)
    failures: int = 0
    _task: asyncio.Task | None = None

    def _scrape(self) -> None:
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as response:
                size = len(response.read())
        except OSError:
            self.failures += 1
            return
        self.durations.append(time.perf_counter() - started)
        self.sizes.append(size)

    async def _loop(self) -> None:
        due = time.monotonic()
        while True:  # on a fixed schedule, as Prometheus scrapes, however long a scrape took
            await asyncio.to_thread(self._scrape)
            due += SCRAPE_INTERVAL_S
            await asyncio.sleep(max(0.0, due - time.monotonic()))

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


# ---- the measures ---------------------------------------------------------------------------------

MESSAGE_ROOT = "process messages"  # the intake's span: the root of a message's trace (no upstream parent)


@dataclass(frozen=True)
class Run:
    """One worker: a backlog drained, then (if asked) open-loop load at a fixed rate."""

    count: int  # messages of the backlog
    rate: float  # replies/s draining it, first to last reply
    drain_cpu: float  # CPU seconds of the worker from the backlog's first message sent to its last reply
    receiver_cpu: float  # CPU seconds of the receiver in the same time
    drain_scrapes: int  # /metrics scrapes during the drain (scraped only)
    latencies: list[float]  # end-to-end seconds per message of the open-loop load (not its warm-up)
    paced: int  # messages of the open-loop load, its warm-up included
    paced_cpu: float  # CPU seconds of the worker from the warm-up's first message to the load's last reply
    traces: int  # message traces the receiver got from this worker (tracing only)
    spans: int  # the spans of those traces
    other_spans: int  # the rest: the profile updates' traces, and spans whose root never came
    scrapes: list[float]  # seconds per /metrics scrape, drain and load
    scrape_bytes: list[int]
    scrape_failures: int


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, all its threads (utime and stime of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(broker: KafkaBroker, tmp: Path, variant: str, receiver: Receiver, count: int, rate: float,
              seconds: float) -> Run:
    """A fresh worker for `variant` drains a pre-produced backlog of `count` messages (over `ROOMS` rooms of
    `AGENTS` agents); then, if `rate`, it gets `seconds` of open-loop load at `rate` after a warm-up at that
    rate (the same worker: a worker start costs more than the load). Spans are counted once the worker has
    stopped (its SDK exports what it still holds as it exits)."""
    before = receiver.counts()
    gw = await Gateway.start(broker, tmp, **(receiver.env() if variant == "tracing" else {}))
    scraper = Scraper(gw.worker.web_port)
    topic, worker, latencies, paced, paced_cpu = gw.d.topic("messages"), gw.worker.proc.pid, [], 0, 0.0
    try:
        async with load.Collector(broker.bootstrap, gw.d.topic("replies")) as replies:
            if variant == "scraped":
                scraper.start()
            cpu = cpu_seconds(worker), cpu_seconds(receiver.proc.pid)
            await load.produce(broker.bootstrap, topic, [load.encode(m) for m in load.messages(count, AGENTS, ROOMS)])
            await replies.wait_for(count, 900)
            drain_cpu, receiver_cpu = cpu_seconds(worker) - cpu[0], cpu_seconds(receiver.proc.pid) - cpu[1]
            drained, drain_scrapes = replies.rate(), len(scraper.durations) + scraper.failures
            if rate:
                cpu = cpu_seconds(worker)
                warm = await load.open_loop(broker.bootstrap, topic,
                                            load.messages(int(rate * WARMUP_SECONDS), AGENTS, ROOMS), rate)
                await replies.wait_for(count + len(warm), 120)
                sent = await load.open_loop(broker.bootstrap, topic, load.messages(int(rate * seconds), AGENTS, ROOMS),
                                            rate)
                await replies.wait_for(count + len(warm) + len(sent), 300)
                paced_cpu, paced = cpu_seconds(worker) - cpu, len(warm) + len(sent)
                latencies = [replies.arrivals[m] - t for m, t in sent.items()]
    finally:
        scraper.stop()
        await asyncio.to_thread(gw.stop)
    after = receiver.counts()
    traces, spans = (a - b for a, b in zip(after["roots"].get(MESSAGE_ROOT, (0, 0)),
                                           before["roots"].get(MESSAGE_ROOT, (0, 0))))
    return Run(count, drained, drain_cpu, receiver_cpu, drain_scrapes, latencies, paced, paced_cpu, traces, spans,
               after["spans"] - before["spans"] - spans, scraper.durations, scraper.sizes, scraper.failures)


async def measure(args, broker: KafkaBroker, tmp: Path) -> dict[str, object]:
    """A drain not counted (tracing off; half its rate is the open-loop rate), then the three variants
    interleaved round by round, the order rotated by one each round."""
    started = time.monotonic()
    # The bench's own OTEL_* variables would reach every worker: "off" must be the default.
    inherited = sorted(name for name in os.environ if name.startswith("OTEL_"))
    for name in inherited:
        del os.environ[name]
    if inherited:
        print(f"observability: ignoring this process's {', '.join(inherited)}", flush=True)
    receiver = await asyncio.to_thread(Receiver)
    try:
        # The first drain on a new broker is often slow (see the gateway section's note): not counted.
        warm = await run(broker, tmp, "off", receiver, args.observability_messages, 0.0, 0.0)
        half = warm.rate / 2 if args.observability_latency else 0.0
        print(f"observability warm-up drain (not counted): {warm.rate:.0f}/s; open loop at {half:.0f}/s", flush=True)
        runs: dict[str, list[Run]] = {v: [] for v in VARIANTS}
        for round_no in range(args.rounds):
            shift = round_no % len(VARIANTS)
            for variant in VARIANTS[shift:] + VARIANTS[:shift]:
                runs[variant].append(await run(broker, tmp, variant, receiver, args.observability_messages, half,
                                               args.latency_seconds))
            last = {v: runs[v][-1] for v in VARIANTS}
            print(f"observability round {round_no + 1}: " + ", ".join(
                f"{v} {r.rate:.0f}/s, CPU {r.drain_cpu / r.count * 1000:.2f} ms/msg" +
                (f", p50 {percentile(r.latencies, 0.5) * 1000:.1f} ms p99 {percentile(r.latencies, 0.99) * 1000:.1f}"
                 f" ms, CPU {r.paced_cpu / r.paced * 1000:.2f} ms/msg" if half else "") for v, r in last.items()) +
                f" ({last['tracing'].traces} traces of {last['tracing'].spans / max(1, last['tracing'].traces):.2f}"
                f" spans, {last['tracing'].other_spans} other spans; {len(last['scraped'].scrapes)} scrapes)",
                flush=True)
    finally:
        receiver.stop()
    return {"runs": runs, "half": half, "warm": warm.rate, "code": code(),
            "p50": {v: [percentile(r.latencies, 0.5) for r in runs[v]] for v in VARIANTS} if half else {},
            "p99": {v: [percentile(r.latencies, 0.99) for r in runs[v]] for v in VARIANTS} if half else {},
            "minutes": (time.monotonic() - started) / 60}


def serve(port: int) -> None:
    ThreadingHTTPServer(("127.0.0.1", port), _Counts).serve_forever()


if __name__ == "__main__":
    serve(int(sys.argv[1]))
