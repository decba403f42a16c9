"""Usage rows: what an agent's billing events add up to, per day (with a breakdown per provider and
model) and per user and day; and the rule that counts each billing event exactly once, also across a
kill -9. The arithmetic is pure; `UsageStore` is the table boundary.
It is long on purpose: the exactly-once argument, the rows it is about and the code that follows it
are read together, in one file.

Rows (JSON), on the agent's partition:

    d␟<day>␟<agent id>           {"b": {"<provider>␟<model>": totals}, "floor": f, "seen": [...]}
    u␟<agent id>␟<day>␟<user id>  {"b": {"": totals}, "floor": f, "seen": [...]}

`day` is the UTC date of the billing event's `created_at` (what `gateway report` groups by); the user
id is "" for messages without one. Totals: `requests` (provider calls billed), `input_tokens`,
`output_tokens`, `cached_input_tokens`, `reasoning_tokens`, `cost_usd` (an exact decimal), `cache_hits`
with the tokens and cost they saved, `errors` (messages that failed) and `deferrals` (messages that
waited for a rate window or the budget). The day-first key of the agent rows lets one worker read
every agent's days in a range without reading other days (the cluster-wide view).

Exactly once. A message's usage rows are written by its own task, on the agent's partition, in the same
step as its outcome row (`agents_tables.outcomes`), once the broker acknowledged its reply and billing
records; each row write is the whole row. A kill -9 can lose the tail of any changelog partition, so any
of these records may survive without the others. Each row therefore says which messages it counted, by
their offset in the agent's partition of `gateway-agent-events`: `seen`, the offsets it counted at or
above `floor`, where the floor is the oldest record of that partition not yet finished on the worker
that wrote the row. A record below the floor had finished, so its usage rows were written before this
row version, earlier in the same changelog partition: when this version survived, so did they. A message
at offset k is counted in a row iff `k in seen` or `k < floor`; offsets below the floor leave `seen`, so
a row remembers only the messages finished past the oldest one still in progress. With that:

1. The outcome row lost: the message runs again at the same offset (a redelivery). A row that counted it
   adds nothing; a row that did not (it was lost too) adds the new run. Billing events that a row
   counted are not published again: their first copy is on the topic (the rows were written after the
   broker had it).
2. The outcome row kept, a usage row lost: the redelivery is absorbed (a replay re-sent) by the outcome
   row, which names the offset of the run that wrote it and carries that run's billing events and reply:
   each row adds them unless it counted that offset.
3. Whenever a message comes back, each of its rows is written again (the same value when it adds
   nothing): a kill -9 can leave rows in the local store whose changelog records were lost, and this puts
   them back before the input offset is committed.
4. A replay of a message that failed after using tokens (a DLQ replay, at another offset) bills under the
   same event ids: its failed outcome row names them, and they count once.

So the table counts, of the copies of an event id on the billing topic, the last one: an earlier copy is
one whose usage rows were lost with its outcome row (the run after it counted its own copy), a later one
is a replay of the same bytes. `gateway report` keeps the last copy, and agrees with the table to the
last decimal. Known limits: a message run again after a kill -9 across midnight UTC can count in both
days; when a kill -9 lost one of a message's two rows and kept the other, the lost one counts the new
run's figures (they differ only for a provider whose token counts vary between identical calls).
"""

from __future__ import annotations

import json
import logging
from bisect import bisect_left, insort
from collections import OrderedDict
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable, Hashable, Iterable, Iterator, Mapping

log = logging.getLogger(__name__)
SEP = "\x1f"
MAX_SEEN = 20_000  # offsets one row keeps at most; the floor normally keeps it to the messages in flight
# Decoded rows kept per worker by default (GATEWAY_USAGE_CACHE_ROWS): each message reads its agent's day
# and user rows twice and writes them once; decoding them (JSON, decimals) every time cost about a tenth
# of a worker's CPU per message.
CACHED_ROWS = 4096
QUANTUM = Decimal("0.00000001")
END = "\U0010ffff"  # sorts after any character of an id
MONEY = ("cost_usd", "saved_cost_usd")
GROUPS = {"day": ("day",), "agent": ("agent_id",), "provider": ("provider",), "model": ("provider", "model"),
          "user": ("user_id",)}


