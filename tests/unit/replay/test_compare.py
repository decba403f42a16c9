"""`replay compare`'s figures: per side, count, statuses, cost, latency percentiles, reply length."""

from __future__ import annotations

import json

from gateway_app.replay.compare import by_message, compare, figures, final_reply, percentile, render


def reply(message_id: str, status: str = "ok", latency: int = 100, content: str = "abcd", **extra) -> dict:
    return {"message_id": message_id, "status": status, "latency_ms": latency, "content": content,
            "provider": "echo", "model": "echo-2", **extra}


def test_percentiles_are_nearest_rank():
    values = list(range(1, 101))
    assert (percentile(values, 0.5), percentile(values, 0.95)) == (50, 95)
    assert percentile([7], 0.95) == 7 and percentile([], 0.5) is None
    assert percentile([30, 10, 20], 0.5) == 20


def test_the_final_reply_is_the_last_answered_else_the_last():
    assert final_reply([reply("m", "error"), reply("m", "ok", latency=5), reply("m", "error")])["latency_ms"] == 5
    assert final_reply([reply("m", "error", latency=1), reply("m", "error", latency=2)])["latency_ms"] == 2


def test_a_sides_figures():
    replies = [reply("a", latency=100, content="ab"), reply("b", latency=300, content="abcd"),
               reply("c", "error", latency=9000, content="")]
    bills = [{"event_id": "e1", "cost_usd": "0.10"}, {"event_id": "e1", "cost_usd": "0.10"},  # a duplicate
             {"event_id": "e2", "cost_usd": "0.20"}]
    assert figures(replies, bills) == {
        "messages": 3, "statuses": {"error": 1, "ok": 2}, "total_cost_usd": "0.30", "mean_cost_usd": "0.10000000",
        "latency_p50_ms": 100, "latency_p95_ms": 300, "mean_reply_chars": 3.0}  # latency and length: ok replies
    assert figures([], [])["mean_cost_usd"] is None


def test_both_sides_cover_the_shadows_message_ids_only():
    shadow = by_message([json.dumps(reply("a")).encode(), json.dumps(reply("b")).encode(), b"{"])
    live = by_message([json.dumps(reply("a", "error", provider="openai")).encode(),
                       json.dumps(reply("a", latency=800, provider="openai")).encode(),
                       json.dumps(reply("zzz")).encode()])
    result = compare(shadow, {}, live, {"a": [{"event_id": "x", "cost_usd": "0.5"}]}, "run-1")
    assert result["original"]["messages"] == 1 and result["shadow"]["messages"] == 2
    assert result["original"]["latency_p50_ms"] == 800 and result["original"]["total_cost_usd"] == "0.5"
    assert result["without_original_reply"] == 1 and result["shadow_model"] == "echo/echo-2"
    table = render(result, "table")
    assert table.splitlines()[0].split() == ["original", "shadow", "(echo/echo-2)"]
    assert table.splitlines()[1].split() == ["messages", "1", "2"]
    assert json.loads(render(result, "json")) == result
