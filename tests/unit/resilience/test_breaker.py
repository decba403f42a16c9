import random

from gateway_app.resilience.breaker import BreakerPolicy, CircuitBreaker, State
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


def test_breaker_opens_on_consecutive_failures_fails_fast_then_probes_and_closes():
    breaker = CircuitBreaker(BreakerPolicy(consecutive_failures=3, open_seconds=10, min_calls=100))
    for t in range(3):
        permit = breaker.allow(t)
        assert permit is not None and not permit.probe
        breaker.record(permit, False, t)
    assert breaker.state is State.OPEN and breaker.allow(5) is None
    probe = breaker.allow(12)
    assert probe is not None and probe.probe and breaker.state is State.HALF_OPEN
    assert breaker.allow(12) is None  # one probe at a time
    breaker.record(probe, True, 12.5)
    assert breaker.state is State.CLOSED and breaker.allow(13)


def test_breaker_reopens_when_the_probe_fails_and_opens_on_failure_rate():
    breaker = CircuitBreaker(BreakerPolicy(consecutive_failures=99, failure_rate=0.5, window=10, min_calls=10,
                                           open_seconds=1))
    for i in range(10):
        breaker.record(breaker.allow(0), i % 2 == 0, 0)  # alternate: 50% failures, never 2 in a row
    assert breaker.state is State.OPEN
    probe = breaker.allow(2)
    breaker.record(probe, False, 2)
    assert breaker.state is State.OPEN and breaker.snapshot(2.5)["open_for_s"] == 0.5


def test_half_open_probe_is_freed_when_its_call_says_nothing_about_health():
    breaker = CircuitBreaker(BreakerPolicy(consecutive_failures=1, open_seconds=1, half_open_probes=1))
    breaker.record(breaker.allow(0.0), False, 0.0)
    probe = breaker.allow(1.5)
    assert probe and breaker.state is State.HALF_OPEN
    assert breaker.allow(1.6) is None  # the one probe is out
    breaker.release(probe)  # it came back 400 (or was cancelled)
    probe = breaker.allow(1.7)
    breaker.record(probe, True, 1.8)
    assert breaker.state is State.CLOSED


def test_calls_let_through_before_a_state_change_do_not_count_after_it():
    breaker = CircuitBreaker(BreakerPolicy(consecutive_failures=2, open_seconds=1, half_open_probes=1))
    slow = breaker.allow(0.0)  # let through while closed, answers much later
    breaker.record(breaker.allow(0.1), False, 0.1)
    breaker.record(breaker.allow(0.2), False, 0.2)
    assert breaker.state is State.OPEN
    probe = breaker.allow(1.5)
    breaker.release(slow)  # a stale 400: must not free the probe
    assert breaker.allow(1.6) is None
    breaker.record(slow, True, 1.7)  # a stale success: must not close it
    assert breaker.state is State.HALF_OPEN
    breaker.record(probe, True, 1.8)
    assert breaker.state is State.CLOSED


def test_status_table():
    from gateway_app.contract.events import ErrorCode
    from gateway_app.providers.errors import from_status

    expected = {400: (ErrorCode.PROVIDER_REJECTED, False), 401: (ErrorCode.PROVIDER_AUTH_FAILED, False),
                403: (ErrorCode.PROVIDER_AUTH_FAILED, False), 404: (ErrorCode.PROVIDER_REJECTED, False),
                408: (ErrorCode.PROVIDER_UNAVAILABLE, True), 409: (ErrorCode.PROVIDER_REJECTED, True),
                422: (ErrorCode.PROVIDER_REJECTED, False), 429: (ErrorCode.PROVIDER_RATE_LIMITED, True),
                500: (ErrorCode.PROVIDER_UNAVAILABLE, True), 529: (ErrorCode.PROVIDER_UNAVAILABLE, True)}
    for status, (code, retriable) in expected.items():
        error = from_status(status, "x", {"retry-after-ms": "1500"})
        assert (error.code, error.retriable, error.retry_after) == (code, retriable, 1.5), status
