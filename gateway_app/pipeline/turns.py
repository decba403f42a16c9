"""FIFO turn-taking: per agent (admission in arrival order) and per conversation (one call at a time).

A lane hands out turns in the order tickets were taken; holding a turn for a long time (waiting for a
profile or a rate window) delays only the tickets behind it in the same lane, never other lanes.
"""

from __future__ import annotations

import asyncio
from collections import deque


class Ticket:
    __slots__ = ("_ready",)

    def __init__(self) -> None:
        self._ready = asyncio.Event()


class Lane:
    """One FIFO queue of tickets; the head holds the turn until it calls `release`."""

    def __init__(self) -> None:
        self._tickets: deque[Ticket] = deque()
        self.changed = asyncio.Event()  # set when something the head may wait on changes

    def take(self) -> Ticket:
        ticket = Ticket()
        self._tickets.append(ticket)
        if len(self._tickets) == 1:
            ticket._ready.set()
        return ticket

    async def wait(self, ticket: Ticket) -> None:
        await ticket._ready.wait()

    def release(self, ticket: Ticket) -> None:
        """Give up a turn (or a place in the queue, when cancelled before its turn)."""
        was_head = bool(self._tickets) and self._tickets[0] is ticket
        try:
            self._tickets.remove(ticket)
        except ValueError:
            return
        if was_head and self._tickets:
            self._tickets[0]._ready.set()

    def notify(self) -> None:
        """Wake the head, e.g. because the agent's profile changed."""
        self.changed.set()

    async def wait_changed(self, timeout: float) -> bool:
        """Sleep up to `timeout` seconds or until `notify`; True if notified."""
        self.changed.clear()
        try:
            await asyncio.wait_for(self.changed.wait(), timeout=max(0.0, timeout))
            return True
        except asyncio.TimeoutError:
            return False

    def __len__(self) -> int:
        return len(self._tickets)


class Lanes:
    """Lanes by key, created on demand and dropped when empty so memory follows live traffic."""

    def __init__(self) -> None:
        self._lanes: dict[str, Lane] = {}

    def get(self, key: str) -> Lane:
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = Lane()
        return lane

    def peek(self, key: str) -> Lane | None:
        return self._lanes.get(key)

    def sizes(self) -> list[int]:
        """Tickets per live lane, no key named (the metrics' backlog distribution)."""
        return [len(lane) for lane in self._lanes.values()]

    def release(self, key: str, ticket: Ticket) -> None:
        lane = self._lanes.get(key)
        if lane is None:
            return
        lane.release(ticket)
        if not len(lane):
            del self._lanes[key]


class Turns:
    """The worker's two kinds of lanes. A rebalance replaces both: a task cancelled before its first
    step never gives back the agent turn taken for it at arrival, and that stale ticket would block the
    agent; late releases by cancelled tasks find nothing in the new lanes and do nothing."""

    def __init__(self) -> None:
        self.agents = Lanes()          # key: agent id
        self.conversations = Lanes()   # key: agent id + room id

    def reset(self) -> None:
        self.agents = Lanes()
        self.conversations = Lanes()

    def backlog(self, agent_id: str) -> int:
        lane = self.agents.peek(agent_id)
        return len(lane) if lane is not None else 0
