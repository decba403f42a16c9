"""`gateway report`: usage recomputed from the billing topic, the source of truth (replayable), with the
same arithmetic as the `agent-usage` table (`agents_tables.usage`), so the two agree to the cent.

It reads the whole billing topic with a plain consumer (no group, nothing committed), keeps one copy of
each `event_id` (the last one: see `agents_tables.usage` for why that is the copy the table counted),
takes the events whose `created_at` falls on the UTC days from `--from` to `--to` (both included), and
adds them up per agent, user, provider or model. Billing events carry what calls used and cost; the
table's `errors` and `deferrals` are not billing events and are not in the report.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from datetime import datetime, timezone
from typing import Any, Iterable, TextIO

from agents_tables.usage import GROUPS, day_of, entry_of_billing, group, total
from gateway_app.settings import Settings

COLUMNS = ("requests", "input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens", "cost_usd",
           "cache_hits", "saved_input_tokens", "saved_output_tokens", "saved_cost_usd")
REPORT_GROUPS = ("agent", "user", "provider", "model")


def recompute(events: Iterable[dict[str, Any]], first: str, last: str, group_by: str) -> dict[str, Any]:
    """`events`: billing events in the topic's order within each partition."""
    latest: dict[str, dict[str, Any]] = {}
    seen = 0
    for event in events:
        seen += 1
        latest[event["event_id"]] = event  # the last copy of an event id is the one the table counted
    entries = [entry for entry in map(entry_of_billing, latest.values()) if first <= entry.day <= last]
    rows = [billed(row) for row in group(entries, group_by)]
    return {"from": first, "to": last, "group_by": group_by, "rows": rows, "totals": billed(total(rows)),
            "events_read": seen, "distinct_events": len(latest), "events_in_range": len(entries)}


def billed(row: dict[str, Any]) -> dict[str, Any]:
    """A grouped row without the table's per-message counts (not in billing events)."""
    return {k: v for k, v in row.items() if k not in ("errors", "deferrals")}


def decode_events(values: Iterable[bytes | None]) -> tuple[list[dict[str, Any]], int]:
    """The billing events among raw record values, and how many values were not billing events."""
    events, bad = [], 0
    for value in values:
        try:
            event = json.loads(value or b"")
            day_of(event["created_at"])
            if not isinstance(event["event_id"], str):
                raise TypeError("event_id")
        except (ValueError, KeyError, TypeError, AttributeError):
            bad += 1
            continue
        events.append(event)
    return events, bad


def render(report: dict[str, Any], fmt: str) -> str:
    labels = GROUPS[report["group_by"]]
    if fmt == "json":
        return json.dumps(report, indent=2)
    header = [*labels, *COLUMNS]
    lines = [[row.get(name) for name in header] for row in report["rows"]]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows([["" if v is None else v for v in line] for line in lines])
        return out.getvalue()
    footer = ["total", *[""] * (len(labels) - 1), *[report["totals"][name] for name in COLUMNS]]
    cells = [[str(c) for c in header], *[["-" if v is None else str(v) for v in line] for line in lines],
             [str(c) for c in footer]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < len(labels) else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *map(line, cells[1:-1]), rule, line(cells[-1])]) + "\n" + \
        f"{report['events_in_range']} billing events from {report['from']} to {report['to']} " \
        f"({report['distinct_events']} distinct of {report['events_read']} read)\n"


async def read_billing(settings: Settings) -> list[bytes | None]:
    from gateway_app.credentials.kafka_rotation import bootstrap, read_changelog  # a plain reader, no group

    return [value for _, value in await read_changelog(bootstrap(settings), settings.topics.billing)]


def main(argv: list[str], out: TextIO | None = None) -> int:
    import asyncio

    out = sys.stdout if out is None else out
    today = datetime.now(timezone.utc).date().isoformat()
    parser = argparse.ArgumentParser(prog="gateway report", description="Usage recomputed from the billing topic.")
    parser.add_argument("--from", dest="first", default=today, help="first UTC day, YYYY-MM-DD (default today)")
    parser.add_argument("--to", dest="last", default=None, help="last UTC day, included (default: --from)")
    parser.add_argument("--group-by", default="agent", choices=REPORT_GROUPS)
    parser.add_argument("--format", default="table", choices=("table", "csv", "json"))
    args = parser.parse_args(argv)
    last = args.last or args.first
    try:
        first_day, last_day = (datetime.strptime(d, "%Y-%m-%d").date().isoformat() for d in (args.first, last))
    except ValueError:
        print("gateway report: --from and --to are dates, YYYY-MM-DD", file=sys.stderr)
        return 2
    if last_day < first_day:
        print("gateway report: --to is before --from", file=sys.stderr)
        return 2
    events, bad = decode_events(asyncio.run(read_billing(Settings())))
    if bad:
        print(f"gateway report: {bad} records of the billing topic are not billing events (left out)", file=sys.stderr)
    out.write(render(recompute(events, first_day, last_day, args.group_by), args.format))
    return 0
