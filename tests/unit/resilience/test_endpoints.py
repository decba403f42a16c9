"""Per-endpoint caps and pauses: pure bookkeeping on the times passed in."""

import pytest

from gateway_app.resilience.breaker import BreakerPolicy
from gateway_app.resilience.endpoints import Caps, Endpoints, parse_caps


def test_caps_wait_for_the_next_minute_and_settle_to_actual_tokens():
    endpoints = Endpoints(BreakerPolicy(), parse_caps({"a": {"rpm": 2}, "a:big": {"tpm": 100}}))
    small = endpoints.get("a", "m1", "u")
    assert small.caps == Caps(rpm=2) and small.wait_time(10, 0.0) == 0
    small.take(10)
    small.take(10)
    assert small.wait_time(10, 1.0) == pytest.approx(59.0)
    assert small.wait_time(10, 60.0) == 0  # a new window
    big = endpoints.get("a", "big", "u")
    big.wait_time(80, 0.0)
    window = big.take(80)
    assert big.wait_time(30, 1.0) > 0
    big.settle(window, 80, 20)  # it used 20, not 80
    assert big.wait_time(30, 1.0) == 0
    late = big.take(30)
    big.wait_time(10, 61.0)  # a new window began before the call settled
    big.settle(late, 30, 5)
    assert big.tokens == 0  # the old window's reservation is not taken out of the new one


def test_unknown_or_non_positive_caps_are_refused():
    with pytest.raises(ValueError, match="unknown field"):
        parse_caps({"a": {"rps": 3}})
    with pytest.raises(ValueError, match=">= 1"):
        parse_caps({"a": {"rpm": 0}})
