"""`GET /rooms/{room_id}/stream` without Kafka: the resume token, the room's partition, the SSE wire
format, the cap on open streams, and the view itself over a real aiohttp server with a fake feed."""

from __future__ import annotations

import asyncio
import json
import re
from types import SimpleNamespace

import faust
import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from pydantic import SecretStr

from devtools.workers import Deployment
from gateway_app.kafka.transport import bootstrap_servers
from gateway_app.settings import Settings
from gateway_app.web import stream, views
from gateway_app.web.auth import Access
from gateway_app.web.stream import BadToken, Position, StreamSlots, TooManyStreams

TOKEN = "read-token-sse"


# --- the resume token -------------------------------------------------------------------------------


@pytest.mark.parametrize("position", [Position(0, 0), Position(17, 4), Position(2**63 - 1, 12345)])
def test_the_token_round_trips(position):
    assert Position.parse(position.token()) == position
    assert Position.parse(f"  {position.token()} ") == position


@pytest.mark.parametrize("token", ["", "abc", "1-", "-1", "1-2-3", "1_2", "-1-2", "1.0-2", "1 -2", "0x1-2",
                                   "1" * 20 + "-1", "١-٢", "1-2\n3-4"])
def test_anything_else_is_a_bad_token(token):
    with pytest.raises(BadToken):
        Position.parse(token)


def test_the_header_wins_over_the_query_and_blank_means_from_the_end():
    assert stream.resume_position({"Last-Event-ID": "3-4"}, {"last_event_id": "5-6"}) == Position(3, 4)
    assert stream.resume_position({}, {"last_event_id": "5-6"}) == Position(5, 6)
    assert stream.resume_position({"Last-Event-ID": " "}, {}) is None
    assert stream.resume_position({}, {}) is None
    with pytest.raises(BadToken):
        stream.resume_position({}, {"last_event_id": "nope"})


# --- where the room's records are -----------------------------------------------------------------


def metadata(partitions: int) -> SimpleNamespace:
    every = set(range(partitions))
    return SimpleNamespace(partitions_for_topic=lambda topic: every,
                           available_partitions_for_topic=lambda topic: every)


async def test_the_room_partition_is_the_one_aiokafkas_producer_picks():
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1")  # never started: only its partitioner
    rooms = [f"room-{i}" for i in range(300)] + ["", "ümlaut-räum", "a" * 256, "room-1 "]
    for partitions in (1, 3, 8, 12, 1024):
        producer._metadata = metadata(partitions)
        for room in rooms:
            key = room.encode()
            picked = producer._partition("replies", None, key, b"{}", key, b"{}")
            assert stream.room_partition(room, partitions) == picked, (room, partitions)
    assert len({stream.room_partition(room, 8) for room in rooms}) == 8
    assert stream.room_partition("room-7", 4) == Deployment("x", "y").partition_of("room-7")


@pytest.mark.parametrize("url, servers", [
    ("kafka://127.0.0.1:9092", ["127.0.0.1:9092"]),
    ("kafka://broker", ["broker:9092"]),
    ("kafka://a:1;kafka://b:2", ["a:1", "b:2"]),
    ("kafka://a:1,b:2", ["a:1", "b:2"]),
])
def test_bootstrap_servers_from_the_broker_url(url, servers):
    assert bootstrap_servers(url) == servers


# --- the wire format ---------------------------------------------------------------------------------


def parse_sse(raw: bytes) -> list[dict[str, str]]:
    """A minimal client-side parser: blocks of fields; `data` lines joined with \\n (as EventSource)."""
    blocks = []
    for block in raw.decode().split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = f"{fields[name]}\n{value}" if name in fields else value
        if fields:
            blocks.append(fields)
    return blocks


def test_an_event_is_kind_id_and_the_records_json_on_one_line():
    data = json.dumps({"room_id": "r", "delta": "a\nb\u2028c"}, ensure_ascii=False)
    raw = stream.sse_event("chunk", "12-5", data)
    assert raw == f"event: chunk\nid: 12-5\ndata: {data}\n\n".encode()
    assert parse_sse(raw) == [{"event": "chunk", "id": "12-5", "data": data}]


def test_a_line_break_in_the_data_becomes_data_lines_the_client_joins_back():
    raw = stream.sse_event("reply", "1-2", '{"a":\r\n1,\r"b":\n2}')
    assert raw == b'event: reply\nid: 1-2\ndata: {"a":\ndata: 1,\ndata: "b":\ndata: 2}\n\n'
    assert json.loads(parse_sse(raw)[0]["data"]) == {"a": 1, "b": 2}


