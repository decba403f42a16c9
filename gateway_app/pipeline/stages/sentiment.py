"""Sentiment: with the profile's `post_processing: ["sentiment"]`, the tone of the reply and of the user's
message (`pipeline.sentiment`), on the reply and on the message's moderation events. Never blocks: a
failure is logged and the reply goes out without it.
"""

from __future__ import annotations

import asyncio
import logging

from gateway_app.contract.events import SentimentInfo
from gateway_app.pipeline import sentiment
from gateway_app.pipeline.context import MessageContext
from gateway_app.pipeline.stage import Services

log = logging.getLogger(__name__)


class Sentiment:
    name = "sentiment"

    def __init__(self, services: Services) -> None:
        pass

    async def run(self, ctx: MessageContext) -> None:
        profile = ctx.require_profile()
        if "sentiment" not in profile.post_processing or ctx.result is None:
            return
        try:
            if not sentiment.loaded():
                await asyncio.to_thread(sentiment.warm_up)  # once per worker, off the event loop (0.1 s)
            info = SentimentInfo(reply=sentiment.score(ctx.result.text), user=sentiment.score(ctx.message.content))
        except Exception:
            log.exception("sentiment.failed message=%s (the reply goes out without it)", ctx.message.message_id)
            return
        ctx.sentiment = info
        ctx.moderation_events = [event.model_copy(update={"sentiment": info}) for event in ctx.moderation_events]
