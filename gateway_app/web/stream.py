"""`GET /rooms/{room_id}/stream`: a room's streamed answers as Server-Sent Events, from any worker.

Each stream reads the room's partition of the chunk topic and of the reply topic with a consumer of its
own (no group, nothing committed: the position lives in the client's `Last-Event-ID`), keeps the
records of that room, and writes each as `event: chunk` or `event: reply` with the record's JSON as
`data`. Every event's `id` is a resume token `<chunk offset>-<reply offset>`: the next offset to read in
each partition, so reconnecting with it continues exactly after that event. The opening block carries
the start position as an `id` too: a client that drops before its first event resumes from there.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Iterator

import faust
from aiohttp import web
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2
from faust.web import Response, View

from gateway_app.kafka.transport import bootstrap_servers
from gateway_app.settings import Settings

log = logging.getLogger(__name__)

RETRY_MS = 2000            # the client's reconnection delay, sent once at the start
RETRY_AFTER_SECONDS = 5    # with a 503: every stream slot of this worker is taken
POLL_SECONDS = 1.0         # the longest a loop waits for records: how soon a gone client is noticed
CATCH_UP_SECONDS = 2.0     # the longest a reply waits for the chunks produced before it
KEEP_ALIVE = b": keep-alive\n\n"  # a comment: clients ignore it, proxies see the connection is in use
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_TOKEN = re.compile(r"([0-9]{1,19})-([0-9]{1,19})")  # ASCII only (\d takes any Unicode digit)
_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # SSE's line breaks only (str.splitlines knows more, e.g. U+2028)


class BadToken(ValueError):
    """A Last-Event-ID that is not a token this endpoint gave out."""


class TooManyStreams(RuntimeError):
    """Every stream slot of this worker is taken."""


@dataclass(frozen=True)
class Position:
    """The next offset to read in the room's chunk partition and in its reply partition."""

    chunks: int
    replies: int

    def token(self) -> str:
        return f"{self.chunks}-{self.replies}"

    @classmethod
    def parse(cls, token: str) -> "Position":
        match = _TOKEN.fullmatch(token.strip())
        if match is None:
            raise BadToken(f"Last-Event-ID {token[:40]!r} is not '<chunk offset>-<reply offset>'")
        return cls(int(match[1]), int(match[2]))


def room_partition(room_id: str, partitions: int) -> int:
    """The partition the producer picks for the room's key (aiokafka's default partitioner: murmur2)."""
    return (murmur2(room_id.encode()) & 0x7FFFFFFF) % partitions


def sse_event(kind: str, token: str, data: str) -> bytes:
    # A record is one line of JSON; should one ever hold a line break, each line becomes a `data:`
    # field, which the client joins back with "\n" (the same JSON).
    lines = "".join(f"data: {line}\n" for line in _LINE_BREAK.split(data))
    return f"event: {kind}\nid: {token}\n{lines}\n".encode()


def sse_opening(token: str) -> bytes:
    return f"retry: {RETRY_MS}\nid: {token}\n\n".encode()


class StreamSlots:
    """Open streams of this worker, counted by `hold` only: released however the stream ends."""

    def __init__(self, limit: int) -> None:
        self.limit, self.open = limit, 0

    @property
    def full(self) -> bool:
        return self.open >= self.limit

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        if self.full:
            raise TooManyStreams(f"{self.open} streams open, limit {self.limit}")
        self.open += 1
        try:
            yield
        finally:
            self.open -= 1


def resume_position(headers: Any, query: Any) -> Position | None:
    """The client's Last-Event-ID (header, or `?last_event_id=` for clients that cannot set headers)."""
    token = (headers.get("Last-Event-ID") or query.get("last_event_id") or "").strip()
    return Position.parse(token) if token else None