def test_the_opening_sets_the_retry_and_the_start_position_and_keep_alives_are_comments():
    assert stream.sse_opening("7-9") == b"retry: 2000\nid: 7-9\n\n"
    assert stream.KEEP_ALIVE == b": keep-alive\n\n" and parse_sse(stream.KEEP_ALIVE) == []


# --- the cap -------------------------------------------------------------------------------------------


def test_slots_cap_the_open_streams_and_are_released_however_a_stream_ends():
    slots = StreamSlots(2)
    with slots.hold(), slots.hold():
        assert slots.full and slots.open == 2
        with pytest.raises(TooManyStreams), slots.hold():
            pass
        assert slots.open == 2
    assert slots.open == 0
    for _ in range(5):
        with pytest.raises(RuntimeError), slots.hold():
            raise RuntimeError("the stream broke")
    assert slots.open == 0 and not slots.full


# --- the view, served by aiohttp, with a fake feed -----------------------------------------------------


class FakeFeed:
    def __init__(self) -> None:
        self.queue: asyncio.Queue = asyncio.Queue()
        self.token, self.events, self.closed = "0-0", 0, False

    async def read(self, timeout: float) -> list[tuple[str, str, str]]:
        try:
            return [await asyncio.wait_for(self.queue.get(), timeout)]
        except asyncio.TimeoutError:
            return []

    async def close(self) -> None:
        self.closed = True


@pytest.fixture
async def served(monkeypatch):
    """A faust app with the gateway's views (read tokens configured), served by aiohttp's test server."""
    feeds: list[FakeFeed] = []

    async def open_feed(settings, room_id, resume):
        feeds.append(FakeFeed())
        return feeds[-1]

    monkeypatch.setattr(stream.RoomFeed, "open", open_feed)
    settings = Settings(web_read_tokens=[SecretStr(TOKEN)], web_admin_tokens=[], web_auth="on",
                        sse_max_streams=1, sse_keepalive_seconds=0.3)
    app = faust.App("sse-test", autodiscover=False)
    views.register(app, settings, SimpleNamespace(agent_events=SimpleNamespace(get_topic_name=lambda: "events")),
                   SimpleNamespace(), SimpleNamespace())
    view = next(v for v in app.web.views.values() if v.view_path == "/rooms/{room_id}/stream")
    async with TestClient(TestServer(app.web.web_app)) as client:
        yield client, view, feeds


AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def lines_until(response, pattern: str) -> str:
    seen = ""
    while not re.search(pattern, seen):
        seen += (await asyncio.wait_for(response.content.readline(), 5)).decode()
    return seen


