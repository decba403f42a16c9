"""Estimates (an upper bound, like the gateway's budget reservation) and the spend cap."""

from __future__ import annotations

from decimal import Decimal

from gateway_app.contract.events import AgentProfile
from gateway_app.pricing.prices import PriceTable
from gateway_app.replay.costs import Estimate, SpendCap, TokenEstimate, estimate_cost, estimate_tokens

TABLE = PriceTable("t", {"openai": {"gpt-4o-mini": {"input": "0.15", "output": "0.60"}}})


def test_a_call_is_estimated_at_its_prompt_chars_over_4_and_all_of_max_tokens():
    profile = AgentProfile(agent_id="a", version=1, provider="openai", model="gpt-4o-mini",
                           system_prompt="be brief", max_tokens=100)
    tokens = estimate_tokens(profile, "hello there!")  # 8 + 12 characters
    assert tokens == TokenEstimate(5, 100)
    assert estimate_cost(TABLE, "openai", "gpt-4o-mini", tokens) == Decimal("0.00006075")
    assert estimate_cost(TABLE, "openai", "unknown", tokens) is None


def test_the_cap_admits_a_call_only_if_spent_in_flight_and_its_estimate_fit():
    cap = SpendCap(Decimal("1.00"), spent=Decimal("0.40"))
    assert cap.reserve(Decimal("0.30")) and cap.reserve(Decimal("0.30"))  # exactly at the cap: admitted
    assert not cap.reserve(Decimal("0.01"))  # would pass it: the run stops before this call
    cap.settle(Decimal("0.30"), Decimal("0.05"))  # the call cost less than its estimate
    assert cap.spent == Decimal("0.45") and cap.reserve(Decimal("0.25"))
    assert SpendCap(None).reserve(Decimal("1e9"))  # no cap


def test_an_estimate_counts_the_calls_it_could_not_price():
    estimate = Estimate()
    estimate.add(Decimal("0.5"), TokenEstimate(10, 20))
    estimate.add(None, None)
    assert estimate.as_json() == {"usd": "0.5", "tokens": 30, "calls": 2, "unknown": 1}
    assert "$0.5 for 1 calls" in estimate.line() and "1 more at unknown prices" in estimate.line()