@dataclass
class Totals:
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    cache_hits: int = 0
    saved_input_tokens: int = 0
    saved_output_tokens: int = 0
    saved_cost_usd: Decimal = Decimal(0)
    errors: int = 0
    deferrals: int = 0

    def add(self, other: "Totals") -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @classmethod
    def of_billing(cls, event: Mapping[str, Any]) -> "Totals":
        """One billing event: a provider call, or a cache hit (no call; what it saved)."""
        if event.get("cache_hit"):
            return cls(cache_hits=1, saved_input_tokens=int(event.get("saved_input_tokens") or 0),
                       saved_output_tokens=int(event.get("saved_output_tokens") or 0),
                       saved_cost_usd=Decimal(event.get("saved_cost_usd") or 0))
        return cls(requests=1, input_tokens=int(event["input_tokens"]), output_tokens=int(event["output_tokens"]),
                   cached_input_tokens=int(event.get("cached_input_tokens") or 0),
                   reasoning_tokens=int(event.get("reasoning_tokens") or 0), cost_usd=Decimal(event["cost_usd"]))

    def as_json(self) -> dict[str, Any]:
        """Every field; money as a decimal string with 8 places (what billing events carry)."""
        return {f.name: money(getattr(self, f.name)) if f.name in MONEY else getattr(self, f.name)
                for f in fields(self)}

    def as_row(self) -> dict[str, Any]:
        return {name: value for name, value in self.as_json().items() if value not in (0, money(Decimal(0)))}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "Totals":
        return cls(**{name: Decimal(value) if name in MONEY else int(value) for name, value in row.items()})


def money(value: Decimal) -> str:
    return f"{value.quantize(QUANTUM):f}"


@dataclass
class Seen:
    """The messages a row counted: offsets (of the agent's partition of `gateway-agent-events`) at or
    above `floor`; every message below the floor was counted before, if it belongs to the row."""

    floor: int | None = None
    offsets: list[int] = field(default_factory=list)  # sorted

    def counts(self, position: int | None) -> bool:
        if position is None:
            return False
        if self.floor is not None and position < self.floor:
            return True
        at = bisect_left(self.offsets, position)
        return at < len(self.offsets) and self.offsets[at] == position

    def add(self, position: int | None) -> None:
        if position is not None and not self.counts(position):
            insort(self.offsets, position)

    def raise_floor(self, floor: int | None) -> None:
        if floor is not None and (self.floor is None or floor > self.floor):
            self.floor = floor
            del self.offsets[:bisect_left(self.offsets, floor)]
        if len(self.offsets) > MAX_SEEN:  # pathological: a record unfinished for very long, many after it
            log.warning("usage.seen_trimmed dropped=%d (a message run again after a crash may count twice)",
                        len(self.offsets) - MAX_SEEN)
            del self.offsets[:len(self.offsets) - MAX_SEEN]

    def as_row(self) -> dict[str, Any]:
        base, deltas = self.floor or 0, []
        for offset in self.offsets:  # delta-encoded: offsets are close together
            deltas.append(offset - base)
            base = offset
        return {"floor": self.floor, "seen": deltas}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "Seen":
        floor = row.get("floor")
        offsets, base = [], floor or 0
        for delta in row.get("seen", ()):
            base += delta
            offsets.append(base)
        return cls(floor, offsets)


@dataclass
class UsageRow:
    buckets: dict[str, Totals] = field(default_factory=dict)  # day rows: "<provider>␟<model>"; user rows: ""
    seen: Seen = field(default_factory=Seen)

    def add(self, buckets: Mapping[str, Totals]) -> None:
        for bucket, totals in buckets.items():
            self.buckets.setdefault(bucket, Totals()).add(totals)

    def total(self) -> Totals:
        whole = Totals()
        for totals in self.buckets.values():
            whole.add(totals)
        return whole


def encode(row: UsageRow) -> bytes:
    body = {"b": {bucket: totals.as_row() for bucket, totals in row.buckets.items()}, **row.seen.as_row()}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def decode(raw: bytes | None) -> UsageRow:
    if not raw:
        return UsageRow()
    data = json.loads(raw)
    return UsageRow({bucket: Totals.from_row(totals) for bucket, totals in data.get("b", {}).items()},
                    Seen.from_row(data))


def day_key(day: str, agent_id: str) -> str:
    return f"d{SEP}{day}{SEP}{agent_id}"


