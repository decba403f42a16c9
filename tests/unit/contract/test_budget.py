"""The profile's `budget`: exact decimals, at least one limit, a registered fallback provider; and the
`budget_exceeded` code."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from gateway_app.contract.decode import Rejection, decode_profile
from gateway_app.contract.events import AgentProfile, BudgetSpec, ErrorCode
from gateway_app.credentials.keyring import Keyring, generate_key
from gateway_app.credentials.rotation import rotate_profile
from gateway_app.forwarding import bad_credential_refs


def test_limits_are_exact_decimals_in_either_case():
    spec = BudgetSpec.model_validate({"usdPerDay": "0.10", "usd_per_month": 3,
                                      "fallback": {"provider": "echo", "model": "echo-1"}})
    assert spec.usd_per_day == Decimal("0.10") and spec.usd_per_month == Decimal(3)
    assert spec.model_dump(mode="json")["usd_per_day"] == "0.10"
    assert ErrorCode("budget_exceeded") is ErrorCode.BUDGET_EXCEEDED


@pytest.mark.parametrize("budget", [{}, {"usdPerDay": "0"}, {"usdPerMonth": "-1"}, {"usdPerDay": "lots"},
                                    {"usdPerDay": "1", "fallback": {"provider": "echo"}}])
def test_a_budget_needs_a_positive_limit_and_a_whole_fallback(budget):
    with pytest.raises(ValidationError):
        BudgetSpec.model_validate(budget)


def test_a_profile_whose_budget_falls_back_to_an_unknown_provider_is_refused(raw_profile_factory):
    budget = {"usdPerDay": "1", "fallback": {"provider": "nope", "model": "m"}}
    result = decode_profile(raw_profile_factory(budget=budget), lambda name: name == "echo")
    assert isinstance(result, Rejection) and result.code == ErrorCode.UNKNOWN_PROVIDER
    ok = decode_profile(raw_profile_factory(budget={**budget, "fallback": {"provider": "echo", "model": "e"}}),
                        lambda name: name == "echo")
    assert ok.budget.fallback.provider == "echo"


def test_the_fallback_keys_are_checked_and_rotated_like_the_others():
    profile = AgentProfile.model_validate({"agentId": "a", "version": 1, "provider": "echo", "model": "m", "budget": {
        "usdPerDay": "1", "fallback": {"provider": "openai", "model": "m", "credentials": {"keyRef": "what:ever"}}}})
    assert bad_credential_refs(profile).code == ErrorCode.INVALID_CREDENTIALS_REF
    old, new = generate_key("kold"), generate_key("knew")
    ref = Keyring.parse(old).encrypt("a", "openai", "sk-key")
    row = {"agent_id": "a", "version": 1, "provider": "echo", "model": "m", "fallbacks": [],
           "budget": {"usd_per_day": "1", "fallback": {"provider": "openai", "model": "m", "credentials": {"key_ref": ref}}}}
    ring = Keyring.parse(f"{new},{old}")
    rotated = rotate_profile(row, ring)
    assert ring.decrypt(rotated["budget"]["fallback"]["credentials"]["key_ref"], "a", "openai").reveal() == "sk-key"
