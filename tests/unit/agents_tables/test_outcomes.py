from agents_tables import outcomes
from agents_tables.outcomes import Outcome, RecentKeys


def test_recent_keys_evicts_oldest_first():
    keys = RecentKeys(3)
    assert keys.add("a") == [] and keys.add("b") == [] and keys.add("c") == []
    assert keys.add("a") == []  # re-adding refreshes, evicts nothing
    assert keys.add("d") == ["b"]
    assert len(keys) == 3


def test_outcome_rows_keep_the_exact_bytes_with_and_without_billing():
    with_bill = Outcome(b'{"reply_id": "r", "content": "a\\nb"}', (b'{"event_id": "e"}',))
    assert outcomes.decode(outcomes.encode(with_bill)) == with_bill
    without = Outcome(b'{"reply_id": "r"}', ())
    assert outcomes.decode(outcomes.encode(without)) == without
    regenerated = Outcome(b'{"reply_id": "r"}', (b'{"event_id": "e0"}', b'{"event_id": "e1"}'))
    assert outcomes.decode(outcomes.encode(regenerated)) == regenerated
    # Rows written before billing became a tuple: reply, newline, billing or nothing.
    assert outcomes.decode(b'{"reply_id": "r"}\n') == without


def test_rows_say_which_input_they_answered_and_whether_it_failed():
    answered = Outcome(b'{"reply_id": "r"}', (b'{"event_id": "e"}',), "ai-message-created/3/1041", True)
    failed = Outcome(b'{"reply_id": "r", "status": "error"}', (), "ai-message-created/3/1041", False)
    assert outcomes.decode(outcomes.encode(answered)) == answered
    assert outcomes.decode(outcomes.encode(failed)) == failed
    assert outcomes.encode(answered).startswith(b"#ai-message-created/3/1041 answered\n{")
    assert outcomes.origin_key("t.with.dots", 0, 7) == "t.with.dots/0/7"


def test_a_redelivery_is_absorbed_a_replay_answered_again_or_retried():
    here, elsewhere = "in/0/5", "in/1/9"
    answered, failed = Outcome(b"{}", (), here, True), Outcome(b"{}", (), here, False)
    assert outcomes.redelivery(answered, here) is outcomes.Redelivery.ABSORB
    assert outcomes.redelivery(failed, here) is outcomes.Redelivery.ABSORB
    assert outcomes.redelivery(answered, elsewhere) is outcomes.Redelivery.RESEND
    assert outcomes.redelivery(failed, elsewhere) is outcomes.Redelivery.RUN
    assert outcomes.redelivery(Outcome(b"{}"), here) is outcomes.Redelivery.RESEND  # an old row proves nothing


def test_rows_name_the_record_that_wrote_them_and_a_deferral_for_the_usage_rows():
    row = Outcome(b"{}", (b'{"event_id": "e"}',), "in/3/41", True, position=907, deferred=True)
    assert outcomes.encode(row).split(b"\n")[0] == b"#in/3/41@907+d answered"
    assert outcomes.decode(outcomes.encode(row)) == row
    plain = Outcome(b"{}", (), "in/3/41", False, position=5)
    assert outcomes.decode(outcomes.encode(plain)) == plain
    assert outcomes.redelivery(outcomes.decode(outcomes.encode(row)), "in/3/41") is outcomes.Redelivery.ABSORB
    older = outcomes.decode(b"#in/3/41 failed\n{}")  # written before the position existed
    assert older.position is None and not older.deferred and not older.answered