def user_key(agent_id: str, day: str, user_id: str | None) -> str:
    return f"u{SEP}{agent_id}{SEP}{day}{SEP}{user_id or ''}"


def model_bucket(provider: str | None, model: str | None) -> str:
    return f"{provider or ''}{SEP}{model or ''}"


def day_of(created_at: str | datetime) -> str:
    """The UTC date of an event's `created_at` (an ISO 8601 string or a datetime)."""
    moment = datetime.fromisoformat(created_at.replace("Z", "+00:00")) if isinstance(created_at, str) else created_at
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).date().isoformat()


@dataclass(frozen=True)
class Entry:
    """Usage with its labels: one billing event, or one bucket of a row."""

    day: str
    agent_id: str
    provider: str | None
    model: str | None
    user_id: str | None
    totals: Totals

    def labels(self, by: str) -> tuple:
        return tuple(getattr(self, name) for name in GROUPS[by])


def entry_of_billing(event: Mapping[str, Any]) -> Entry:
    return Entry(day_of(event["created_at"]), event["agent_id"], event.get("provider"), event.get("model"),
                 event.get("user_id"), Totals.of_billing(event))


def message_entry(reply: Mapping[str, Any], *, deferred: bool) -> Entry | None:
    """What a message adds besides its billing events: a failure, a deferral (counted per message). An
    outcome that passed a consultation on (an internal record, no `status`) adds its billing only."""
    if "status" not in reply:
        return None
    failed = reply["status"] not in ("ok", "blocked")
    if not failed and not deferred:
        return None
    return Entry(day_of(reply["created_at"]), reply["agent_id"], reply.get("provider"), reply.get("model"),
                 reply.get("user_id"), Totals(errors=int(failed), deferrals=int(deferred)))


def rows_of(entries: Iterable[Entry]) -> dict[str, dict[str, Totals]]:
    """The rows these entries add to (one agent's): row key -> bucket -> totals."""
    rows: dict[str, dict[str, Totals]] = {}
    for entry in entries:
        for key, bucket in ((day_key(entry.day, entry.agent_id), model_bucket(entry.provider, entry.model)),
                            (user_key(entry.agent_id, entry.day, entry.user_id), "")):
            rows.setdefault(key, {}).setdefault(bucket, Totals()).add(entry.totals)
    return rows


def group(entries: Iterable[Entry], by: str) -> list[dict[str, Any]]:
    """Entries added up per label of `by` (day | agent | provider | model | user), sorted by label."""
    if by not in GROUPS:
        raise ValueError(f"group_by must be one of {', '.join(GROUPS)}")
    sums: dict[tuple, Totals] = {}
    for entry in entries:
        sums.setdefault(entry.labels(by), Totals()).add(entry.totals)
    names = GROUPS[by]
    return [{**dict(zip(names, labels)), **totals.as_json()}
            for labels, totals in sorted(sums.items(), key=lambda item: tuple(v or "" for v in item[0]))]


