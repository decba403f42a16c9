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
