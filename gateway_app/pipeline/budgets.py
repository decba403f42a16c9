"""Budgets: an agent's spend per UTC day and month against its profile's `budget`, reserved before a call
and reconciled after it, like the TPM window. Pure arithmetic, and the reservations in flight.

The spend of a period is the cost of the agent's billing events counted in its usage rows
(`agents_tables.usage`). A message admitted against the budget reserves its estimated cost (the prompt's
token estimate and all of `max_tokens`, at the dearest of its targets' prices); the reservation is
given back once the message's usage rows are written, so the spend replaces it with what the calls
really cost. For a message with estimate `e`, per period with limit `L` and spend `S`, and `R` reserved
by the agent's `n` messages in flight:

- it fits (`S + R + e <= L` in every period): admitted, `e` reserved;
- nothing is in flight and every period has budget left (`S < L`): admitted alone, as the one call that
  may take the spend past the limit;
- calls are in flight: it waits until one of them settles, then is decided again;
- otherwise the budget is spent: the budget's fallback model answers, or the message is refused
  (`budget_exceeded`, no provider call).

So the calls that run together all fit by their estimates, a call that may cross the limit runs alone,
and the spend ends at most one message's cost past the limit. One worker owns the agent (its partition),
so this holds across any number of workers.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Iterable

from gateway_app.pricing.prices import PER_TOKENS, QUANTUM, PriceTable


class Verdict(Enum):
    ADMIT = "admit"
    WAIT = "wait"
    SPENT = "spent"


@dataclass(frozen=True)
class Period:
    name: str       # "day" | "month"
    limit: Decimal
    spent: Decimal


def decide(periods: Iterable[Period], reserved: Decimal, in_flight: int, estimate: Decimal) -> Verdict:
    periods = list(periods)
    if all(p.spent + reserved + estimate <= p.limit for p in periods):
        return Verdict.ADMIT
    if in_flight:
        return Verdict.WAIT
    if all(p.spent < p.limit for p in periods):
        return Verdict.ADMIT  # alone: the one call that may cross the limit
    return Verdict.SPENT


def exhausted(periods: Iterable[Period]) -> Period | None:
    """The first period whose budget is spent."""
    return next((p for p in periods if p.spent >= p.limit), None)


def estimated_cost(prices: PriceTable, targets: Iterable[tuple[str, str]], input_tokens: int,
                   output_tokens: int) -> Decimal:
    """The most a call may cost at the dearest of the targets (an unpriced model costs 0)."""
    costs = [Decimal(0)]
    for provider, model in targets:
        rates = prices.rates(provider, model)
        if rates is not None:
            costs.append(((rates[0] * input_tokens + rates[2] * output_tokens) / PER_TOKENS).quantize(QUANTUM))
    return max(costs)


@dataclass
class Hold:
    """One message's reservation."""

    agent_id: str
    amount: Decimal
    released: bool = False


class _Agent:
    __slots__ = ("reserved", "in_flight", "changed")

    def __init__(self) -> None:
        self.reserved = Decimal(0)
        self.in_flight = 0
        self.changed = asyncio.Event()


class Budgets:
    """The reservations of the messages in flight, per agent, on this worker (the owner of the agents'
    partitions). In memory: a rebalance cancels the messages in flight, and forgets their reservations."""

    def __init__(self) -> None:
        self._agents: dict[str, _Agent] = {}

    def in_flight(self, agent_id: str) -> tuple[Decimal, int]:
        agent = self._agents.get(agent_id)
        return (agent.reserved, agent.in_flight) if agent else (Decimal(0), 0)

    def reserve(self, agent_id: str, amount: Decimal) -> Hold:
        agent = self._agents.setdefault(agent_id, _Agent())
        agent.reserved += amount
        agent.in_flight += 1
        return Hold(agent_id, amount)

    def release(self, hold: Hold | None) -> None:
        """Give a reservation back (once): the message's usage is written, or it ended without any."""
        if hold is None or hold.released:
            return
        hold.released = True
        agent = self._agents.get(hold.agent_id)
        if agent is None:
            return  # reserved before a rebalance: already forgotten
        agent.reserved -= hold.amount
        agent.in_flight -= 1
        agent.changed.set()
        agent.changed = asyncio.Event()
        if not agent.in_flight:
            del self._agents[hold.agent_id]

    async def wait_settled(self, agent_id: str, timeout: float) -> None:
        """Until one of the agent's messages in flight gives its reservation back (or `timeout`)."""
        agent = self._agents.get(agent_id)
        if agent is None:
            return
        try:
            await asyncio.wait_for(agent.changed.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    def reset(self) -> None:
        for agent in self._agents.values():
            agent.changed.set()
        self._agents.clear()
