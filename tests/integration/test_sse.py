"""`GET /rooms/{room_id}/stream` on a real worker and broker: a streamed answer arrives chunk by chunk
then its reply, a client that drops resumes with its Last-Event-ID (nothing lost, nothing repeated),
and the stream is guarded and capped (GATEWAY_SSE_MAX_STREAMS=1 here)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import aiohttp
import pytest

from tests.integration.conftest import make_cluster
from tests.integration.harness import Chat, message, profile, wait_until

TOKEN = "read-token-sse-it"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
AGENT = "sse-agent"


@pytest.fixture(scope="module")
def gateway(kafka, tmp_path_factory):
    cluster = make_cluster(kafka, tmp_path_factory.mktemp("sse"), GATEWAY_WEB_READ_TOKENS=TOKEN,
                           GATEWAY_SSE_MAX_STREAMS="1", GATEWAY_SSE_KEEPALIVE_SECONDS="1")
    worker = cluster.worker()
    worker.wait_ready()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def streaming_agent(gateway):
    """An echo agent that streams its answer word by word; the worker that serves the streams."""
    worker = gateway.workers[0]

    async def publish() -> None:
        async with Chat(gateway.deployment) as chat:
            await chat.profile(profile(AGENT, stream=True, maxTokens=500, options={"latency_ms": 300}))
        await wait_until(lambda: worker.get(f"/agents/{AGENT}", AUTH)[0] == 200, 60, "the profile in force")

    asyncio.run(publish())
    return worker


@pytest.fixture
async def chat(gateway, streaming_agent):
    async with Chat(gateway.deployment) as client:
        yield client


@pytest.fixture
async def session():
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_read=30)) as client:
        yield client


class Stream:
    """An SSE client reading the response line by line."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.comments = 0

    async def block(self) -> dict[str, str]:
        """The next block of fields; a comment (the server sends them alone) is an empty block."""
        fields: dict[str, str] = {}
        while True:
            raw = await asyncio.wait_for(self.response.content.readline(), 30)
            if not raw:
                raise EOFError("the server ended the stream")
            line = raw.decode().rstrip("\n")
            if line.startswith(":"):
                self.comments += 1
                return {}
            if line:
                name, _, value = line.partition(": ")
                fields[name] = f"{fields[name]}\n{value}" if name in fields else value
            elif fields:
                return fields

    async def keep_alive(self) -> None:
        """Lines until the next comment (a keep-alive) is read."""
        seen = self.comments
        while self.comments == seen:
            await self.block()

    async def event(self) -> tuple[str, str, dict]:
        """The next event: (kind, id, record)."""
        while "event" not in (fields := await self.block()):
            pass
        return fields["event"], fields["id"], json.loads(fields["data"])

    def close(self) -> None:
        self.response.close()


async def connect(session: aiohttp.ClientSession, worker, room: str, headers: dict | None = None,
                  **params: str) -> aiohttp.ClientResponse:
    url = f"http://127.0.0.1:{worker.web_port}/rooms/{room}/stream"
    return await session.get(url, headers={**AUTH, **(headers or {})}, params=params)


async def open_stream(session, worker, room: str, headers: dict | None = None, **params: str) -> Stream:
    """A stream once this worker has a free slot (a stream just closed frees its slot when the worker
    notices), positioned: its opening block says where it starts."""
    deadline = time.monotonic() + 30
    while (response := await connect(session, worker, room, headers, **params)).status == 503:
        response.release()
        assert time.monotonic() < deadline, "no stream slot came free"
        await asyncio.sleep(0.2)  # the polling interval
    assert response.status == 200, (response.status, await response.text())
    assert response.headers["Content-Type"] == "text/event-stream"
    stream = Stream(response)
    opening = await stream.block()
    assert opening["retry"] == "2000" and "-" in opening["id"]
    return stream


async def read_until_replies(stream: Stream, *message_ids: str) -> list[tuple[str, str, dict]]:
    """Events until the replies to these messages have come (answers may interleave)."""
    events, waiting = [], set(message_ids)
    while waiting:
        events.append(kind_id_record := await stream.event())
        if kind_id_record[0] == "reply":
            waiting.discard(kind_id_record[2]["message_id"])
    return events


def words(n: int, tag: str) -> str:
    return " ".join(f"{tag}{i}" for i in range(n))


def chunks_of(events, message_id: str) -> list[dict]:
    return [record for kind, _, record in events if kind == "chunk" and record["message_id"] == message_id]


def assert_whole_answer(chunks: list[dict], reply: dict) -> None:
    assert len({c["stream_id"] for c in chunks}) == 1, "one attempt, one stream"
    assert [c["seq"] for c in chunks] == list(range(len(chunks))), "every seq once, in order"
    assert chunks[-1]["final"] and "".join(c["delta"] for c in chunks) == reply["content"]


