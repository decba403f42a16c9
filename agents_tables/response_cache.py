"""Response cache rows: an answer kept for a request that decides it exactly, on the agent's partition.

Key: `<agent id>\\x1f<sha256 of the request>` (see `gateway_app.pipeline.stages.cache` for what is
hashed). Because the row lives on the agent's partition, a hit is exact across workers (whoever owns the
agent owns its cache) and survives restarts (the changelog). Expired rows are deleted (a changelog
tombstone) when read and by the sweep; each partition keeps at most `per_partition` rows, the oldest
written go first.

Bytes: a header line `<expires_ms>` (the sweep reads only that), then the entry as compact JSON.
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from dataclasses import asdict, dataclass
from typing import Any, Hashable, Iterator

from agents_tables.conversations import SEPARATOR, split_key
from agents_tables.outcomes import RecentKeys
from gateway_app.providers.base import ChatResult, TokenUsage, ToolCall

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CachedAnswer:
    text: str
    finish_reason: str
    tool_calls: tuple[tuple[str, str, str], ...]
    input_tokens: int
    output_tokens: int
    provider: str
    model: str
    cost_usd: str           # what the call cost when it was made (what a hit saves)
    created_ms: int
    expires_ms: int
    truncated: bool = False  # the text was cut to the profile's max_reply_chars

    def result(self) -> ChatResult:
        """The answer as a stage answer: no tokens used by this message."""
        return ChatResult(self.text, self.finish_reason, TokenUsage(0, 0),
                          tool_calls=tuple(ToolCall(*call) for call in self.tool_calls))


def encode(entry: CachedAnswer) -> bytes:
    body = asdict(entry)
    body["tool_calls"] = [list(call) for call in entry.tool_calls]
    return f"{entry.expires_ms}\n".encode() + json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def decode(row: bytes) -> CachedAnswer:
    _, _, body = row.partition(b"\n")
    data = json.loads(body)
    data["tool_calls"] = tuple(tuple(call) for call in data["tool_calls"])
    return CachedAnswer(**data)


def expires_at(row: bytes) -> int:
    return int(row[: row.index(b"\n")])


@dataclass
class Stats:
    """Per agent, since its first cached answer: for `/agents/{id}/usage`."""

    lookups: int = 0
    hits: int = 0
    saved_input_tokens: int = 0
    saved_output_tokens: int = 0
    saved_cost_microusd: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"lookups": self.lookups, "hits": self.hits,
                "hit_ratio": round(self.hits / self.lookups, 4) if self.lookups else None,
                "saved_input_tokens": self.saved_input_tokens, "saved_output_tokens": self.saved_output_tokens,
                "saved_cost_usd": f"{self.saved_cost_microusd / 1_000_000:.6f}"}


class CacheStore:
    """The `response-cache` table (and its per-agent statistics), typed. Writes must run inside the
    agent's own event's task."""

    def __init__(self, table: Any, stats_table: Any, per_partition: int) -> None:
        self.table = table
        self.stats_table = stats_table
        self.per_partition = per_partition
        self.recent: dict[Hashable, RecentKeys] = {}

    @staticmethod
    def key_of(agent_id: str, request_hash: str) -> str:
        return f"{agent_id}{SEPARATOR}{request_hash}"

    def lookup(self, agent_id: str, request_hash: str, now_ms: int) -> CachedAnswer | None:
        """The live entry, counted in the agent's statistics; an expired one is deleted."""
        key = self.key_of(agent_id, request_hash)
        row = self.table.get(key)
        entry = None
        if row is not None:
            try:
                entry = decode(row)
            except (ValueError, KeyError, TypeError) as exc:
                log.error("cache.undecodable_row agent=%s error=%r (deleted)", agent_id, exc)
            if entry is None or entry.expires_ms <= now_ms:
                del self.table[key]
                entry = None
        self._count(agent_id, entry)
        return entry

    def put(self, partition: Hashable, agent_id: str, request_hash: str, entry: CachedAnswer) -> None:
        self.table[self.key_of(agent_id, request_hash)] = encode(entry)
        recent = self.recent.setdefault(partition, RecentKeys(self.per_partition))
        for old in recent.add(self.key_of(agent_id, request_hash)):
            self.table.pop(old, None)

    def expire(self, keys: list[str], now_ms: int) -> int:
        """The sweep's request, checked again by the owner."""
        gone = 0
        for key in keys:
            row = self.table.get(key)
            if row is not None and expires_at(row) <= now_ms:
                del self.table[key]
                gone += 1
        return gone

    def expired(self, now_ms: int) -> Iterator[tuple[str, str]]:
        """(agent id, key) of every local row past its expiry."""
        for key, row in self.table.items():
            try:
                if expires_at(row) <= now_ms:
                    yield split_key(key)[0], key
            except ValueError:
                continue

    def stats(self, agent_id: str) -> Stats:
        row = self.stats_table.get(agent_id)
        return Stats(**json.loads(row)) if row else Stats()

    def _count(self, agent_id: str, hit: CachedAnswer | None) -> None:
        stats = self.stats(agent_id)
        stats.lookups += 1
        if hit is not None:
            stats.hits += 1
            stats.saved_input_tokens += hit.input_tokens
            stats.saved_output_tokens += hit.output_tokens
            stats.saved_cost_microusd += int(Decimal(hit.cost_usd) * 1_000_000)
        self.stats_table[agent_id] = json.dumps(asdict(stats), separators=(",", ":")).encode()

    def forget_recent(self) -> None:
        self.recent.clear()
