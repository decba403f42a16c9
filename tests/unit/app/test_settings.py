import pytest

from gateway_app.settings import Settings


def test_deadline_must_stay_below_the_rebalance_timeout():
    with pytest.raises(ValueError, match="REBALANCE"):
        Settings(message_deadline_seconds=200, rebalance_timeout_seconds=120)
