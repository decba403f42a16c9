"""Profile rows: versioned per agent so that duplicate and out-of-order events converge.

A delete leaves a tombstone row `{"version": v, "deleted": true}` instead of removing the key: without
it, an older update arriving after the delete would bring the agent back. Rows are typed here, at the
table boundary: the rest of the gateway sees `AgentProfile` models (defaults stated once, in the
contract) or a `Tombstone`, never a dict.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Generic, Hashable, TypeVar

from pydantic import ValidationError

from gateway_app.contract.events import AgentProfile, AgentProfileDeleted

log = logging.getLogger(__name__)
Row = dict[str, Any]
V = TypeVar("V")


@dataclass(frozen=True)
class Tombstone:
    version: int
    deleted: bool = True


StoredProfile = AgentProfile | Tombstone


def decode_row(row: Row | None) -> StoredProfile | None:
    if row is None:
        return None
    if row.get("deleted"):
        return Tombstone(int(row["version"]))
    return AgentProfile.model_validate(row)


def encode_row(stored: StoredProfile) -> Row:
    if isinstance(stored, Tombstone):
        return {"version": stored.version, "deleted": True}
    return stored.model_dump(mode="json")


def stored_version(stored: StoredProfile | None) -> int | None:
    return None if stored is None else stored.version


def should_apply(stored: StoredProfile | None, incoming_version: int) -> bool:
    """Only a strictly newer version changes the table; equal or older ones are ignored."""
    current = stored_version(stored)
    return current is None or incoming_version > current


def live(stored: StoredProfile | None) -> AgentProfile | None:
    """The profile if the agent currently exists, else None (never seen, or deleted)."""
    return stored if isinstance(stored, AgentProfile) else None


class BoundedCache(Generic[V]):
    """Decoded rows by key, at most `capacity` of them (the oldest insertion goes first). Reading a
    profile row from RocksDB decodes its JSON on every message; the cache saves that on the hot path."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._rows: dict[Hashable, V | None] = {}

    def get(self, key: Hashable, load: Callable[[Hashable], V | None]) -> V | None:
        try:
            return self._rows[key]
        except KeyError:
            row = load(key)
            if row is not None:
                # A miss is never remembered: a read while the table restores (a web view asking during
                # a rebalance) would otherwise hide the row the restore writes a moment later.
                self.put(key, row)
            return row

    def put(self, key: Hashable, row: V | None) -> None:
        if self.capacity == 0:
            return
        self._rows.pop(key, None)
        if len(self._rows) >= self.capacity:
            del self._rows[next(iter(self._rows))]
        self._rows[key] = row

    def clear(self) -> None:
        self._rows.clear()


class ProfileStore:
    """The `agent-profiles` table, typed, with a cache of decoded profiles. Every write goes through
    `apply`, which keeps the cache true; a rebalance clears it (the next owner may have changed rows),
    and so does the end of a restore (rows the restore wrote bypass `apply`)."""

    def __init__(self, table: Any, cache_size: int) -> None:
        self.table = table
        self.cache: BoundedCache[StoredProfile] = BoundedCache(cache_size)

    def get(self, agent_id: str) -> StoredProfile | None:
        return self.cache.get(agent_id, self._load)

    def _load(self, agent_id: str) -> StoredProfile | None:
        row = self.table.get(agent_id)
        try:
            return decode_row(row)
        except (ValidationError, KeyError, TypeError, ValueError) as exc:
            # Only the gateway writes this table, through `apply`: a row it cannot read is a bug (or a
            # hand edit). The agent is treated as unknown rather than stopping the partition.
            log.error("profile.undecodable_row agent=%s error=%s", agent_id, str(exc)[:300])
            return None

    def live(self, agent_id: str) -> AgentProfile | None:
        return live(self.get(agent_id))

    def apply(self, incoming: AgentProfile | AgentProfileDeleted) -> bool:
        """Store a profile or a delete if it is newer than the stored version; True if it was."""
        stored = self.get(incoming.agent_id)
        if not should_apply(stored, incoming.version):
            log.info("profile.ignored_stale agent=%s version=%s stored=%s", incoming.agent_id, incoming.version,
                     stored_version(stored))
            return False
        new: StoredProfile = incoming if isinstance(incoming, AgentProfile) else Tombstone(incoming.version)
        self.table[incoming.agent_id] = encode_row(new)
        self.cache.put(incoming.agent_id, new)
        kind = "profile" if isinstance(new, AgentProfile) else "profile_deleted"
        log.info("profile.applied agent=%s version=%s kind=%s", incoming.agent_id, incoming.version, kind)
        return True

    def forget_cached(self) -> None:
        self.cache.clear()
