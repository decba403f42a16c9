from gateway_app.resilience.breaker import State


def test_breaker_opens_on_consecutive_failures_fails_fast_then_probes_and_closes(breaker_factory):
    breaker = breaker_factory(consecutive_failures=3, open_seconds=10, min_calls=100)
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


def test_breaker_reopens_when_the_probe_fails_and_opens_on_failure_rate(breaker_factory):
    breaker = breaker_factory(consecutive_failures=99, failure_rate=0.5, window=10, min_calls=10, open_seconds=1)
    for i in range(10):
        breaker.record(breaker.allow(0), i % 2 == 0, 0)  # alternate: 50% failures, never 2 in a row
    assert breaker.state is State.OPEN
    probe = breaker.allow(2)
    breaker.record(probe, False, 2)
    assert breaker.state is State.OPEN and breaker.snapshot(2.5)["open_for_s"] == 0.5


def test_half_open_probe_is_freed_when_its_call_says_nothing_about_health(breaker_factory):
    breaker = breaker_factory(consecutive_failures=1, open_seconds=1, half_open_probes=1)
    breaker.record(breaker.allow(0.0), False, 0.0)
    probe = breaker.allow(1.5)
    assert probe and breaker.state is State.HALF_OPEN
    assert breaker.allow(1.6) is None  # the one probe is out
    breaker.release(probe)  # it came back 400 (or was cancelled)
    probe = breaker.allow(1.7)
    breaker.record(probe, True, 1.8)
    assert breaker.state is State.CLOSED


def test_calls_let_through_before_a_state_change_do_not_count_after_it(breaker_factory):
    breaker = breaker_factory(consecutive_failures=2, open_seconds=1, half_open_probes=1)
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
