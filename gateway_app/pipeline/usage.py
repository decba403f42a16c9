"""What a message's outcome adds to its agent's usage rows, and which of its billing events a run must not
publish because an earlier run of the message counted them (the rule: `agents_tables.usage`).

The outputs stage plans the usage when it builds the outcome (`unbilled`: the billing events to send),
and records it once the broker acknowledged the outcome's records (`record`), in the same step as the
outcome row: by the message's own task, on the agent's partition. A redelivery absorbed by its outcome
row (or a replay re-sent from it) adds what the rows did not count (`restore`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from agents_tables.outcomes import Outcome
from agents_tables.usage import Entry, Totals, day_of, entry_of_billing, message_entry, rows_of
from gateway_app.contract.events import BillingEvent
from gateway_app.pipeline.context import MessageContext
from gateway_app.pipeline.stage import Services

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    position: int | None   # the message's offset in the agent's partition of gateway-agent-events
    entries: tuple[Entry, ...]


def position_of(ctx: MessageContext) -> int | None:
    message = getattr(ctx.slot.event, "message", None)
    return getattr(message, "offset", None)


def billing_entry(bill: BillingEvent) -> Entry:
    return Entry(day_of(bill.created_at), bill.agent_id, bill.provider, bill.model, bill.user_id,
                 Totals.of_billing(bill.model_dump()))


class UsageRecorder:
    def __init__(self, services: Services) -> None:
        self.stores = services.stores

    def unbilled(self, ctx: MessageContext, bills: list[BillingEvent], reply: bytes) -> list[BillingEvent]:
        """Plan the message's usage (kept on the context for `record`) and return the billing events to
        publish: all but those an earlier run at this offset counted (their first copy is on the topic). A
        run of a message that had failed (a replay) bills under ids of its own (`ids.rerun_billing_id`):
        its calls are new ones."""
        position = position_of(ctx)
        entries, publish = [], []
        for bill in bills:
            entry = billing_entry(bill)
            entries.append(entry)  # a row that did not count it yet still will
            if not any(self.stores.usage.counted(key, position) for key in rows_of([entry])):
                publish.append(bill)
        try:
            extra = message_entry(json.loads(reply), deferred=ctx.deferred)
        except (ValueError, KeyError, TypeError) as exc:
            log.error("usage.undecodable_reply message=%s error=%r", ctx.message.message_id, exc)
            extra = None
        if extra is not None:
            entries.append(extra)
        ctx.usage_plan = Plan(position, tuple(entries))
        if len(publish) < len(bills):
            log.info("usage.already_counted message=%s offset=%s events=%d (an earlier run's; not sent again)",
                     ctx.message.message_id, position, len(bills) - len(publish))
        return publish

    def record(self, ctx: MessageContext) -> None:
        """Add the planned usage to its rows. Never raises: the answer is published; a failure here is
        logged, and the outcome row is written all the same."""
        plan = ctx.usage_plan
        if isinstance(plan, Plan) and plan.entries:
            self._add(ctx, plan.position, plan.entries)

    def restore(self, ctx: MessageContext, remembered: Outcome) -> None:
        """A redelivery absorbed by the outcome row (or a replay re-sent from it): the row was written in the
        same step as the usage rows, but a kill -9 may have lost some of them. Each row adds the message
        unless it counted the offset the outcome row names, and is written again either way."""
        if remembered.position is None:
            return  # written before usage rows existed
        try:
            entries = [entry_of_billing(json.loads(bill)) for bill in remembered.billing]
            extra = message_entry(json.loads(remembered.reply), deferred=remembered.deferred)
        except (ValueError, KeyError, TypeError) as exc:
            log.error("usage.undecodable_outcome message=%s error=%r", ctx.message.message_id, exc)
            return
        self._add(ctx, remembered.position, entries + ([extra] if extra else []))

    def _add(self, ctx: MessageContext, position: int | None, entries) -> None:
        try:
            for key, buckets in rows_of(entries).items():
                self.stores.usage.add(ctx.partition, position, key, buckets)
        except Exception:
            log.exception("usage.write_failed message=%s (its usage may be missing from the usage rows)",
                          ctx.message.message_id)
