"""`gateway replay compare <run>`: a shadow run beside the original replies to the same messages.

Per side: messages, statuses, total and mean cost (billing events, each event id once; the mean is per
message), latency p50 / p95 (the replies' `latency_ms`, ok replies) and mean reply length (characters
of ok replies). The shadow side is the run's topics; the original side is the live reply and billing
topics, for the message ids the shadow answered (a message's last final reply, else its last reply).
The latencies are not alike: the original's includes queueing, rate windows and retries in the
gateway, the shadow's only the calls made from the command.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any, Iterable

from gateway_app.replay import state as run_state
from gateway_app.replay.answered import ANSWERED_STATUSES
from gateway_app.replay.reader import TopicReader
from gateway_app.replay.run import CLOCK_SKEW_MS, Job, shadow_topics

ROWS = (("messages", "messages"), ("statuses", "statuses"), ("total cost USD", "total_cost_usd"),
        ("mean cost USD", "mean_cost_usd"), ("latency p50 ms", "latency_p50_ms"),
        ("latency p95 ms", "latency_p95_ms"), ("mean reply chars", "mean_reply_chars"))


def final_reply(replies: list[dict[str, Any]]) -> dict[str, Any]:
    answered = [r for r in replies if r.get("status") in ANSWERED_STATUSES]
    return (answered or replies)[-1]


def percentile(values: list[int], share: float) -> int | None:
    """Nearest rank: the smallest value with at least `share` of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def figures(replies: Iterable[dict[str, Any]], bills: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """One side's figures from its replies (one per message) and billing events."""
    replies = list(replies)
    costs = {b["event_id"]: Decimal(str(b.get("cost_usd") or 0)) for b in bills}  # each event id once
    total = sum(costs.values(), Decimal(0))
    ok = [r for r in replies if r.get("status") == "ok"]
    lengths = [len(r.get("content") or "") for r in ok]
    return {
        "messages": len(replies),
        "statuses": dict(sorted(Counter(r.get("status") for r in replies).items())),
        "total_cost_usd": f"{total:f}",
        "mean_cost_usd": f"{(total / len(replies)).quantize(Decimal('0.00000001')):f}" if replies else None,
        "latency_p50_ms": percentile([int(r.get("latency_ms") or 0) for r in ok], 0.50),
        "latency_p95_ms": percentile([int(r.get("latency_ms") or 0) for r in ok], 0.95),
        "mean_reply_chars": round(sum(lengths) / len(lengths), 1) if lengths else None,
    }


def by_message(values: Iterable[bytes | None]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for value in values:
        try:
            event = json.loads(value or b"")
            grouped[str(event["message_id"])].append(event)
        except (ValueError, KeyError, TypeError):
            continue
    return grouped


def compare(shadow_replies: dict[str, list[dict]], shadow_bills: dict[str, list[dict]],
            live_replies: dict[str, list[dict]], live_bills: dict[str, list[dict]], run: str) -> dict[str, Any]:
    ids = sorted(shadow_replies)
    shadow = [final_reply(shadow_replies[m]) for m in ids]
    original = [final_reply(live_replies[m]) for m in ids if live_replies.get(m)]
    models = Counter(f"{r.get('provider')}/{r.get('model')}" for r in shadow)
    return {
        "run": run,
        "shadow_model": ", ".join(sorted(models)),
        "original": figures(original, [b for m in ids for b in live_bills.get(m, ())]),
        "shadow": figures(shadow, [b for m in ids for b in shadow_bills.get(m, ())]),
        "without_original_reply": sum(1 for m in ids if not live_replies.get(m)),
    }


def cell(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items()) or "-"
    return "-" if value is None else str(value)


def render(result: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(result, indent=2) + "\n"
    header = ("", "original", f"shadow ({result['shadow_model'] or '-'})")
    rows = [(label, cell(result["original"][key]), cell(result["shadow"][key])) for label, key in ROWS]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(3)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    lines.append(f"run {result['run']}; {result['without_original_reply']} shadow messages have no original reply "
                 f"in the topics read")
    return "\n".join(lines) + "\n"


async def read_values(reader: TopicReader, topic: str, since_ms: int | None) -> list[bytes | None]:
    return [record.value async for batch in reader.since(topic, since_ms) for record in batch.records]


async def run_compare(job: Job) -> int:
    run = run_state.check_run_name(job.args.run_name)
    replies_topic, billing_topic = shadow_topics(job.settings, run)
    saved = run_state.load(run_state.state_path(job.settings.data_dir, run))
    since = job.args.since_ms
    if since is None and saved is not None and saved.range_start_ms is not None:
        since = saved.range_start_ms - CLOCK_SKEW_MS  # no original reply predates its range
    async with TopicReader(job.settings) as reader:
        if not await reader.partitions(replies_topic):
            raise ValueError(f"no shadow run {run}: topic {replies_topic} does not exist")
        shadow_replies = by_message(await read_values(reader, replies_topic, None))
        shadow_bills = by_message(await read_values(reader, billing_topic, None))
        live_replies = by_message(await read_values(reader, job.settings.topics.replies, since))
        live_bills = by_message(await read_values(reader, job.settings.topics.billing, since))
    job.out.write(render(compare(shadow_replies, shadow_bills, live_replies, live_bills, run), job.args.format))
    return 0
