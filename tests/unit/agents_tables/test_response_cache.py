"""Response cache rows and keys: everything that decides the answer is in the key; entries expire with
tombstones; each partition keeps a bounded number; the sweep asks the owner to delete what expired."""

from __future__ import annotations

import pytest

from agents_tables.response_cache import CachedAnswer, CacheStore, decode, encode
from gateway_app.contract.events import AgentProfile
from gateway_app.pipeline.stages.cache import request_hash
from gateway_app.pipeline.stages.prompt import build_request
from gateway_app.providers.base import ChatMessage


def entry(expires_ms: int = 10_000, text: str = "hi") -> CachedAnswer:
    return CachedAnswer(text, "stop", (), 12, 3, "openai", "gpt-4o-mini", "0.000010", 0, expires_ms)


def store(per_partition: int = 10) -> tuple[CacheStore, dict, dict]:
    table, stats = {}, {}
    return CacheStore(table, stats, per_partition), table, stats


def test_rows_round_trip():
    assert decode(encode(entry())) == entry()


def test_a_hit_until_expiry_then_a_tombstone():
    cache, table, _ = store()
    cache.put(0, "a", "h1", entry(expires_ms=5_000))
    assert cache.lookup("a", "h1", now_ms=4_999) == entry(expires_ms=5_000)
    assert cache.lookup("a", "h1", now_ms=5_000) is None and table == {}
    stats = cache.stats("a")
    assert (stats.lookups, stats.hits, stats.saved_input_tokens, stats.saved_cost_microusd) == (2, 1, 12, 10)
    assert cache.stats("a").as_json()["hit_ratio"] == 0.5


def test_each_partition_keeps_a_bounded_number_oldest_first():
    cache, table, _ = store(per_partition=2)
    for index in range(3):
        cache.put(0, "a", f"h{index}", entry())
    cache.put(1, "b", "h9", entry())
    assert sorted(table) == ["a\x1fh1", "a\x1fh2", "b\x1fh9"]


def test_the_sweep_finds_expired_entries_and_the_owner_checks_again():
    cache, table, _ = store()
    cache.put(0, "a", "old", entry(expires_ms=100))
    cache.put(0, "a", "new", entry(expires_ms=10_000))
    assert list(cache.expired(now_ms=1_000)) == [("a", "a\x1fold")]
    assert cache.expire(["a\x1fold", "a\x1fnew"], now_ms=1_000) == 1 and list(table) == ["a\x1fnew"]


BASE = AgentProfile(agent_id="a", version=1, provider="openai", model="gpt-4o-mini", cache={"ttl_seconds": 60})
HELLO = (ChatMessage("user", "hello"),)


def key(profile: AgentProfile = BASE, messages=HELLO) -> str:
    return request_hash(profile, build_request(profile, messages))


@pytest.mark.parametrize("change", [
    {"model": "gpt-4o"}, {"provider": "azure"}, {"temperature": 0.1}, {"max_tokens": 9}, {"stop": ["x"]},
    {"system_prompt": "be kind"}, {"options": {"top_p": 0.5}}, {"response_format": {"type": "json"}},
    {"max_reply_chars": 40}, {"fallbacks": [{"provider": "anthropic", "model": "claude"}]},
    {"tools": [{"type": "function", "function": {"name": "f"}}]},
])
def test_everything_that_decides_the_answer_changes_the_key(change):
    changed = AgentProfile.model_validate({**BASE.model_dump(), **change})
    assert key(changed) != key()


def test_the_context_is_part_of_the_key_and_the_version_and_credentials_are_not():
    assert key(messages=(ChatMessage("user", "hi"), ChatMessage("assistant", "yo")) + HELLO) != key()
    same = AgentProfile.model_validate({**BASE.model_dump(), "version": 7, "name": "renamed",
                                        "credentials": {"key_ref": "env:OTHER_KEY"}})
    assert key(same) == key()
