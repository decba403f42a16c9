"""A run's resume state: saved and read back, what is left, and a resume by another command refused."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import pytest

from gateway_app.replay.ranges import PartitionRange
from gateway_app.replay.state import RunState, check_run_name, load, new_run_id, save, state_path

SIGNATURE = {"from": "2026-11-26T10:00:00Z", "to": None, "agent": "bot"}


def started() -> RunState:
    return RunState.start("r1", "shadow", "ai-message-created", SIGNATURE,
                          [PartitionRange(0, 10, 20), PartitionRange(1, 5, 5), PartitionRange(2, 0, 8)])


def test_a_new_run_has_everything_left_and_advances_per_partition():
    state = started()
    assert state.remaining() == state.ranges and not state.done
    state.advance({0: 15, 2: 8})
    assert state.remaining() == [PartitionRange(0, 15, 20), PartitionRange(1, 5, 5), PartitionRange(2, 8, 8)]
    state.advance({0: 12})  # a resume point never goes back
    assert state.next_offsets[0] == 15
    state.advance({0: 20})
    assert state.done


def test_the_state_file_round_trips_and_is_replaced_whole(tmp_path):
    state = started()
    state.advance({0: 13})
    state.range_start_ms, state.totals, state.stopped = 1_700_000_000_000, {"spent_usd": "0.5"}, "cap"
    path = state_path(tmp_path, "r1")
    assert path == tmp_path / "replays" / "r1.json" and load(path) is None
    save(path, state)
    assert load(path) == state
    assert not list(path.parent.glob("*.tmp"))  # written beside, then renamed over
    assert json.loads(path.read_text())["next_offsets"] == {"0": 13, "1": 5, "2": 0}


def test_a_resume_by_another_mode_topic_or_options_is_refused():
    state = started()
    assert state.mismatch("shadow", "ai-message-created", dict(SIGNATURE)) is None
    assert "is a shadow of" in state.mismatch("reprocess", "ai-message-created", SIGNATURE)
    assert "is a shadow of" in state.mismatch("shadow", "other-topic", SIGNATURE)
    assert state.mismatch("shadow", "ai-message-created", {**SIGNATURE, "agent": "x"}).endswith("other agent")


def test_run_names_fit_in_topic_names():
    generated = new_run_id("shadow", datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc))
    assert re.fullmatch(r"shadow-20261126T100000-[0-9a-f]{4}", generated)
    assert check_run_name(generated) == generated and check_run_name("run_1.b") == "run_1.b"
    for bad in ("", "a b", "a/b", "x" * 81):
        with pytest.raises(ValueError):
            check_run_name(bad)