async def test_chunks_in_order_then_the_reply_as_they_are_produced(chat, session, streaming_agent):
    room = f"room-{uuid.uuid4().hex[:8]}"
    stream = await open_stream(session, streaming_agent, room)
    try:
        # Two messages one after the other on one open stream: the first answer arrives in full while
        # the stream stays open (written through, not buffered until the end).
        for tag in ("first", "second"):
            msg = message(AGENT, room_id=room, content=words(30, tag))
            await chat.message(msg)
            events = await read_until_replies(stream, msg["messageId"])
            reply = events[-1][2]
            assert reply["status"] == "ok" and reply["room_id"] == room
            assert [kind for kind, _, _ in events] == ["chunk"] * (len(events) - 1) + ["reply"]
            chunks = chunks_of(events, msg["messageId"])
            assert len(chunks) >= 30 and all(c["room_id"] == room for c in chunks)
            assert_whole_answer(chunks, reply)
            ids = [event_id for _, event_id, _ in events]
            assert len(set(ids)) == len(ids)
    finally:
        stream.close()


def rooms_sharing_a_partition(deployment) -> tuple[str, str]:
    rooms: dict[int, str] = {}
    while True:
        room = f"room-{uuid.uuid4().hex[:8]}"
        partition = deployment.partition_of(room)  # murmur2 of the key, like the gateway's producer
        if partition in rooms:
            return rooms[partition], room
        rooms[partition] = room


async def test_a_client_that_drops_resumes_after_its_last_event(gateway, chat, session, streaming_agent):
    room, other_room = rooms_sharing_a_partition(gateway.deployment)
    first = await open_stream(session, streaming_agent, room)
    long = message(AGENT, room_id=room, content=words(120, "w"))
    await chat.message(long)
    before = [await first.event() for _ in range(25)]
    first.close()  # gone mid-answer
    assert all(kind == "chunk" for kind, _, _ in before)
    # While it is away: another answer for the room, and one for another room of the same partitions
    # (read, and left out).
    later = message(AGENT, room_id=room, content=words(10, "later"))
    elsewhere = message(AGENT, room_id=other_room, content=words(10, "elsewhere"))
    await chat.message(later)
    await chat.message(elsewhere)
    await chat.wait_replies([later["messageId"], elsewhere["messageId"]])

    second = await open_stream(session, streaming_agent, room, {"Last-Event-ID": before[-1][1]})
    try:
        after = await read_until_replies(second, long["messageId"], later["messageId"])
    finally:
        second.close()
    events = before + after
    assert all(record["room_id"] == room for _, _, record in events)
    replies = {record["message_id"]: record for kind, _, record in events if kind == "reply"}
    assert set(replies) == {long["messageId"], later["messageId"]}
    for msg in (long, later):
        assert_whole_answer(chunks_of(events, msg["messageId"]), replies[msg["messageId"]])

    # The query form, from the id of the long answer's last chunk: its reply comes, none of its chunks.
    last_chunk_id = next(event_id for kind, event_id, record in reversed(after)
                         if kind == "chunk" and record["message_id"] == long["messageId"])
    third = await open_stream(session, streaming_agent, room, last_event_id=last_chunk_id)
    try:
        again = await read_until_replies(third, long["messageId"])
    finally:
        third.close()
    assert not chunks_of(again, long["messageId"]) and again[-1][2] == replies[long["messageId"]]


async def test_the_stream_is_guarded_and_capped(session, streaming_agent):
    worker, room = streaming_agent, f"room-{uuid.uuid4().hex[:8]}"
    url = f"http://127.0.0.1:{worker.web_port}/rooms/{room}/stream"
    async with session.get(url) as response:
        assert response.status == 401 and response.headers["WWW-Authenticate"] == "Bearer"
        assert (await response.json())["error"]["code"] == "unauthorized"
    async with session.get(url, headers={**AUTH, "Last-Event-ID": "not-a-token"}) as response:
        assert response.status == 400 and (await response.json())["error"]["code"] == "invalid_last_event_id"

    held = await open_stream(session, worker, room)
    try:
        async with session.get(url, headers=AUTH) as response:
            assert response.status == 503 and response.headers["Retry-After"]
            assert (await response.json())["error"]["code"] == "too_many_streams"
        await asyncio.wait_for(held.keep_alive(), 10)  # an idle stream gets comments (every second here)
    finally:
        held.close()
    # The worker notices the client is gone and frees the slot: a new stream is accepted.
    (await open_stream(session, worker, room)).close()
