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
    # Absence is not cached: a restore may write the row right after (a read during a rebalance).
    assert cache.get("ghost", load) is None and cache.get("ghost", load) is None
    cache.put("b", {"version": 1, "agent_id": "b"})
    cache.put("a", {"version": 2})  # a write refreshes the entry and its place
    assert cache.get("c", load)["agent_id"] == "c"  # full: "b", the oldest, goes
    assert cache.get("a", load) == {"version": 2}
    assert cache.get("b", load)["agent_id"] == "b"
    assert loads == ["a", "ghost", "ghost", "c", "b"]
    off = profiles.BoundedCache(0)
    off.get("a", load), off.get("a", load)
    assert loads[-2:] == ["a", "a"]


def test_a_row_restored_after_a_miss_is_seen_and_the_end_of_a_restore_drops_older_reads():
    from gateway_app.contract.events import AgentProfile

    table: dict = {}
    store = profiles.ProfileStore(table, cache_size=100)
    assert store.live("agent-1") is None  # a web view asks while the table restores
    v1 = AgentProfile(agent_id="agent-1", version=1, provider="echo", model="echo-1")
    table["agent-1"] = profiles.encode_row(v1)  # the restore writes the row (not through `apply`)
    assert store.live("agent-1").version == 1  # the miss was not remembered
    table["agent-1"] = profiles.encode_row(v1.model_copy(update={"version": 2}))  # a later changelog row
    assert store.live("agent-1").version == 1  # cached during the restore...
    store.forget_cached()  # ...until the restore ends (answering: on_rebalance_complete)
    assert store.live("agent-1").version == 2
