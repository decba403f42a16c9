"""The gateway's changelog-backed tables. All share the internal topic's partition count, so a row
and the messages that read it always live on the same partition (see gateway_app.contract.internal).

Each table is used through its typed store (profiles, windows, outcomes): rows are decoded and encoded
there and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

import faust

from agents_tables.outcomes import OutcomeStore
from agents_tables.profiles import ProfileStore
from agents_tables.windows import WindowStore

PROFILES = "agent-profiles"
RATE_WINDOWS = "agent-rate-windows"
OUTCOMES = "message-outcomes"


@dataclass(frozen=True)
class GatewayTables:
    profiles: faust.Table       # agent id -> profile row (agents_tables.profiles)
    rate_windows: faust.Table   # agent id -> current window row (agents_tables.windows)
    outcomes: faust.Table       # message id -> the reply and billing already produced (agents_tables.outcomes)


@dataclass(frozen=True)
class Stores:
    """The tables behind their typed boundaries."""

    profiles: ProfileStore
    windows: WindowStore
    outcomes: OutcomeStore

    @classmethod
    def over(cls, tables: GatewayTables, profile_cache_size: int, outcomes_per_partition: int) -> "Stores":
        return cls(ProfileStore(tables.profiles, profile_cache_size), WindowStore(tables.rate_windows),
                   OutcomeStore(tables.outcomes, outcomes_per_partition))

    def forget_local_state(self) -> None:
        """A rebalance: caches and per-partition bookkeeping may no longer match the rows we own."""
        self.profiles.forget_cached()
        self.outcomes.forget_recent()


def define_tables(app: faust.App, partitions: int, block_cache_mb: int) -> GatewayTables:
    # Each partition DB gets its own block cache; faust's default (2 GiB each) is far too large.
    options = {"block_cache_size": block_cache_mb * 1024 * 1024, "block_cache_compressed_size": 1024 * 1024}

    def table(name: str, help_text: str, **values: object) -> faust.Table:
        return app.Table(
            name, default=None, key_type=str, partitions=partitions, options=options, help=help_text, **values
        )

    return GatewayTables(
        profiles=table(PROFILES, "Agent profiles by agent id (tombstone row after a delete)."),
        rate_windows=table(RATE_WINDOWS, "Per-agent request and token counts of the current rate window."),
        # Raw bytes, stored as they are (agents_tables.outcomes): one row per answered message, the hottest table.
        outcomes=table(OUTCOMES, "Replies and billing already produced, by message id, for redeliveries.",
                       value_type=bytes),
    )
