"""Factories for the pure resilience parts (every test passes its own times)."""

from __future__ import annotations

from typing import Callable

import pytest

from gateway_app.resilience.breaker import BreakerPolicy, CircuitBreaker


@pytest.fixture
def breaker_factory() -> Callable[..., CircuitBreaker]:
    """`breaker_factory(**policy)`: a closed breaker with that BreakerPolicy."""
    return lambda **policy: CircuitBreaker(BreakerPolicy(**policy))
