"""What an ok answer leaves behind besides its outcome row: the conversation turn and the cache entry.

Called by the outputs stage once the broker has every record of the answer, with no await before the
outcome row is written (so the three rows go to the changelog together, from the message's own task,
to the agent's partition). A failed, blocked or rate-limited message never gets here: it adds nothing
the model would later read as its own words.

Never raises: the answer is already published; a bug here must not turn it into an error reply.
"""

from __future__ import annotations

import logging
import time

from agents_tables.conversations import with_reply
from gateway_app.moderation.rules import output_rules
from gateway_app.pipeline import conversation
from gateway_app.pipeline.context import MessageContext
from gateway_app.pipeline.stage import Services
from gateway_app.pipeline.stages.cache import entry_for
from gateway_app.pipeline.stages.prompt import keeps_context

log = logging.getLogger(__name__)
DEFAULT_TTL_SECONDS = 7 * 86400  # a tool exchange of a profile without `context`


class Memory:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.stores = services.stores

    def remember(self, ctx: MessageContext, outcome) -> None:
        try:
            self._append_turn(ctx)
            self._cache(ctx)
            self._recent_reply(ctx)
        except Exception:
            log.exception("memory.failed message=%s (the answer was published; its turn or cache entry "
                          "was not kept)", ctx.message.message_id)

    def _append_turn(self, ctx: MessageContext) -> None:
        profile, result, turn = ctx.require_profile(), ctx.result, ctx.new_turn
        if turn is None or result is None:
            return
        # Kept with `context`; without it only what a tool round needs (the calls, then their results).
        if not (keeps_context(profile) or ctx.tool_results is not None or result.tool_calls):
            return
        old_ratio = ctx.conversation_row.ratio if ctx.conversation_row else 1.0
        first = ctx.answers[0].result.usage if ctx.answers else None
        ratio = conversation.new_ratio(first.input_tokens if first else 0, ctx.prompt_estimate, old_ratio)
        input_tokens = conversation.corrected(ratio, ctx.input_estimate)
        output_tokens = ctx.answer.result.usage.output_tokens if ctx.answer and not ctx.stage_answer else \
            conversation.corrected(ratio, conversation.raw_estimate_text(result.text))
        ttl = profile.context.ttl_seconds if profile.context else DEFAULT_TTL_SECONDS
        stored = with_reply(turn, result.text, result.tool_calls, input_tokens + output_tokens)
        message = ctx.message
        # The row the prompt read is still the room's: the room's turn is held until this message ends.
        current = ctx.conversation_row if ctx.conversation_read else False
        if self.stores.conversations.append(message.agent_id, message.room_id, stored, ttl * 1000, ratio, current,
                                            ctx.new_summary):
            self.services.counters["turns_appended"] += 1

    def _recent_reply(self, ctx: MessageContext) -> None:
        """The repetition check compares a reply with the agent's last ones in the room: kept in the room's
        moderation row while that check runs (a `repetitive` signal, or the profile's own rule)."""
        profile, result = ctx.require_profile(), ctx.result
        if result is None or not result.text or "repetition" not in output_rules(profile, ctx.steering):
            return
        message = ctx.message
        self.stores.moderation.remember_reply(message.agent_id, message.room_id, result.text,
                                              profile.moderation.repetition_last_n)

    def _cache(self, ctx: MessageContext) -> None:
        profile = ctx.require_profile()
        if profile.cache is None or ctx.cache_key is None or ctx.cache_hit is not None or ctx.delegated:
            return  # (a run that asked a collaborator has no answer of its own to keep)
        bills = [self.services.prices.cost(a.target.provider, a.target.model, a.result.usage.input_tokens,
                                           a.result.usage.output_tokens, a.result.usage.cached_input_tokens)
                 for a in ctx.answers]
        entry = entry_for(ctx, sum(bills), profile.cache.ttl_seconds, int(time.time() * 1000))
        if entry is None or len(entry.text) > self.services.settings.cache_max_entry_bytes:
            return
        self.stores.cache.put(ctx.partition, profile.agent_id, ctx.cache_key, entry)
