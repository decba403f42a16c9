"""An agent over a topic only the gateway writes (`gateway-room-events`, `gateway-provider-capacity`):
each record handled in offset order and acked after it, never past a missing record. A record it cannot
read is a bug, not user input: logged (`<name>.bad_record`) and skipped; any other failure is logged
with its traceback (`<name>.internal_error`); either way the partition goes on."""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

import faust

log = logging.getLogger(__name__)


def register_ordered(app: faust.App, topic: faust.TopicT, name: str, handle: Callable[[Any], Awaitable[None]],
                     bad_record: tuple[type[Exception], ...]) -> None:
    """`handle` gets each faust event; `bad_record`: the exceptions that mean the record is unreadable."""

    async def ordered(stream: faust.StreamT) -> None:
        async for event in stream.noack().events():
            if not await app.consumer.admit(event.message):  # in offset order, never past a missing record
                continue
            try:
                await handle(event)
            except bad_record as exc:
                log.error("%s.bad_record partition=%s offset=%s error=%r", name, event.message.partition,
                          event.message.offset, exc)
            except Exception:
                log.exception("%s.internal_error partition=%s offset=%s", name, event.message.partition,
                              event.message.offset)
            event.ack()

    app.agent(topic, name=name)(ordered)
