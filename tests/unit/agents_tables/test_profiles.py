from agents_tables import profiles


def test_only_strictly_newer_versions_apply(profile_factory):
    assert profiles.should_apply(None, 0)
    assert profiles.should_apply(profile_factory(1), 2)
    assert not profiles.should_apply(profile_factory(2), 2)
    assert not profiles.should_apply(profile_factory(3), 2)


def test_delete_leaves_a_tombstone_that_blocks_older_updates(profile_factory):
    row = profiles.Tombstone(5)
    assert profiles.live(row) is None
    assert not profiles.should_apply(row, 4)
    assert profiles.should_apply(row, 6)
    assert profiles.live(profile_factory(1)) == profile_factory(1)


def test_rows_are_typed_at_the_table_boundary_and_round_trip(profile_factory):
    stored = profile_factory(3)
    assert profiles.decode_row(profiles.encode_row(stored)) == stored
    assert profiles.decode_row({"version": 4, "deleted": True}) == profiles.Tombstone(4)
    assert profiles.encode_row(profiles.Tombstone(4)) == {"version": 4, "deleted": True}
    assert profiles.decode_row(None) is None


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
