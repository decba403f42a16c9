"""`gateway report`: one copy of each event id (the last), the days asked for, the groups, the formats."""

from __future__ import annotations

import csv
import io
import json

from gateway_app.usage_report import decode_events, recompute, render


def event(event_id: str, agent: str = "a", user: str | None = "u1", model: str = "gpt-4o-mini", cost: str = "0.00000150",
          day: str = "2026-11-26", **extra) -> dict:
    return {"event_id": event_id, "message_id": event_id, "agent_id": agent, "user_id": user, "room_id": "r",
            "provider": "openai", "model": model, "input_tokens": 10, "output_tokens": 2, "cached_input_tokens": 0,
            "reasoning_tokens": 0, "cost_usd": cost, "price_version": "v", "created_at": f"{day}T12:00:00Z", **extra}


EVENTS = [event("e1"), event("e2", agent="b", user=None), event("e1", cost="0.00000170"),  # e1 twice: the last counts
          event("e3", day="2026-11-25"), event("e4", model="gpt-4o", cost="0.00002000", user="u2"),
          event("e5", cache_hit=True, cost="0", input_tokens=0, output_tokens=0, saved_cost_usd="0.00000150",
                saved_input_tokens=10, saved_output_tokens=2)]


def test_each_event_id_counts_once_with_its_last_copy_in_the_days_asked_for():
    report = recompute(EVENTS, "2026-11-26", "2026-11-26", "agent")
    assert [(r["agent_id"], r["requests"], r["cost_usd"], r["cache_hits"]) for r in report["rows"]] == [
        ("a", 2, "0.00002170", 1), ("b", 1, "0.00000150", 0)]
    assert report["totals"]["cost_usd"] == "0.00002320" and report["totals"]["saved_cost_usd"] == "0.00000150"
    assert (report["events_read"], report["distinct_events"], report["events_in_range"]) == (6, 5, 4)
    assert "errors" not in report["totals"]  # not in billing events: the table's own counts


def test_groups_by_user_provider_and_model():
    assert [(r["user_id"], r["requests"]) for r in recompute(EVENTS, "2026-11-25", "2026-11-26", "user")["rows"]] == [
        (None, 1), ("u1", 2), ("u2", 1)]  # u1: e1, e3 and a cache hit (no call)
    models = recompute(EVENTS, "2026-11-26", "2026-11-26", "model")["rows"]
    assert [(r["provider"], r["model"]) for r in models] == [("openai", "gpt-4o"), ("openai", "gpt-4o-mini")]
    assert [r["provider"] for r in recompute(EVENTS, "2026-11-26", "2026-11-26", "provider")["rows"]] == ["openai"]


def test_formats():
    report = recompute(EVENTS, "2026-11-26", "2026-11-26", "agent")
    assert json.loads(render(report, "json")) == report
    rows = list(csv.DictReader(io.StringIO(render(report, "csv"))))
    assert rows[0]["agent_id"] == "a" and rows[0]["cost_usd"] == "0.00002170" and len(rows) == 2
    table = render(report, "table").splitlines()
    assert table[0].split()[:3] == ["agent_id", "requests", "input_tokens"] and table[-2].startswith("total")
    assert "0.00002320" in table[-2] and "4 billing events" in table[-1]


def test_records_that_are_not_billing_events_are_left_out():
    events, bad = decode_events([json.dumps(event("e1")).encode(), b"not json", None, b'{"event_id": 1}'])
    assert [e["event_id"] for e in events] == ["e1"] and bad == 3
