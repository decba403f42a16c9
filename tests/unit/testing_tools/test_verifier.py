"""The fault suite's verifier must catch what it claims to catch."""

import base64
import json

from gateway_app.contract import ids
from tests.integration.verifier import Poison, Sent, verify

SENT = [Sent("m1", "a", "r"), Sent("m2", "a", "r"), Sent("m3", "b", "r")]


def reply(mid, agent="a", status="ok", tokens=(3, 2), code=None):
    return {"message_id": mid, "reply_id": ids.reply_id(mid), "agent_id": agent, "room_id": "r", "status": status,
            "usage": {"input_tokens": tokens[0], "output_tokens": tokens[1]},
            "error": {"code": code, "message": "x"} if code else None}


def bill(mid, tokens=(3, 2)):
    return {"event_id": ids.billing_event_id(mid), "message_id": mid, "input_tokens": tokens[0],
            "output_tokens": tokens[1]}


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def dead(mid, code="provider_unavailable"):
    return {"dlq_id": f"d-{mid}", "message_id": mid, "reason": "down", "error_code": code, "source_topic": "t",
            "source_offset": 4, "key_b64": None, "value_b64": b64(json.dumps({"messageId": mid}).encode())}


GOOD = [reply("m1"), reply("m2"), reply("m3", agent="b")]
GOOD_BILLING = [bill("m1"), bill("m2"), bill("m3")]


def test_a_clean_run_passes_and_counts_duplicates():
    report = verify(SENT, GOOD + [reply("m2")], GOOD_BILLING + [bill("m2")], [])
    assert report.ok, report.problems
    assert (report.answered, report.raw_duplicates, report.billing_distinct) == (3, 1, 3)
    assert report.billed_tokens == report.replied_tokens == (9, 6)


def test_loss_is_caught():
    report = verify(SENT, GOOD[:2], GOOD_BILLING[:2], [])
    assert not report.ok and report.lost == ["m3"]


def test_duplicates_above_the_in_flight_bound_are_caught():
    report = verify(SENT, GOOD + [reply("m1"), reply("m2")], GOOD_BILLING, [], max_duplicates=1)
    assert not report.ok and "raw duplicate" in report.problems[0]


def test_billing_gaps_double_billing_and_token_mismatch_are_caught():
    assert not verify(SENT, GOOD, GOOD_BILLING[:2], []).ok
    double = dict(bill("m1"), event_id=ids.billing_event_id("m1", 1))
    assert not verify(SENT, GOOD, GOOD_BILLING + [double], []).ok
    assert not verify(SENT, GOOD, [bill("m1", (9, 9)), bill("m2"), bill("m3")], []).ok


def test_failed_message_billed_or_without_its_dlq_record_is_caught():
    failed = [reply("m1"), reply("m2", status="error", tokens=(0, 0), code="provider_unavailable"),
              reply("m3", agent="b")]
    bills = [bill("m1"), bill("m3")]
    assert verify(SENT, failed, bills, [dead("m2")]).ok
    assert not verify(SENT, failed, bills, []).ok
    assert not verify(SENT, failed, bills + [bill("m2")], [dead("m2")]).ok
    hollow = dict(dead("m2"), value_b64=None)
    assert not verify(SENT, failed, bills, [hollow]).ok


def test_conversation_order_is_checked_on_first_replies():
    swapped = [reply("m2"), reply("m1"), reply("m3", agent="b")]
    report = verify(SENT, swapped, GOOD_BILLING, [])
    assert report.order_violations == ["m1"] and not report.ok
    # A duplicate of an earlier message arriving late is not a reordering.
    assert verify(SENT, GOOD + [reply("m1")], GOOD_BILLING, []).ok


def test_poison_needs_its_dlq_record_with_the_original_bytes_and_code():
    pill = Poison("not json", "t", b"k", b"nope", "invalid_json")
    record = {"dlq_id": "d", "reason": "not JSON", "error_code": "invalid_json", "source_topic": "t",
              "source_offset": 1, "key_b64": b64(b"k"), "value_b64": b64(b"nope")}
    assert verify(SENT, GOOD, GOOD_BILLING, [record], poison=[pill]).ok
    assert not verify(SENT, GOOD, GOOD_BILLING, [], poison=[pill]).ok
    wrong = dict(record, error_code="invalid_event")
    assert not verify(SENT, GOOD, GOOD_BILLING, [wrong], poison=[pill]).ok
    valid = Poison("null key", "t", None, b"nope", None)
    assert not verify(SENT, GOOD, GOOD_BILLING, [dict(record, key_b64=None)], poison=[valid]).ok


def test_duplicates_are_told_apart_republished_bytes_from_a_second_answer():
    again = {**reply("m1"), "created_at": "later"}  # processed twice: another reply, another timestamp
    report = verify(SENT, GOOD + [reply("m2"), again], GOOD_BILLING, [])
    assert (report.raw_duplicates, report.republished, report.reanswered) == (2, 1, 1)
