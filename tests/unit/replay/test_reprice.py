"""Reprice arithmetic (Decimal, the gateway's own `PriceTable.cost`), the summary, and price tables."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from gateway_app.pricing.prices import PriceTable
from gateway_app.replay.costs import price_table
from gateway_app.replay.reprice import RepriceSummary, billing_event, reprice_event

NEW = PriceTable("new", {"openai": {"gpt-4o-mini": {"input": "1.00", "cached_input": "0.10", "output": "3.00"}}})


def bill(event_id: str, model: str = "gpt-4o-mini", cost: str = "0.00000705", **extra) -> dict:
    return {"event_id": event_id, "message_id": "m", "agent_id": "a", "provider": "openai", "model": model,
            "input_tokens": 23, "output_tokens": 6, "cached_input_tokens": 3, "cost_usd": cost,
            "price_version": "2026-11-27", "created_at": "2026-11-26T10:00:01Z", "cache_hit": False, **extra}


def test_an_event_is_costed_again_with_cached_input_at_its_rate_and_keeps_everything_else():
    old = bill("e1")
    new = reprice_event(old, NEW)
    # 20 input at 1.00, 3 cached at 0.10, 6 output at 3.00, per million tokens
    assert new["cost_usd"] == "0.00003830" == f"{(20 * Decimal('1.00') + 3 * Decimal('0.10') + 18) / 10**6:.8f}"
    assert new["price_version"] == "new"
    assert {k: v for k, v in new.items() if k not in ("cost_usd", "price_version")} == \
        {k: v for k, v in old.items() if k not in ("cost_usd", "price_version")}
    assert old["cost_usd"] == "0.00000705"  # the original is not changed


def test_a_cache_hit_costs_nothing_still_and_its_saved_cost_is_repriced():
    hit = bill("e2", cost="0", cache_hit=True, input_tokens=0, output_tokens=0, cached_input_tokens=0,
               saved_input_tokens=1000, saved_output_tokens=100, saved_cost_usd="0.00021")
    new = reprice_event(hit, NEW)
    assert new["cost_usd"] == "0" and new["saved_cost_usd"] == "0.00130000"


def test_a_model_the_new_table_lacks_is_billed_0_and_counted_as_unpriced():
    summary = RepriceSummary()
    old = bill("e3", model="gpt-9")
    summary.add(old, reprice_event(old, NEW), NEW)
    assert summary.rows["openai/gpt-9"] == {"events": 1, "old_usd": "0.00000705", "new_usd": "0.00000000",
                                            "unpriced": 1}


def test_the_summary_adds_up_per_model_and_in_total_and_survives_a_resume():
    summary = RepriceSummary()
    for event in (bill("e1"), bill("e2"), bill("e3", model="gpt-9", cost="0.1")):
        summary.add(event, reprice_event(event, NEW), NEW)
    resumed = RepriceSummary(json.loads(json.dumps(summary.rows)))  # as saved in the state file
    assert resumed.total() == {"events": 3, "old_usd": "0.10001410", "new_usd": "0.00007660",
                               "difference_usd": "-0.09993750", "unpriced": 1}
    lines = resumed.lines("new")
    assert lines[0].split()[:2] == ["provider/model", "events"]
    assert lines[1].split() == ["openai/gpt-4o-mini", "2", "0.00001410", "0.00007660", "0.00006250"]
    assert lines[-1].split() == ["total", "3", "0.10001410", "0.00007660", "-0.09993750"]


def test_billing_events_are_told_from_other_records():
    assert billing_event(json.dumps(bill("e1")).encode())["event_id"] == "e1"
    for bad in (b"{", b"[]", b'{"event_id": "e"}', None):
        assert billing_event(bad) is None


def test_price_tables_by_version_or_file(tmp_path):
    assert price_table("2026-11-01").version == "2026-11-01"
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"version": "mine", "models": {"echo": {"*": {"input": "1", "output": "1"}}}}))
    assert price_table(str(path)).cost("echo", "x", 10**6, 0) == Decimal(1)
    with pytest.raises(ValueError, match="2026-11-27"):
        price_table("1999-01-01")
    path.write_text("{}")
    with pytest.raises(ValueError, match="version"):
        price_table(str(path))
