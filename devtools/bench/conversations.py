"""The conversations measures: the gateway with profiles that keep a conversation (`context`) against the
same gateway with profiles that do not, on one broker.

- `drain` and `latency`: throughput draining a backlog and end-to-end latency at an open-loop rate, one
  fresh worker per run, the two kinds of profile interleaved round by round by the caller.
- `table_at_scale`: one worker answering one message (or more) in each of many rooms, then its RSS, the
  size of the conversations table's RocksDB directories and of its changelog on the broker.

With `context` a message reads its room's row, sends the earlier turns to the provider and appends its
turn after the reply (a table write and a changelog record); without it none of that happens.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from agents_tables.tables import CONVERSATIONS
from devtools.bench import load
from devtools.bench.measures import AGENTS, WARMUP_SECONDS, Gateway, rss_mb, wait_health
from devtools.kafka_local import KafkaBroker
from gateway_app.credentials.kafka_rotation import read_changelog

CONTEXT = {"maxTurns": 20, "maxTokens": 4000}
SETTLE_SECONDS = 5.0  # after the last reply: commits, changelog flushes and the event loop go quiet


@dataclass(frozen=True)
class Rows:
    """The conversations table as its changelog holds it at the end of a run (latest row per room)."""

    rooms: int
    turns_mean: float
    turns_min: int
    turns_max: int
    row_bytes_mean: float
    records: int  # changelog records (one per appended turn, none compacted away yet)

    @classmethod
    def empty(cls) -> "Rows":
        return cls(0, 0.0, 0, 0, 0.0, 0)


@dataclass(frozen=True)
class Drain:
    rate: float  # replies/s, first to last reply
    rows: Rows
    changelog_bytes: int  # the conversations changelog's log segments after the drain


async def conversation_rows(broker: KafkaBroker, app_id: str) -> Rows:
    records = await read_changelog(broker.bootstrap, changelog_topic(app_id))
    latest: dict[bytes, bytes | None] = {}
    for key, value in records:
        if key is not None:
            latest[key] = value
    rows = [value for value in latest.values() if value is not None]
    if not rows:
        return Rows(0, 0.0, 0, 0, 0.0, len(records))
    turns = [turn_count(value) for value in rows]
    return Rows(len(rows), statistics.mean(turns), min(turns), max(turns),
                statistics.mean(len(value) for value in rows), len(records))


def turn_count(row: bytes) -> int:
    """Turns in a stored row: a header line, then the row as JSON with its `turns` (read here without the
    row's decoder, so that the benchmark does not depend on the header's fields)."""
    return len(json.loads(row.partition(b"\n")[2])["turns"])


def changelog_topic(app_id: str) -> str:
    return f"{app_id}-{CONVERSATIONS}-changelog"


async def drain(broker: KafkaBroker, tmp: Path, count: int, rooms: int, context: dict | None) -> Drain:
    """Replies/s draining a pre-produced backlog of `count` messages over `rooms` rooms (of `AGENTS` agents)."""
    gw = await Gateway.start(broker, tmp, context=context)
    try:
        async with load.Collector(broker.bootstrap, gw.d.topic("replies")) as replies:
            await load.produce(broker.bootstrap, gw.d.topic("messages"),
                               [load.encode(m) for m in load.messages(count, AGENTS, rooms)])
            await replies.wait_for(count, 900)
            rate = replies.rate()
    finally:
        gw.stop()
    rows = await conversation_rows(broker, gw.d.name) if context else Rows.empty()
    return Drain(rate, rows, changelog_bytes(broker, gw.d.name))


async def latency(broker: KafkaBroker, tmp: Path, rate: float, seconds: float, rooms: int, prefill: int,
                  context: dict | None) -> tuple[list[float], Rows]:
    """End-to-end seconds per message at `rate` (open loop), after `prefill` messages per room were answered
    (so that, with context, the rooms already hold that many turns), and a warm-up at the same rate."""
    gw = await Gateway.start(broker, tmp, context=context)
    try:
        async with load.Collector(broker.bootstrap, gw.d.topic("replies")) as replies:
            expected = prefill * rooms
            if expected:
                await load.produce(broker.bootstrap, gw.d.topic("messages"),
                                   [load.encode(m) for m in load.messages(expected, AGENTS, rooms)])
                await replies.wait_for(expected, 900)
            warm = await load.open_loop(broker.bootstrap, gw.d.topic("messages"),
                                        load.messages(int(rate * WARMUP_SECONDS), AGENTS, rooms), rate)
            expected += len(warm)
            await replies.wait_for(expected, 120)
            sent = await load.open_loop(broker.bootstrap, gw.d.topic("messages"),
                                        load.messages(int(rate * seconds), AGENTS, rooms), rate)
            await replies.wait_for(expected + len(sent), 300)
            latencies = [replies.arrivals[m] - t for m, t in sent.items()]
    finally:
        gw.stop()
    return latencies, (await conversation_rows(broker, gw.d.name) if context else Rows.empty())


def dir_bytes(paths: list[Path]) -> tuple[int, int]:
    """(apparent size, allocated size) of every file under `paths`."""
    apparent = allocated = 0
    for path in paths:
        for f in path.rglob("*"):
            if f.is_file():
                st = f.stat()
                apparent += st.st_size
                allocated += st.st_blocks * 512
    return apparent, allocated


def table_dirs(data_dir: Path, table: str) -> list[Path]:
    """The table's RocksDB directories (one per partition: `<table>-<partition>.db` under faust's table dir)."""
    return sorted(p for p in data_dir.rglob(f"{table}-*.db") if p.is_dir())


def changelog_bytes(broker: KafkaBroker, app_id: str) -> int:
    """Bytes of the changelog's log segments in the broker's log dir (indexes left out: they are
    preallocated)."""
    topic = changelog_topic(app_id)
    return sum(f.stat().st_size for d in (broker.work_dir / "data").glob(f"{topic}-*") if d.is_dir()
               for f in d.glob("*.log"))


async def table_at_scale(broker: KafkaBroker, tmp: Path, rooms: int, per_room: int,
                         context: dict | None) -> dict[str, float]:
    """One worker answers `per_room` messages in each of `rooms` rooms (agent `i % AGENTS` for room `i`)."""
    gw = await Gateway.start(broker, tmp, context=context)
    pid = gw.worker.proc.pid
    count = rooms * per_room
    started = time.monotonic()
    try:
        await asyncio.sleep(SETTLE_SECONDS)
        before = rss_mb(pid)
        peak = before
        async with load.Collector(broker.bootstrap, gw.d.topic("replies")) as replies:
            await load.produce(broker.bootstrap, gw.d.topic("messages"),
                               [load.encode(m) for m in load.messages(count, AGENTS, rooms)])
            deadline = time.monotonic() + 1800
            while len(replies.arrivals) < count and time.monotonic() < deadline:
                peak = max(peak, rss_mb(pid))
                await asyncio.sleep(0.2)
            await replies.wait_for(count, 10)
            rate = replies.rate()
        await asyncio.sleep(SETTLE_SECONDS)
        after = rss_mb(pid)
        counters = (await wait_health(gw.worker, lambda h: True, 30))["counters"]
        running = dir_bytes(table_dirs(gw.worker.data_dir, CONVERSATIONS))
    finally:
        gw.stop()
    stopped = dir_bytes(table_dirs(gw.worker.data_dir, CONVERSATIONS))
    rows = await conversation_rows(broker, gw.d.name)
    return {"rate": rate, "rss_before_mb": before, "rss_after_mb": after, "rss_peak_mb": peak,
            "turns_appended": counters.get("turns_appended", 0), "rows": rows.rooms, "turns_mean": rows.turns_mean,
            "row_bytes_mean": rows.row_bytes_mean, "table_dirs": len(table_dirs(gw.worker.data_dir, CONVERSATIONS)),
            "table_bytes": stopped[0], "table_allocated": stopped[1], "table_bytes_running": running[0],
            "changelog_bytes": changelog_bytes(broker, gw.d.name), "changelog_records": rows.records,
            "seconds": time.monotonic() - started}
