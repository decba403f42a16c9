"""Dedupe: a copy of this message (the same input, forwarded twice by an intake that crashed before it
committed) may have been answered while this one waited for the conversation's turn. Its outcome row
says so: this copy is absorbed, and the tokens it reserved in the rate window are given back.

The dispatcher checks the same rule when a message is read; this stage covers copies that were both in
flight at once (they share a conversation, so the second one runs only after the first has finished),
and reads the table only for a message the dispatcher saw arrive while a copy was in progress.
"""

from __future__ import annotations

import logging

from agents_tables.outcomes import Redelivery, origin_key, redelivery
from gateway_app.pipeline.context import MessageContext
from gateway_app.pipeline.stage import Finished, Services
from gateway_app.pipeline.stages.admission import settle
from gateway_app.pipeline.stages.outputs import resend

log = logging.getLogger(__name__)


class Dedupe:
    name = "dedupe"

    def __init__(self, services: Services) -> None:
        self.services = services

    async def run(self, ctx: MessageContext) -> None:
        if not ctx.copy_in_flight:
            return  # the dispatcher's check when it was read still holds: no table read on the hot path
        remembered = self.services.stores.outcomes.get(ctx.message.message_id)
        if remembered is None:
            return
        origin = origin_key(ctx.origin.topic, ctx.origin.partition, ctx.origin.offset)
        decision = redelivery(remembered, origin)
        if decision is Redelivery.RUN:
            ctx.rerun = origin  # a copy failed meanwhile: this run's billing gets ids of its own
            return
        settle(ctx, self.services.stores)  # no call: the reservation goes back to the window
        if decision is Redelivery.ABSORB:
            self.services.counters["absorbed"] += 1
            log.info("flow.absorbed message=%s origin=%s (a copy was answered while it waited)",
                     ctx.message.message_id, origin)
            raise Finished("absorbed")
        await resend(self.services, ctx, remembered)
        raise Finished("resent")