class RoomFeed:
    """The Kafka side of one stream: the room's records of both partitions, in order, with positions."""

    def __init__(self, consumer: AIOKafkaConsumer, room_id: str, chunks: TopicPartition,
                 replies: TopicPartition) -> None:
        self.consumer, self.room_id, self.room_key = consumer, room_id, room_id.encode()
        self.chunks, self.replies = chunks, replies
        self.kinds = {chunks: "chunk", replies: "reply"}
        self.next: dict[TopicPartition, int] = {}
        self.events = 0  # of this room, read so far

    @classmethod
    async def open(cls, settings: Settings, room_id: str, resume: Position | None) -> "RoomFeed":
        # A short metadata age: a partition assigned before the broker's metadata knew it is fetched
        # within seconds, not after aiokafka's default five minutes.
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers(settings.broker_url), group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    metadata_max_age_ms=int(settings.metadata_max_age_seconds * 1000),
                                    client_id=f"{settings.app_id}-sse")
        await consumer.start()
        # The gateway creates both topics with `topic_partitions` partitions, the count its producer hashes by.
        partition = room_partition(room_id, settings.topic_partitions)
        try:
            feed = cls(consumer, room_id, *(TopicPartition(topic, partition)
                                            for topic in (settings.topics.reply_chunks, settings.topics.replies)))
            await feed._seek(resume)
            return feed
        except BaseException:
            await consumer.stop()
            raise

    async def _seek(self, resume: Position | None) -> None:
        tps = [self.chunks, self.replies]
        self.consumer.assign(tps)
        ends = await self.consumer.end_offsets(tps)
        self.next = dict(ends)
        if resume is not None:
            # A token's offsets past the end (nothing there to resend) or before the log start (deleted
            # by retention) are brought to the nearest offset that exists.
            starts = await self.consumer.beginning_offsets(tps)
            wanted = {self.chunks: resume.chunks, self.replies: resume.replies}
            self.next = {tp: min(max(wanted[tp], starts[tp]), ends[tp]) for tp in tps}
        for tp, offset in self.next.items():
            self.consumer.seek(tp, offset)

    @property
    def token(self) -> str:
        return Position(self.next[self.chunks], self.next[self.replies]).token()

    def _ours(self, record: ConsumerRecord) -> str | None:
        """The record's JSON if it belongs to this room. The key is the room id: other rooms' records
        are skipped without decoding; the value's `room_id` decides."""
        if record.key is not None and record.key != self.room_key:
            return None
        text = (record.value or b"").decode("utf-8", "replace")
        with contextlib.suppress(ValueError):
            value = json.loads(text)
            return text if isinstance(value, dict) and value.get("room_id") == self.room_id else None
        return None

    async def read(self, timeout: float) -> list[tuple[str, str, str]]:
        """The room's next events, (kind, resume token, JSON): the two partitions merged by produce
        time, each kept in offset order (the token relies on it)."""
        batch = await self.consumer.getmany(self.chunks, self.replies, timeout_ms=int(timeout * 1000))
        chunks, replies = batch.get(self.chunks, []), batch.get(self.replies, [])
        if any(self._ours(r) is not None for r in replies):
            chunks += await self._chunks_before_now()
        events = []
        for record in heapq.merge(chunks, replies, key=lambda r: r.timestamp):  # ties: chunks first
            tp = TopicPartition(record.topic, record.partition)
            self.next[tp] = record.offset + 1
            if (text := self._ours(record)) is not None:
                events.append((self.kinds[tp], self.token, text))
        self.events += len(events)
        return events

    async def _chunks_before_now(self) -> list[ConsumerRecord]:
        """The chunk partition read up to its current end: a message's chunks are produced before its
        reply, but the two partitions are fetched independently, so the reply can come first."""
        end = (await self.consumer.end_offsets([self.chunks]))[self.chunks]
        deadline, more = time.monotonic() + CATCH_UP_SECONDS, []
        while await self.consumer.position(self.chunks) < end and time.monotonic() < deadline:
            more += (await self.consumer.getmany(self.chunks, timeout_ms=200)).get(self.chunks, [])
        return more

    async def close(self) -> None:
        await self.consumer.stop()


async def pump(app: faust.App, request: web.Request, response: web.StreamResponse, feed: RoomFeed,
               keepalive: float) -> None:
    """Write the room's events until the client goes (its transport is dropped; aiohttp does not cancel
    the handler) or the worker stops. A stopping worker ends its
    streams (else the web server's shutdown would wait for them): the clients reconnect elsewhere with
    their Last-Event-ID."""
    quiet_since = time.monotonic()
    while request.transport is not None and not request.transport.is_closing() and not app.should_stop:
        events = await feed.read(min(POLL_SECONDS, keepalive))
        for kind, token, data in events:
            await response.write(sse_event(kind, token, data))
        if events:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= keepalive:
            await response.write(KEEP_ALIVE)
            quiet_since = time.monotonic()


def _error(view: View, status: int, code: str, message: str, **headers: str) -> Response:
    return view.json({"error": {"code": code, "message": message}}, status=status, headers=headers)


def register(app: faust.App, settings: Settings, guarded: type[View]) -> type[View]:
    slots = StreamSlots(settings.sse_max_streams)

    @app.page("/rooms/{room_id}/stream")
    class RoomStream(guarded):  # type: ignore[valid-type,misc]
        """Read access, like every non-probe view (the base view checks the token)."""

        stream_slots = slots

        async def get(self, request: web.Request, room_id: str) -> Any:
            try:
                resume = resume_position(request.headers, request.query)
            except BadToken as exc:
                return _error(self, 400, "invalid_last_event_id", str(exc))
            if slots.full:
                return _error(self, 503, "too_many_streams", f"this worker serves at most {slots.limit} streams",
                              **{"Retry-After": str(RETRY_AFTER_SECONDS)})
            with slots.hold():
                return await self.serve(request, room_id, resume)

        async def serve(self, request: web.Request, room_id: str, resume: Position | None) -> Any:
            try:
                feed = await RoomFeed.open(settings, room_id, resume)
            except KafkaError as exc:
                log.warning("sse.broker_unavailable room=%s error=%r", room_id, exc)
                return _error(self, 503, "broker_unavailable", "cannot read the room's partitions now",
                              **{"Retry-After": str(RETRY_AFTER_SECONDS)})
            started = time.monotonic()
            log.info("sse.open room=%s from=%s streams=%d", room_id, feed.token, slots.open)
            # faust's aiohttp driver hands views aiohttp's own request: a StreamResponse prepared on it
            # sends the headers now, and each write goes out at once (chunked), not at the end.
            response = web.StreamResponse(headers=SSE_HEADERS)
            try:
                await response.prepare(request)
                await response.write(sse_opening(feed.token))
                await pump(self.app, request, response, feed, settings.sse_keepalive_seconds)
            except ConnectionResetError:
                pass  # the client went away mid-write
            except KafkaError as exc:  # the client reconnects with its Last-Event-ID
                log.warning("sse.broker_error room=%s error=%r", room_id, exc)
            finally:
                await feed.close()
                log.info("sse.closed room=%s events=%d seconds=%.1f", room_id, feed.events,
                         time.monotonic() - started)
            return response

    return RoomStream
