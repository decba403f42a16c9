"""Agent profiles as they were at a point in time, rebuilt from the profile topics (created, updated,
deleted).

The gateway applies a profile event only when its version is higher than the stored one, so the profile
in force at time t is the event with the highest version among those whose record timestamp is at or
before t; if that one is a delete, the agent had no profile then. Record timestamps, not the order of
reading: the three topics are read one after the other. Events the intake would have refused (not a
valid profile) are left out, as the gateway left them out.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable

from pydantic import ValidationError

from gateway_app.contract.events import AgentProfile, AgentProfileDeleted


@dataclass(frozen=True)
class ProfileEvent:
    timestamp_ms: int
    version: int
    profile: AgentProfile | None  # None: a delete


class ProfileHistory:
    def __init__(self) -> None:
        self.events: dict[str, list[ProfileEvent]] = defaultdict(list)
        self.invalid = 0

    def add(self, agent_id: str, event: ProfileEvent) -> None:
        self.events[agent_id].append(event)

    def add_record(self, value: bytes | None, timestamp_ms: int, *, deleted: bool) -> None:
        """One record of a profile topic (a delete when read from the deleted topic)."""
        try:
            data = json.loads(value or b"")
            if deleted:
                gone = AgentProfileDeleted.model_validate(data)
                self.add(gone.agent_id, ProfileEvent(timestamp_ms, gone.version, None))
            else:
                profile = AgentProfile.model_validate(data)
                self.add(profile.agent_id, ProfileEvent(timestamp_ms, profile.version, profile))
        except (ValueError, ValidationError, TypeError):
            self.invalid += 1

    def as_of(self, agent_id: str, timestamp_ms: int) -> AgentProfile | None:
        """The profile in force at that time: highest version among the events at or before it."""
        known = [e for e in self.events.get(agent_id, ()) if e.timestamp_ms <= timestamp_ms]
        if not known:
            return None
        # On equal versions the first one stands: the gateway ignores a version not higher than the stored.
        winner = max(known, key=lambda e: (e.version, -e.timestamp_ms))
        return winner.profile

    def latest(self, agent_id: str) -> AgentProfile | None:
        """The profile in force now (what the live pipeline binds a message sent again to)."""
        events = self.events.get(agent_id, ())
        return self.as_of(agent_id, max(e.timestamp_ms for e in events)) if events else None

    def agents(self) -> Iterable[str]:
        return self.events.keys()
