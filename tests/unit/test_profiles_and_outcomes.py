from agents_tables import profiles
from agents_tables.outcomes import RecentKeys


def test_only_strictly_newer_versions_apply():
    assert profiles.should_apply(None, 0)
    assert profiles.should_apply({"version": 1}, 2)
    assert not profiles.should_apply({"version": 2}, 2)
    assert not profiles.should_apply({"version": 3}, 2)


def test_delete_leaves_a_tombstone_that_blocks_older_updates():
    row = profiles.tombstone(5)
    assert profiles.live(row) is None
    assert not profiles.should_apply(row, 4)
    assert profiles.should_apply(row, 6)
    assert profiles.live({"version": 1, "agent_id": "a"}) == {"version": 1, "agent_id": "a"}


def test_recent_keys_evicts_oldest_first():
    keys = RecentKeys(3)
    assert keys.add("a") == [] and keys.add("b") == [] and keys.add("c") == []
    assert keys.add("a") == []  # re-adding refreshes, evicts nothing
    assert keys.add("d") == ["b"]
    assert len(keys) == 3
