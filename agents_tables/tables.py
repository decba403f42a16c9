"""The gateway's changelog-backed tables. All share the internal topic's partition count, so a row
and the messages that read it always live on the same partition (see gateway_app.contract.internal).

Each table is used through its typed store (profiles, windows, outcomes): rows are decoded and encoded
there and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

import faust

from typing import TYPE_CHECKING

from agents_tables.conversations import Caps, ConversationStore
from agents_tables.moderation import ModerationStore
from agents_tables.outcomes import OutcomeStore
from agents_tables.profiles import ProfileStore
from agents_tables.response_cache import CacheStore
from agents_tables.room_index import RoomIndexStore
from agents_tables.usage import UsageStore
from agents_tables.windows import WindowStore

if TYPE_CHECKING:
    from gateway_app.settings import Settings

PROFILES = "agent-profiles"
RATE_WINDOWS = "agent-rate-windows"
OUTCOMES = "message-outcomes"
CONVERSATIONS = "agent-conversations"
RESPONSE_CACHE = "response-cache"
CACHE_STATS = "response-cache-stats"
ROOM_MODERATION = "room-moderation"
ROOM_AGENTS = "room-agents"
USAGE = "agent-usage"
PROVIDER_CAPACITY = "provider-capacity"


@dataclass(frozen=True)
class GatewayTables:
    profiles: faust.Table       # agent id -> profile row (agents_tables.profiles)
    rate_windows: faust.Table   # agent id -> current window row (agents_tables.windows)
    outcomes: faust.Table       # message id -> the reply and billing already produced (agents_tables.outcomes)
    conversations: faust.Table  # agent id + room id -> the turns (agents_tables.conversations)
    response_cache: faust.Table  # agent id + request hash -> an answer (agents_tables.response_cache)
    cache_stats: faust.Table    # agent id -> cache lookups, hits and savings
    room_moderation: faust.Table  # agent id + room id -> active signals, recent replies (agents_tables.moderation)
    room_agents: faust.Table    # room id -> agents seen lately (on gateway-room-events' partitions)
    usage: faust.Table          # agent x day, agent x user x day -> usage totals (agents_tables.usage)
    provider_capacity: faust.Table  # provider endpoint -> its window's grants and pause (agents_tables.capacity)


@dataclass(frozen=True)
class Stores:
    """The tables behind their typed boundaries."""

    profiles: ProfileStore
    windows: WindowStore
    outcomes: OutcomeStore
    conversations: ConversationStore
    cache: CacheStore
    moderation: ModerationStore
    rooms: RoomIndexStore
    usage: UsageStore

    @classmethod
    def over(cls, tables: GatewayTables, settings: "Settings") -> "Stores":
        return cls(ProfileStore(tables.profiles, settings.profile_cache_size), WindowStore(tables.rate_windows),
                   OutcomeStore(tables.outcomes, settings.dedupe_per_partition),
                   ConversationStore(tables.conversations,
                                     Caps(settings.conversation_max_turns, settings.conversation_max_bytes)),
                   CacheStore(tables.response_cache, tables.cache_stats, settings.cache_entries_per_partition),
                   ModerationStore(tables.room_moderation),
                   RoomIndexStore(tables.room_agents, int(settings.room_active_seconds * 1000)),
                   UsageStore(tables.usage, settings.usage_cache_rows))

    def forget_local_state(self) -> None:
        """A rebalance: caches and per-partition bookkeeping may no longer match the rows we own."""
        self.profiles.forget_cached()
        self.outcomes.forget_recent()
        self.cache.forget_recent()
        self.usage.forget_recent()


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
        conversations=table(CONVERSATIONS, "Conversation turns by agent id + room id.", value_type=bytes),
        response_cache=table(RESPONSE_CACHE, "Cached answers by agent id + request hash.", value_type=bytes),
        cache_stats=table(CACHE_STATS, "Response cache lookups, hits and savings by agent id.", value_type=bytes),
        room_moderation=table(ROOM_MODERATION, "Active moderation signals by agent id + room id.", value_type=bytes),
        room_agents=table(ROOM_AGENTS, "Agents seen lately by room id.", value_type=bytes),
        usage=table(USAGE, "Usage totals by agent x day and agent x user x day.", value_type=bytes),
        provider_capacity=table(PROVIDER_CAPACITY, "Capacity granted in the current window, and the 429 pause, "
                                "by provider endpoint.", value_type=bytes),
    )
