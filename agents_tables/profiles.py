"""Profile rows: versioned per agent so that duplicate and out-of-order events converge.

A delete leaves a tombstone row `{"version": v, "deleted": true}` instead of removing the key: without
it, an older update arriving after the delete would bring the agent back.
"""

from __future__ import annotations

from typing import Any, Callable

Row = dict[str, Any]


def stored_version(row: Row | None) -> int | None:
    return None if row is None else int(row["version"])


def should_apply(row: Row | None, incoming_version: int) -> bool:
    """Only a strictly newer version changes the table; equal or older ones are ignored."""
    current = stored_version(row)
    return current is None or incoming_version > current


def tombstone(version: int) -> Row:
    return {"version": version, "deleted": True}


def live(row: Row | None) -> Row | None:
    """The profile if the agent currently exists, else None (never seen, or deleted)."""
    if row is None or row.get("deleted"):
        return None
    return row


class BoundedCache:
    """Decoded rows by key, at most `capacity` of them (the oldest insertion goes first). Reading a
    profile row from RocksDB decodes its JSON on every message; the cache saves that on the hot path."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._rows: dict[str, Row | None] = {}

    def get(self, key: str, load: Callable[[str], Row | None]) -> Row | None:
        try:
            return self._rows[key]
        except KeyError:
            row = load(key)
            self.put(key, row)
            return row

    def put(self, key: str, row: Row | None) -> None:
        if self.capacity == 0:
            return
        self._rows.pop(key, None)
        if len(self._rows) >= self.capacity:
            del self._rows[next(iter(self._rows))]
        self._rows[key] = row

    def clear(self) -> None:
        self._rows.clear()
