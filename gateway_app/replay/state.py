"""A run's resume state: what it reads (its ranges, fixed when it first starts), how far it got, and its
running totals, in `<data dir>/replays/<run>.json`.

The file is rewritten (atomically: a new file renamed over the old one) after every batch whose records
the broker acknowledged, so an interrupted run started again with the same `--run` goes on from the
next offsets of each partition. A batch cut between its last acknowledgement and the save is done again:
at least once, like the gateway itself (replies and billing events keep their ids).
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gateway_app.replay.ranges import PartitionRange

# Run names go into topic names (shadow and repriced topics): Kafka's legal characters, and short.
RUN_NAME = re.compile(r"[A-Za-z0-9._-]{1,80}")


def new_run_id(mode: str, now: datetime | None = None) -> str:
    moment = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%S")
    return f"{mode}-{moment}-{secrets.token_hex(2)}"


def check_run_name(name: str) -> str:
    if not RUN_NAME.fullmatch(name):
        raise ValueError(f"run name {name!r}: letters, digits, '.', '_' and '-' only, at most 80")
    return name


def state_path(data_dir: Path, run: str) -> Path:
    return Path(data_dir) / "replays" / f"{run}.json"


@dataclass
class RunState:
    run: str
    mode: str
    topic: str
    # What defines the run (mode options, range as given, agent): a resume with other ones is refused.
    signature: dict[str, Any]
    ranges: list[PartitionRange]
    next_offsets: dict[int, int]
    range_start_ms: int | None = None  # the earliest timestamp of the range (where other topics are read from)
    totals: dict[str, Any] = field(default_factory=dict)  # per mode: records sent, spend, summaries
    stopped: str | None = None  # why the last invocation stopped early (a spend cap), if it did

    @classmethod
    def start(cls, run: str, mode: str, topic: str, signature: dict[str, Any],
              ranges: list[PartitionRange]) -> "RunState":
        return cls(run, mode, topic, signature, ranges, {r.partition: r.start for r in ranges})

    def remaining(self) -> list[PartitionRange]:
        """What is left to read: from each partition's next offset to its end."""
        return [PartitionRange(r.partition, min(self.next_offsets.get(r.partition, r.start), r.end), r.end)
                for r in self.ranges]

    def advance(self, next_offsets: dict[int, int]) -> None:
        for partition, offset in next_offsets.items():
            self.next_offsets[partition] = max(self.next_offsets.get(partition, 0), offset)

    @property
    def done(self) -> bool:
        return all(r.size == 0 for r in self.remaining())

    def mismatch(self, mode: str, topic: str, signature: dict[str, Any]) -> str | None:
        """Why a command may not resume this run, or None when it is the same command."""
        if (mode, topic) != (self.mode, self.topic):
            return f"run {self.run} is a {self.mode} of {self.topic}"
        changed = sorted(k for k in {*signature, *self.signature} if signature.get(k) != self.signature.get(k))
        return f"run {self.run} was started with other {', '.join(changed)}" if changed else None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ranges"] = [[r.partition, r.start, r.end] for r in self.ranges]
        data["next_offsets"] = {str(p): n for p, n in self.next_offsets.items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RunState":
        return cls(
            run=data["run"], mode=data["mode"], topic=data["topic"], signature=data["signature"],
            ranges=[PartitionRange(p, s, e) for p, s, e in data["ranges"]],
            next_offsets={int(p): n for p, n in data["next_offsets"].items()},
            range_start_ms=data.get("range_start_ms"), totals=data.get("totals", {}), stopped=data.get("stopped"),
        )


def load(path: Path) -> RunState | None:
    if not path.exists():
        return None
    return RunState.from_json(json.loads(path.read_text()))


def save(path: Path, state: RunState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = path.with_suffix(".json.tmp")
    fresh.write_text(json.dumps(state.to_json(), indent=1, sort_keys=True))
    os.replace(fresh, path)  # a reader (or a crash) sees the old file or the new one, never half of one
