from agents_tables import profiles
from agents_tables import outcomes
from agents_tables.outcomes import Outcome, RecentKeys
from gateway_app.contract.events import AgentProfile


def profile(version: int, agent_id: str = "a") -> AgentProfile:
    return AgentProfile(agent_id=agent_id, version=version, provider="echo", model="echo-1")


def test_only_strictly_newer_versions_apply():
    assert profiles.should_apply(None, 0)
    assert profiles.should_apply(profile(1), 2)
    assert not profiles.should_apply(profile(2), 2)
    assert not profiles.should_apply(profile(3), 2)


def test_delete_leaves_a_tombstone_that_blocks_older_updates():
    row = profiles.Tombstone(5)
    assert profiles.live(row) is None
    assert not profiles.should_apply(row, 4)
    assert profiles.should_apply(row, 6)
    assert profiles.live(profile(1)) == profile(1)


def test_rows_are_typed_at_the_table_boundary_and_round_trip():
    stored = profile(3)
    assert profiles.decode_row(profiles.encode_row(stored)) == stored
    assert profiles.decode_row({"version": 4, "deleted": True}) == profiles.Tombstone(4)
    assert profiles.encode_row(profiles.Tombstone(4)) == {"version": 4, "deleted": True}
    assert profiles.decode_row(None) is None


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


def test_profile_cache_loads_once_and_forgets_the_oldest_entry_first():
    loads = []

    def load(key):
        loads.append(key)
        return {"version": 1, "agent_id": key} if key != "ghost" else None

    cache = profiles.BoundedCache(2)
    assert cache.get("a", load)["agent_id"] == "a" and cache.get("a", load)["agent_id"] == "a"
    assert cache.get("ghost", load) is None and cache.get("ghost", load) is None  # absence is cached too
    cache.put("a", {"version": 2})  # a write refreshes the entry and its place
    assert cache.get("b", load)["agent_id"] == "b"  # full: "ghost", the oldest, goes
    assert cache.get("a", load) == {"version": 2}
    assert cache.get("ghost", load) is None
    assert loads == ["a", "ghost", "b", "ghost"]
    off = profiles.BoundedCache(0)
    off.get("a", load), off.get("a", load)
    assert loads[-2:] == ["a", "a"]