def total(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The sum of grouped rows (as `group` returns them)."""
    whole = Totals()
    names = {f.name for f in fields(Totals)}
    for row in rows:
        whole.add(Totals.from_row({k: v for k, v in row.items() if k in names}))
    return whole.as_json()


def days_between(first: str, last: str) -> list[str]:
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return [(start + timedelta(days=n)).isoformat() for n in range((end - start).days + 1)]


class UsageStore:
    """The `agent-usage` table, typed. Writes must run inside the agent's own event's task."""

    def __init__(self, table: Any, cached_rows: int = CACHED_ROWS) -> None:
        self.table = table
        self.cached_rows = cached_rows  # 0: every read decodes the table's row
        # The oldest record of a partition not finished on this worker (the dispatcher's acker says).
        self.floor_of: Callable[[Hashable], int | None] = lambda partition: None
        self._closed: dict[tuple[str, str], Decimal] = {}  # (agent, yesterday) -> spend of the month before it
        # key -> the row as last read or written here; callers only read what `row` returns, `add` alone
        # changes it. Cleared when a rebalance ends (a restore may have written any row).
        self._rows: OrderedDict[str, UsageRow] = OrderedDict()

    def row(self, key: str) -> UsageRow:
        row = self._rows.get(key)
        if row is not None:
            self._rows.move_to_end(key)
            return row
        row = decode(self.table.get(key))
        if self.cached_rows:
            self._rows[key] = row
            if len(self._rows) > self.cached_rows:
                self._rows.popitem(last=False)
        return row

    def forget_cached(self) -> None:
        self._rows.clear()

    def counted(self, key: str, position: int | None) -> bool:
        return self.row(key).seen.counts(position)

    def add(self, partition: Hashable, position: int | None, key: str, buckets: Mapping[str, Totals]) -> None:
        """Add a message's usage to one row unless the row counted it; write the row either way."""
        row = self.row(key)
        try:
            if not row.seen.counts(position):
                row.add(buckets)
                row.seen.add(position)
            row.seen.raise_floor(self.floor_of(partition))
            self.table[key] = encode(row)
        except BaseException:
            self._rows.pop(key, None)  # the cached row may be ahead of the table now: read it again
            raise

    def day(self, agent_id: str, day: str) -> UsageRow:
        return self.row(day_key(day, agent_id))

    def spent(self, agent_id: str, day: str) -> Decimal:
        return self.day(agent_id, day).total().cost_usd

    def spent_month(self, agent_id: str, today: str) -> Decimal:
        """The month of `today` up to it. Days before yesterday no longer change (a billing event is dated
        when it is made): their sum is kept in memory."""
        first, yesterday = today[:8] + "01", (date.fromisoformat(today) - timedelta(days=1)).isoformat()
        closed = self._closed.get((agent_id, yesterday))
        if closed is None:
            closed = sum((self.spent(agent_id, d) for d in days_between(first, yesterday)[:-1]), Decimal(0))
            self._closed = {k: v for k, v in self._closed.items() if k[1] == yesterday}
            self._closed[(agent_id, yesterday)] = closed
        live = [d for d in (yesterday, today) if d >= first]
        return closed + sum((self.spent(agent_id, d) for d in live), Decimal(0))

    def agent_entries(self, agent_id: str, first: str, last: str) -> Iterator[Entry]:
        """The agent's day rows in [first, last], one entry per provider and model."""
        for day in days_between(first, last):
            for bucket, totals in self.day(agent_id, day).buckets.items():
                provider, _, model = bucket.partition(SEP)
                yield Entry(day, agent_id, provider or None, model or None, None, totals)

    def user_entries(self, agent_id: str, first: str, last: str) -> Iterator[Entry]:
        prefix = f"u{SEP}{agent_id}{SEP}"
        for key, raw in scan(self.table, prefix, prefix + first, prefix + last + SEP + END):
            day, _, user_id = key[len(prefix):].partition(SEP)
            yield Entry(day, agent_id, None, None, user_id or None, decode(raw).total())

    def local_entries(self, first: str, last: str) -> Iterator[Entry]:
        """Every agent's day rows in [first, last] on this worker's active partitions."""
        for key, raw in scan(self.table, f"d{SEP}", f"d{SEP}{first}", f"d{SEP}{last}{SEP}{END}"):
            day, _, agent_id = key[2:].partition(SEP)
            for bucket, totals in decode(raw).buckets.items():
                provider, _, model = bucket.partition(SEP)
                yield Entry(day, agent_id, provider or None, model or None, None, totals)

    def forget_recent(self) -> None:
        self._closed.clear()
        self._rows.clear()


def scan(table: Any, prefix: str, start: str, stop: str) -> Iterator[tuple[str, bytes]]:
    """(key, value) of the rows whose key starts with `prefix` and lies in [start, stop], in key order
    within each active partition: a seek in RocksDB rather than a read of the whole table."""
    store = getattr(table, "data", None)
    actives = getattr(store, "_dbs_for_actives", None)
    if actives is None or not getattr(store, "use_rocksdict", False):
        for key in sorted(k for k in list(table.keys()) if k.startswith(prefix) and start <= k <= stop):
            yield key, table[key]
        return
    encoded_prefix, begin = store._encode_key(prefix)[:-1], store._encode_key(start)[:-1]  # no closing quote
    for db in list(actives()):
        for raw_key, raw_value in db.items(from_key=begin):
            if not raw_key.startswith(encoded_prefix):
                break
            key = store._decode_key(raw_key)
            if key > stop:
                break
            yield key, store._decode_value(raw_value)
