"""The gateway's changelog-backed tables. All share the internal topic's partition count, so a row
and the messages that read it always live on the same partition (see gateway_app.contract.internal).
"""

from __future__ import annotations

from dataclasses import dataclass

import faust

PROFILES = "agent-profiles"
RATE_WINDOWS = "agent-rate-windows"
OUTCOMES = "message-outcomes"


@dataclass(frozen=True)
class GatewayTables:
    profiles: faust.Table       # agent id -> profile row (agents_tables.profiles)
    rate_windows: faust.Table   # agent id -> current window row (agents_tables.windows)
    outcomes: faust.Table       # message id -> the reply and billing already produced (agents_tables.outcomes)


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
