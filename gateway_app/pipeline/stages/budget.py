"""The budget gate of admission: a profile with a `budget` reserves each message's estimated cost before
its call, waits for the agent's calls in flight while the next one would not fit, and past the budget
sends the message to the budget's fallback model or refuses it (`budget_exceeded`, no provider call).
Run by the admission stage while it holds the agent's turn, so messages meet the budget in their
arrival order. The arithmetic and the exactness argument: `gateway_app.pipeline.budgets`.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

from agents_tables import windows
from gateway_app.contract.events import AgentProfile, ErrorCode, ReplyStatus
from gateway_app.errors import Rejected
from gateway_app.pipeline import budgets
from gateway_app.pipeline.budgets import Period, Verdict
from gateway_app.pipeline.context import MessageContext
from gateway_app.pipeline.stage import Services

log = logging.getLogger(__name__)
ADJECTIVE = {"day": "daily", "month": "monthly"}
SETTLE_POLL_SECONDS = 5.0  # a waiting message looks again at least this often (a new day, a new month)


def today() -> str:
    return datetime.now(timezone.utc).date().isoformat()


class BudgetGate:
    def __init__(self, services: Services) -> None:
        self.stores, self.budgets, self.prices = services.stores, services.budgets, services.prices
        self.metrics = services.metrics

    async def admit(self, ctx: MessageContext, profile: AgentProfile, context_tokens: int) -> None:
        spec = profile.budget
        if spec is None:
            return
        agent_id = ctx.message.agent_id
        targets = [(profile.provider, profile.model), *((f.provider, f.model) for f in profile.fallbacks)]
        prompt = windows.estimate_tokens(profile.system_prompt + ctx.message.content) + context_tokens
        estimate = budgets.estimated_cost(self.prices, targets, prompt, profile.max_tokens)
        while True:
            periods = self.periods(profile)
            reserved, in_flight = self.budgets.in_flight(agent_id)
            verdict = budgets.decide(periods, reserved, in_flight, estimate)
            if verdict is Verdict.ADMIT:
                ctx.budget_hold = self.budgets.reserve(agent_id, estimate)
                return
            if verdict is Verdict.SPENT:
                self.past_budget(ctx, profile, budgets.exhausted(periods))
                return
            ctx.deferred = True
            self.metrics.budget_wait()
            started = time.monotonic()
            await self.budgets.wait_settled(agent_id, SETTLE_POLL_SECONDS)
            log.debug("budget.waited agent=%s seconds=%.3f", agent_id, time.monotonic() - started)

    def periods(self, profile: AgentProfile) -> list[Period]:
        spec, agent_id, day = profile.budget, profile.agent_id, today()
        periods = []
        if spec.usd_per_day is not None:
            periods.append(Period("day", spec.usd_per_day, self.stores.usage.spent(agent_id, day)))
        if spec.usd_per_month is not None:
            periods.append(Period("month", spec.usd_per_month, self.stores.usage.spent_month(agent_id, day)))
        return periods

    def past_budget(self, ctx: MessageContext, profile: AgentProfile, period: Period | None) -> None:
        """Past the budget: the budget's fallback answers (not counted against the budget), or no one."""
        what = f"{ADJECTIVE[period.name]} budget of {period.limit} USD" if period else "budget"
        fallback = profile.budget.fallback
        if fallback is None:
            log.info("budget.exceeded agent=%s %s spent=%s", profile.agent_id, what, period and period.spent)
            self.metrics.rejection(ErrorCode.BUDGET_EXCEEDED)
            raise Rejected(ReplyStatus.RATE_LIMITED, ErrorCode.BUDGET_EXCEEDED,
                           f"the agent's {what} is spent")
        log.info("budget.fallback agent=%s %s spent=%s provider=%s model=%s", profile.agent_id, what,
                 period and period.spent, fallback.provider, fallback.model)
        self.metrics.budget_fallback(fallback.provider, fallback.model)
        ctx.profile = profile.model_copy(update={"provider": fallback.provider, "model": fallback.model,
                                                 "options": fallback.options, "credentials": fallback.credentials,
                                                 "fallbacks": []})