async def test_the_stream_needs_read_access(served):
    client, view, _ = served
    assert type(view).access is Access.READ
    response = await client.get("/rooms/r1/stream")
    assert response.status == 401 and (await response.json())["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_a_bad_last_event_id_is_400(served):
    client, _, feeds = served
    for kwargs in ({"headers": {**AUTH, "Last-Event-ID": "garbage"}}, {"params": {"last_event_id": "1-x"}}):
        kwargs.setdefault("headers", AUTH)
        response = await client.get("/rooms/r1/stream", **kwargs)
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "invalid_last_event_id"
    assert feeds == []


async def test_events_are_written_as_they_come_with_keep_alives_and_the_slot_comes_back(served):
    client, view, feeds = served
    response = await client.get("/rooms/r1/stream", headers=AUTH)
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache" and response.headers["X-Accel-Buffering"] == "no"
    assert await lines_until(response, r"\n\n") == "retry: 2000\nid: 0-0\n\n"
    # Each event reaches the client while the stream stays open: written through, not buffered.
    for n in range(3):
        feeds[0].queue.put_nowait(("chunk", f"{n + 1}-0", f'{{"seq": {n}}}'))
        assert await lines_until(response, r"\n\n") == f'event: chunk\nid: {n + 1}-0\ndata: {{"seq": {n}}}\n\n'
    assert await lines_until(response, r": keep-alive\n\n") == ": keep-alive\n\n"

    busy = await client.get("/rooms/r2/stream", headers=AUTH)  # the limit is 1
    assert busy.status == 503 and busy.headers["Retry-After"] == "5"
    assert (await busy.json())["error"]["code"] == "too_many_streams"

    response.close()  # the client goes away: the feed is closed and the slot is free again
    slots = type(view).stream_slots
    for _ in range(50):
        if feeds[0].closed and slots.open == 0:
            break
        await asyncio.sleep(0.1)
    assert feeds[0].closed and slots.open == 0


# --- the feed's reading, over a fake consumer ----------------------------------------------------------

CHUNKS, REPLIES = TopicPartition("chunks", 1), TopicPartition("replies", 1)


def record(tp: TopicPartition, offset: int, timestamp: int, room: str, **value) -> ConsumerRecord:
    raw = json.dumps({"room_id": room, **value}).encode()
    return ConsumerRecord(tp.topic, tp.partition, offset, timestamp, 0, room.encode(), raw, None, 0, len(raw), ())


class FakeConsumer:
    """Two partition logs; `lag` hides a partition's tail from the next fetch only (fetched apart)."""

    def __init__(self, logs: dict[TopicPartition, list[ConsumerRecord]], start: int = 0) -> None:
        self.logs, self.start = logs, start
        self.pos: dict[TopicPartition, int] = {}
        self.lag: dict[TopicPartition, int] = {}

    def assign(self, tps):
        self.pos = dict.fromkeys(tps, 0)

    def seek(self, tp, offset):
        self.pos[tp] = offset

    async def end_offsets(self, tps):
        return {tp: len(self.logs[tp]) for tp in tps}

    async def beginning_offsets(self, tps):
        return dict.fromkeys(tps, self.start)

    async def position(self, tp):
        return self.pos[tp]

    async def getmany(self, *tps, timeout_ms=0):
        batch = {}
        for tp in tps:
            upto = len(self.logs[tp]) - self.lag.pop(tp, 0)
            batch[tp], self.pos[tp] = self.logs[tp][self.pos[tp]:upto], max(self.pos[tp], upto)
        return {tp: records for tp, records in batch.items() if records}


async def feed_over(consumer: FakeConsumer, resume: Position | None = None) -> stream.RoomFeed:
    feed = stream.RoomFeed(consumer, "r", CHUNKS, REPLIES)
    await feed._seek(resume)
    return feed


async def test_the_feed_merges_by_produce_time_keeps_offset_order_and_skips_other_rooms():
    consumer = FakeConsumer({
        # Offsets 0-3 of the chunk partition; a second producer's clock is behind (timestamp 5 at offset 3).
        CHUNKS: [record(CHUNKS, 0, 10, "r", seq=0), record(CHUNKS, 1, 11, "other", seq=0),
                 record(CHUNKS, 2, 12, "r", seq=1), record(CHUNKS, 3, 5, "r", seq=0, late=True)],
        REPLIES: [record(REPLIES, 0, 12, "r", reply=1), record(REPLIES, 1, 13, "other", reply=2)],
    })
    feed = await feed_over(consumer, Position(0, 0))
    events = await feed.read(0)
    # The late chunk stays after offset 2 (the token counts on offset order); a tie goes to the chunk.
    assert [(kind, token) for kind, token, _ in events] == [
        ("chunk", "1-0"), ("chunk", "3-0"), ("chunk", "4-0"), ("reply", "4-1")]
    assert json.loads(events[1][2]) == {"room_id": "r", "seq": 1}  # the JSON as it is on the topic
    assert feed.token == "4-2" and feed.events == 4


async def test_a_reply_fetched_before_its_chunks_waits_for_them():
    consumer = FakeConsumer({
        CHUNKS: [record(CHUNKS, 0, 10, "r", seq=0), record(CHUNKS, 1, 11, "r", seq=1, final=True)],
        REPLIES: [record(REPLIES, 0, 12, "r", reply=1)],
    })
    feed = await feed_over(consumer, Position(0, 0))
    consumer.lag = {CHUNKS: 1}  # the last chunk is not in this fetch, the reply is
    assert [(kind, token) for kind, token, _ in await feed.read(0)] == [
        ("chunk", "1-0"), ("chunk", "2-0"), ("reply", "2-1")]


async def test_without_a_token_the_feed_starts_at_the_end_and_a_token_is_kept_within_the_log():
    logs = {CHUNKS: [record(CHUNKS, i, i, "r", seq=i) for i in range(6)], REPLIES: [record(REPLIES, 0, 9, "r")]}
    assert (await feed_over(FakeConsumer(logs))).token == "6-1"
    assert (await feed_over(FakeConsumer(logs), Position(4, 0))).token == "4-0"
    assert (await feed_over(FakeConsumer(logs), Position(99, 99))).token == "6-1"  # nothing there to resend
    assert (await feed_over(FakeConsumer(logs, start=2), Position(0, 1))).token == "2-1"  # deleted: from the start
    feed = await feed_over(FakeConsumer(logs), Position(4, 1))
    assert [token for _, token, _ in await feed.read(0)] == ["5-1", "6-1"]
