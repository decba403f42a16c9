"""What every range replay shares: opening or resuming its run, printing its plan, a progress line, and
the batch loop that moves the resume point only past records the broker acknowledged."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, TextIO

from gateway_app.replay import state as run_state
from gateway_app.replay.ranges import TimeBound, describe
from gateway_app.replay.reader import Batch, TopicReader
from gateway_app.replay.state import RunState
from gateway_app.replay.writer import Writer
from gateway_app.settings import Settings

REPLAY_HEADER = "gateway-replay"  # on every record a replay sends to a live topic: the run it came from
CLOCK_SKEW_MS = 10 * 60 * 1000  # other topics are read from a range's start minus this (producers' clocks differ)


def shadow_topics(settings: Settings, run: str) -> tuple[str, str]:
    """Where a shadow run writes its replies and billing events: never the live topics."""
    return f"{settings.topics.replies}.shadow.{run}", f"{settings.topics.billing}.shadow.{run}"


def reprice_topic(settings: Settings, run: str) -> str:
    return f"{settings.topics.billing}.reprice.{run}"


@dataclass
class Job:
    """One invocation: its settings, options and where it prints."""

    settings: Settings
    args: argparse.Namespace
    out: TextIO
    err: TextIO

    @property
    def execute(self) -> bool:
        return bool(self.args.execute)

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)


@dataclass
class OpenRun:
    state: RunState
    path: Path
    resumed: bool


async def open_run(job: Job, reader: TopicReader, mode: str, topic: str, signature: dict[str, Any]) -> OpenRun:
    """The run named by `--run` (resumed from its state file when there is one), or a new one."""
    run = run_state.check_run_name(job.args.run) if job.args.run else run_state.new_run_id(mode)
    path = run_state.state_path(job.settings.data_dir, run)
    saved = run_state.load(path)
    if saved is not None:
        problem = saved.mismatch(mode, topic, signature)
        if problem:
            raise ValueError(f"{problem}: give this command another --run")
        return OpenRun(saved, path, True)
    ranges = await reader.plan(topic, job.args.start, job.args.stop)
    state = RunState.start(run, mode, topic, signature, ranges)
    start = job.args.start
    state.range_start_ms = start.ms if isinstance(start, TimeBound) else await reader.first_timestamp(topic, ranges)
    return OpenRun(state, path, False)


def print_plan(job: Job, opened: OpenRun) -> None:
    state = opened.state
    kind = "EXECUTE" if job.execute else "dry run, nothing is written (--execute runs it)"
    job.say(f"replay {state.mode} run {state.run}: {kind}")
    if opened.resumed:
        job.say(f"resuming from the offsets saved in {opened.path}")
    elif job.execute:
        job.say(f"resume point saved after each batch in {opened.path} (run the same command with --run "
                f"{state.run} to go on after an interruption)")
    job.say(f"topic {state.topic}: from {describe(job.args.start)} to {describe(job.args.stop)}, "
            f"{len(state.ranges)} partitions")
    remaining = {r.partition: r for r in state.remaining()}
    for full in state.ranges:
        left = remaining[full.partition]
        going_on = f", next {left.start}" if left.start != full.start else ""
        job.say(f"  partition {full.partition}: offsets {full.start}..{full.end} ({full.size}){going_on}")
    job.say(f"records in range: {sum(r.size for r in state.ranges)}, left to read: "
            f"{sum(r.size for r in remaining.values())}")


class Progress:
    """One line on stderr, rewritten in place on a terminal, a new line every few seconds otherwise."""

    def __init__(self, err: TextIO, label: str, total: int) -> None:
        self.err, self.label, self.total = err, label, total
        self.tty = hasattr(err, "isatty") and err.isatty()
        self.every = 0.5 if self.tty else 5.0
        self.shown, self.last = 0.0, ""

    def tick(self, done: int, note: str = "", final: bool = False) -> None:
        now = time.monotonic()
        line = f"{self.label}: {done}/{self.total} records{', ' + note if note else ''}"
        if (not final and now - self.shown < self.every) or (final and not self.tty and line == self.last):
            return
        self.shown, self.last = now, line
        if self.tty:
            self.err.write(f"\r{line}\x1b[K" + ("\n" if final else ""))
        else:
            self.err.write(line + "\n")
        self.err.flush()


BatchHandler = Callable[[Batch], Awaitable[dict[int, int]]]


async def drive(job: Job, reader: TopicReader, opened: OpenRun, writer: Writer | None,
                handle: BatchHandler, note: Callable[[], str] = lambda: "") -> None:
    """Feed the run's remaining records to `handle` a batch at a time. `handle` returns where each
    partition goes on (earlier than the batch's end when it stopped, e.g. at the spend cap, and then
    sets `state.stopped`). With --execute, the resume point is saved once the batch's records are acked."""
    state = opened.state
    state.stopped = None
    if writer is not None:  # the range is fixed from the first invocation on, even if none of it is done
        run_state.save(opened.path, state)
    progress = Progress(job.err, f"replay {state.mode} {state.run}", sum(r.size for r in state.remaining()))
    done = 0
    async for batch in reader.batches(state.topic, state.remaining()):
        nexts = await handle(batch)
        if writer is not None:
            await writer.flush()
            state.advance(nexts)
            run_state.save(opened.path, state)
        done += len(batch.records)
        progress.tick(done, note())
        if state.stopped:
            break
    progress.tick(done, note(), final=True)

