"""Usage views: the query (days, group), and the cluster-wide merge of the workers' parts (partial when a
partition was counted by no worker, or twice)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from gateway_app.web.usage import AGENT_GROUPS, CLUSTER_GROUPS, BadQuery, Query, merge


def test_the_query_defaults_to_today_by_day():
    today = datetime.now(timezone.utc).date().isoformat()
    assert Query.of({}, AGENT_GROUPS, "day") == Query(today, today, "day")
    assert Query.of({"from": "2026-11-01"}, AGENT_GROUPS, "day") == Query("2026-11-01", "2026-11-01", "day")
    assert Query.of({"from": "2026-11-01", "to": "2026-11-30", "group_by": "user"}, AGENT_GROUPS, "day").as_json() == \
        {"from": "2026-11-01", "to": "2026-11-30", "group_by": "user"}


@pytest.mark.parametrize("params", [{"from": "yesterday"}, {"from": "2026-11-02", "to": "2026-11-01"},
                                    {"from": "2025-01-01", "to": "2026-12-31"}, {"group_by": "room"},
                                    {"group_by": "user", "_groups": "cluster"}])
def test_bad_queries_are_refused(params):
    groups = CLUSTER_GROUPS if params.pop("_groups", None) else AGENT_GROUPS
    with pytest.raises(BadQuery):
        Query.of(params, groups, "day")


def row(agent: str, requests: int, cost: str) -> dict:
    return {"agent_id": agent, "requests": requests, "cost_usd": cost}


def test_the_workers_parts_add_up_and_a_missing_partition_makes_it_partial():
    query = Query("2026-11-26", "2026-11-26", "agent")
    parts = [{"url": "http://w1", "ok": True, "partitions": [0, 1], "rows": [row("a", 2, "0.5"), row("b", 1, "0.25")]},
             {"url": "http://w2", "ok": True, "partitions": [2, 3], "rows": [row("c", 4, "1")]}]
    whole = merge(parts, query, 4)
    assert not whole["partial"] and whole["missing_partitions"] == []
    assert [(r["agent_id"], r["requests"], r["cost_usd"]) for r in whole["rows"]] == [
        ("a", 2, "0.50000000"), ("b", 1, "0.25000000"), ("c", 4, "1.00000000")]
    assert whole["totals"]["cost_usd"] == "1.75000000" and whole["totals"]["requests"] == 7
    unanswered = merge([parts[0], {"url": "http://w2", "ok": False}], query, 4)
    assert unanswered["partial"] and unanswered["missing_partitions"] == [2, 3]
    assert [w["ok"] for w in unanswered["workers"]] == [True, False]
    moving = merge([parts[0], {**parts[1], "partitions": [1, 2, 3]}], query, 4)  # a rebalance in progress
    assert moving["partial"] and moving["partitions_counted_twice"] == [1]
    assert merge(parts, query, None)["partial"]  # the partition count is not known yet


def test_rows_of_one_label_from_two_workers_are_added():
    query = Query("2026-11-26", "2026-11-26", "provider")
    parts = [{"url": "1", "ok": True, "partitions": [0], "rows": [{"provider": "openai", "requests": 1, "cost_usd": "1"}]},
             {"url": "2", "ok": True, "partitions": [1], "rows": [{"provider": "openai", "requests": 2, "cost_usd": "2"}]}]
    assert [(r["provider"], r["requests"], r["cost_usd"]) for r in merge(parts, query, 2)["rows"]] == [
        ("openai", 3, "3.00000000")]
