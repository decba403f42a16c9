"""A streamed answer's pieces on their way to `ai-message-reply-chunks`.

The call loop hands pieces over without waiting (`put`); a task of the pipe's own publishes them in
order, so a slow producer never counts against the provider's timeouts or health. Each attempt's stream
gets a fresh random `stream_id`: a redelivered message streams under new ids, never mixed with chunks
an earlier run or attempt already sent.
"""

from __future__ import annotations

import asyncio
import uuid

from gateway_app.contract.events import MessageCreated, ReplyChunk
from gateway_app.observability import tracing
from gateway_app.pipeline import records
from gateway_app.publisher import Publisher


class ChunkPipe:
    def __init__(self, publisher: Publisher, message: MessageCreated) -> None:
        self.publisher = publisher
        self.message = message
        self.streams: dict[int, str] = {}
        self.queue: asyncio.Queue[ReplyChunk | None] = asyncio.Queue()
        # Made in the message's task, in its stage's span: its chunks carry that trace (None: off).
        self.headers = tracing.current_headers()
        self.task = asyncio.create_task(self._drain())

    def put(self, attempt: int, seq: int, delta: str, final: bool, blocked: bool = False) -> None:
        stream_id = self.streams.setdefault(attempt, uuid.uuid4().hex)
        self.queue.put_nowait(records.reply_chunk(self.message, stream_id, attempt, seq, delta, final, blocked))

    async def _drain(self) -> None:
        while (chunk := await self.queue.get()) is not None:
            await self.publisher.reply_chunk(chunk, self.headers)

    async def close(self) -> None:
        """Wait until every piece is handed to the producer (before the reply is)."""
        self.queue.put_nowait(None)
        await self.task

    def cancel(self) -> None:
        self.task.cancel()
