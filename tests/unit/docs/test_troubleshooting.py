"""docs/troubleshooting.md stays true to the code: every error code and every operator-facing log line the
code can emit has its row (a new code or line without one fails here)."""

from __future__ import annotations

import re
from pathlib import Path

from gateway_app.contract.events import ErrorCode

REPO = Path(__file__).resolve().parents[3]
DOC = (REPO / "docs" / "troubleshooting.md").read_text()
# `log.info("event.name ...`: the event name is the first word of the format string.
LOG_CALL = re.compile(r'\blog\.(?:info|warning|error|exception|critical)\(\s*f?"([a-z_0-9]+\.[a-z_0-9]+)[ "]')


def logged_events() -> set[str]:
    names = set()
    for package in ("gateway_app", "agents_tables"):
        for path in (REPO / package).rglob("*.py"):
            names |= set(LOG_CALL.findall(path.read_text()))
    return names


def test_every_error_code_has_a_row():
    missing = [code.value for code in ErrorCode if f"`{code.value}`" not in DOC]
    assert not missing, f"error codes without a row in docs/troubleshooting.md: {missing}"


def test_every_operator_facing_log_line_has_a_row():
    events = logged_events()
    assert len(events) > 40  # the pattern still finds the log calls
    missing = sorted(name for name in events if f"`{name}" not in DOC)
    assert not missing, f"log lines without a row in docs/troubleshooting.md: {missing}"
