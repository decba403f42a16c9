import random

from gateway_app.resilience.retry import RetryPolicy, parse_retry_after


def test_backoff_is_jittered_below_an_exponential_capped_ceiling():
    policy = RetryPolicy(base_delay=0.5, max_delay=3.0)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (9, 3.0)]:
        delays = [policy.backoff(attempt, rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # full jitter uses the whole range


def test_next_delay_gives_up_on_attempts_deadline_and_long_retry_after():
    policy = RetryPolicy(max_attempts=3, deadline=10, retry_after_cap=5)
    rng = random.Random(1)
    assert policy.next_delay(1, 0.0, 2.0, rng) == 2.0
    assert policy.next_delay(3, 0.0, None, rng) is None
    assert policy.next_delay(1, 0.0, 6.0, rng) is None
    assert policy.next_delay(2, 9.5, 1.0, rng) is None


def test_retry_after_forms():
    assert parse_retry_after({"Retry-After": "3"}, 0) == 3.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}, 0) == 0.25
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, 1445412480.0) == 10.0
    assert parse_retry_after({"retry-after": "soon"}, 0) is None
    assert parse_retry_after({}, 0) is None
