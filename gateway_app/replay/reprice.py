"""`gateway replay reprice --prices <version or file>`: the billing events of a range, costed again with
another price table, into the run's own topic (`run.reprice_topic`).

Each event keeps everything (its `event_id`, tokens, times) but `cost_usd`, `price_version` and, for a
cache hit, `saved_cost_usd`; the arithmetic is `PriceTable.cost` (Decimal, 8 places), as the gateway's.
A cache hit's saved cost is recomputed from its saved tokens without a cached-input share (the event
does not record one). Every record of the range is written (a duplicate too: same id, as in the source);
the summary counts each event id once.
"""

from __future__ import annotations

import json
from collections import Counter
from contextlib import AsyncExitStack
from decimal import Decimal
from typing import Any

from gateway_app.pricing.prices import PriceTable
from gateway_app.replay.costs import price_table
from gateway_app.replay.reader import Batch, TopicReader
from gateway_app.replay.run import Job, OpenRun, drive, open_run, print_plan, reprice_topic
from gateway_app.replay.writer import Writer


def money(value: Any) -> Decimal:
    return Decimal(str(value)) if value not in (None, "") else Decimal(0)


def billing_event(value: bytes | None) -> dict[str, Any] | None:
    """A record's billing event, or None when it is not one (no id, provider or model to price by)."""
    try:
        event = json.loads(value or b"")
    except ValueError:
        return None
    if not isinstance(event, dict) or not all(isinstance(event.get(k), str) for k in ("event_id", "provider", "model")):
        return None
    return event


def reprice_event(event: dict[str, Any], table: PriceTable) -> dict[str, Any]:
    """The event as the table would have billed it."""
    provider, model = event["provider"], event["model"]
    new = {**event, "price_version": table.version}
    if event.get("cache_hit"):
        saved = table.cost(provider, model, int(event.get("saved_input_tokens") or 0),
                           int(event.get("saved_output_tokens") or 0))
        new["saved_cost_usd"] = f"{saved:f}"
        return new  # a hit used nothing: its cost stays what it was (0)
    units = event.get("units") or "tokens"
    if units != "tokens":  # a transcription (seconds) or speech (characters) call: priced per unit
        new["cost_usd"] = f"{table.unit_cost(provider, model, units, int(event.get('quantity') or 0)):f}"
        return new
    cost = table.cost(provider, model, int(event.get("input_tokens") or 0), int(event.get("output_tokens") or 0),
                      int(event.get("cached_input_tokens") or 0))
    new["cost_usd"] = f"{cost:f}"
    return new


class RepriceSummary:
    """Old and new cost per provider and model, and in total; rows as decimal strings (JSON, resumable)."""

    def __init__(self, saved: dict[str, Any] | None = None) -> None:
        self.rows: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (saved or {}).items()}

    def add(self, old: dict[str, Any], new: dict[str, Any], table: PriceTable) -> None:
        key = f"{old['provider']}/{old['model']}"
        row = self.rows.setdefault(key, {"events": 0, "old_usd": "0", "new_usd": "0", "unpriced": 0})
        row["events"] += 1
        row["old_usd"] = f"{money(row['old_usd']) + money(old.get('cost_usd')):f}"
        row["new_usd"] = f"{money(row['new_usd']) + money(new.get('cost_usd')):f}"
        units = old.get("units") or "tokens"
        priced = table.rates(old["provider"], old["model"]) if units == "tokens" else \
            table.unit_rate(old["provider"], old["model"], units)
        if priced is None:
            row["unpriced"] += 1  # billed 0 by the new table: it has no price for the model

    def total(self) -> dict[str, Any]:
        old = sum((money(r["old_usd"]) for r in self.rows.values()), Decimal(0))
        new = sum((money(r["new_usd"]) for r in self.rows.values()), Decimal(0))
        return {"events": sum(r["events"] for r in self.rows.values()), "old_usd": f"{old:f}", "new_usd": f"{new:f}",
                "difference_usd": f"{new - old:f}", "unpriced": sum(r["unpriced"] for r in self.rows.values())}

    def lines(self, new_version: str) -> list[str]:
        header = ("provider/model", "events", "old USD", f"new USD ({new_version})", "difference")
        rows = [(key, str(r["events"]), r["old_usd"], r["new_usd"], f"{money(r['new_usd']) - money(r['old_usd']):f}"
                 + (f" ({r['unpriced']} unpriced)" if r["unpriced"] else ""))
                for key, r in sorted(self.rows.items())]
        total = self.total()
        rows.append(("total", str(total["events"]), total["old_usd"], total["new_usd"], total["difference_usd"]))
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

        def line(row: tuple[str, ...]) -> str:
            return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

        return [line(header), *map(line, rows)]


class Reprice:
    def __init__(self, job: Job, opened: OpenRun, table: PriceTable, writer: Writer | None) -> None:
        self.job, self.state, self.table, self.writer = job, opened.state, table, writer
        self.topic = reprice_topic(job.settings, self.state.run)
        self.summary = RepriceSummary(self.state.totals.get("summary"))
        self.seen: set[str] = set()  # event ids counted by this invocation
        self.counts: Counter[str] = Counter()

    async def handle(self, batch: Batch) -> dict[int, int]:
        for record in batch.records:
            event = billing_event(record.value)
            if event is None:
                self.counts["unreadable"] += 1
                continue
            if self.job.args.agent is not None and event.get("agent_id") != self.job.args.agent:
                self.counts["other_agent"] += 1
                continue
            new = reprice_event(event, self.table)
            if event["event_id"] in self.seen:
                self.counts["duplicates"] += 1
            else:
                self.seen.add(event["event_id"])
                self.summary.add(event, new, self.table)
            self.counts["repriced"] += 1
            if self.writer is not None:
                value = json.dumps(new, separators=(",", ":")).encode()
                await self.writer.send(self.topic, value, key=record.key)
        self.state.totals["summary"] = self.summary.rows
        return batch.next_offsets

    def note(self) -> str:
        return f"{self.counts['repriced']} repriced"

    def report(self) -> None:
        verb = f"written to {self.topic}" if self.writer is not None else f"would be written to {self.topic}"
        self.job.say(f"{self.counts['repriced']} billing events repriced with price table {self.table.version}, "
                     f"{verb}")
        self.job.say(f"left out: {self.counts['other_agent']} of other agents, {self.counts['unreadable']} not "
                     f"billing events; {self.counts['duplicates']} duplicates (same event id) counted once")
        for line in self.summary.lines(self.table.version):
            self.job.say(line)


async def run_reprice(job: Job) -> int:
    table = price_table(job.args.prices)
    topic = job.args.topic or job.settings.topics.billing
    signature = {"from": job.args.start_text, "to": job.args.stop_text, "agent": job.args.agent,
                 "prices": job.args.prices, "price_version": table.version}
    async with TopicReader(job.settings) as reader, AsyncExitStack() as stack:
        opened = await open_run(job, reader, "reprice", topic, signature)
        print_plan(job, opened)
        job.say("estimated provider cost: $0 (no provider is called: the arithmetic is redone)")
        writer = None
        if job.execute:
            writer = await stack.enter_async_context(Writer(job.settings))
            await writer.create_topics([reprice_topic(job.settings, opened.state.run)])
        mode = Reprice(job, opened, table, writer)
        await drive(job, reader, opened, writer, mode.handle, mode.note)
        mode.report()
    return 0
