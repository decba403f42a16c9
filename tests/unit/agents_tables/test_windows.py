from agents_tables import windows
from agents_tables.windows import Limits, Window

W = 60_000


def test_admits_until_rpm_then_defers_to_next_window():
    row = None
    for _ in range(3):
        decision = windows.admit(row, 120_500, W, Limits(rpm=3, tpm=None), estimate=10)
        assert decision.admitted
        row = decision.window
    refused = windows.admit(row, 120_900, W, Limits(rpm=3, tpm=None), estimate=10)
    assert not refused.admitted and refused.retry_at_ms == 180_000 and not refused.never
    assert windows.admit(row, 180_000, W, Limits(rpm=3, tpm=None), 10).admitted


def test_tpm_counts_reservations_and_never_fits_when_estimate_exceeds_limit():
    first = windows.admit(None, 0, W, Limits(rpm=None, tpm=100), estimate=60)
    assert first.admitted and first.window.tokens == 60
    second = windows.admit(first.window, 1, W, Limits(rpm=None, tpm=100), estimate=60)
    assert not second.admitted and second.retry_at_ms == W
    huge = windows.admit(None, 0, W, Limits(rpm=None, tpm=100), estimate=101)
    assert huge.never and not huge.admitted


def test_reconcile_corrects_only_the_reserving_window():
    row = Window(start_ms=0, requests=1, tokens=600)
    assert windows.reconcile(row, 0, -550) == Window(start_ms=0, requests=1, tokens=50)
    assert windows.reconcile(row, 60_000, -550) is None
    assert windows.reconcile(row, 0, -10_000).tokens == 0


def test_stale_row_is_an_empty_window():
    assert windows.current(Window(start_ms=0, requests=9, tokens=9), 61_000, W) == Window(
        start_ms=60_000, requests=0, tokens=0)


def test_unlimited_agent_is_always_admitted():
    row = None
    for i in range(1000):
        decision = windows.admit(row, i, W, Limits(None, None), 10_000)
        assert decision.admitted
        row = decision.window
    assert row.requests == 1000
