"""The room -> agents index: which agents were asked something in a room lately, so that a signal
without an agent reaches each of them.

It lives on the partitions of `gateway-room-events` (keyed by room id): the intake sends a room
activity record there (keyed by room id, whatever key or partitioner the chat service used for the
message), and an agent-less signal goes there too, so the index and the signal meet on one partition and
are read in one order. Rows: `{agent_id: last_seen_ms}`, at most `MAX_AGENTS_PER_ROOM` agents (the least
recently seen go first).
"""

from __future__ import annotations

import json
from typing import Any

MAX_AGENTS_PER_ROOM = 200


class RoomIndexStore:
    def __init__(self, table: Any, active_ms: int) -> None:
        self.table = table
        self.active_ms = active_ms  # an agent counts as active in a room this long after its last message

    def seen(self, room_id: str, agent_id: str, at_ms: int) -> None:
        agents = {agent: seen for agent, seen in self._row(room_id).items() if seen + self.active_ms > at_ms}
        agents[agent_id] = max(at_ms, agents.get(agent_id, 0))
        newest = sorted(agents.items(), key=lambda item: item[1])[-MAX_AGENTS_PER_ROOM:]
        self.table[room_id] = json.dumps(dict(newest), separators=(",", ":")).encode()

    def agents(self, room_id: str, now_ms: int) -> list[str]:
        return sorted(agent for agent, seen in self._row(room_id).items() if seen + self.active_ms > now_ms)

    def _row(self, room_id: str) -> dict[str, int]:
        raw = self.table.get(room_id)
        try:
            return dict(json.loads(raw)) if raw else {}
        except (ValueError, TypeError):
            return {}
