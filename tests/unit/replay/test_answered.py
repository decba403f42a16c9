"""Which messages count as answered (left out of `reprocess` and `dlq replay`), and what reprocess does
with each record of its range."""

from __future__ import annotations

import json

import pytest

from gateway_app.replay.answered import ANSWERED_STATUSES, ReplyIndex, ids_of, is_answered
from gateway_app.replay.reprocess import content_of, decide


def reply(message_id: str, status: str) -> bytes:
    return json.dumps({"message_id": message_id, "status": status}).encode()


@pytest.mark.parametrize("status", ["ok", "blocked", "rate_limited", "agent_unavailable"])
def test_a_final_status_answers_a_message_even_after_earlier_errors(status):
    assert is_answered({"error", status})
    assert status in ANSWERED_STATUSES


def test_only_error_replies_or_none_leave_a_message_unanswered():
    assert not is_answered({"error"}) and not is_answered(set())


def test_the_index_reads_reply_records_and_counts_the_unreadable():
    index = ReplyIndex().add_all([reply("m1", "error"), reply("m1", "ok"), reply("m2", "error"), b"{", None,
                                  b'{"status": "ok"}'])
    assert index.answered("m1") and not index.answered("m2") and not index.answered("m3")
    assert index.seen("m2") and not index.seen("m3")
    assert index.unreadable == 3


def test_input_ids_come_in_either_case_and_records_without_them_are_unreadable():
    assert ids_of(b'{"messageId": "m1", "agentId": "a"}') == ("m1", "a")
    assert ids_of(b'{"message_id": "m1", "agent_id": "a"}') == ("m1", "a")
    for bad in (b"", b"[]", b'{"messageId": "m1"}', b'{"messageId": 7, "agentId": "a"}', b"\xff", None):
        assert ids_of(bad) is None
    assert content_of(b'{"content": "hi"}') == "hi" and content_of(b"[1]") == "" and content_of(b"{") == ""


INDEX = ReplyIndex().add_all([reply("answered", "ok"), reply("failed", "error"), reply("limited", "rate_limited")])


@pytest.mark.parametrize("ids, agent, offset, committed, sent, expected", [
    (("failed", "a"), None, 5, 10, set(), "send"),
    (("never-replied", "a"), None, 5, 10, set(), "send"),
    (("answered", "a"), None, 5, 10, set(), "answered"),
    (("limited", "a"), None, 5, 10, set(), "answered"),
    (("failed", "a"), "b", 5, 10, set(), "other_agent"),
    (("failed", "a"), None, 10, 10, set(), "not_consumed"),  # the live workers will read it themselves
    (("failed", "a"), None, 5, None, set(), "not_consumed"),  # the group committed nothing there
    (("failed", "a"), None, 5, 10, {"failed"}, "duplicate"),
    (None, None, 5, 10, set(), "unreadable"),
])
def test_what_reprocess_does_with_a_record(ids, agent, offset, committed, sent, expected):
    assert decide(ids, agent, offset, committed, INDEX, sent) == expected
