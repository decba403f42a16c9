"""Conversations under faults, workers as subprocesses on `rocksdb://`: kill -9 mid-conversation and a
restart lose and double no turn; a conversation (and the response cache) follows its agent to another
worker; a clear holds, also after a restore into an empty data directory."""

from __future__ import annotations

import json
import urllib.request
import uuid

import pytest

from tests.fakes.base import ServerThread
from tests.fakes.openai_server import FakeOpenAI
from tests.integration.harness import Chat, message, profile, profiles_applied, wait_until

MODEL = "gpt-4o-mini"


@pytest.fixture
def openai_fake():
    server = FakeOpenAI()
    with ServerThread(server.app) as thread:
        yield server, thread


def env_for(thread) -> dict[str, str]:
    return {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": thread.url + "/v1",
            "GATEWAY_RETRY_BASE_DELAY_SECONDS": "0.05"}


def users_in(server: FakeOpenAI, last_text: str) -> list[str]:
    """The user messages of the last request whose newest message is `last_text`."""
    bodies = [b for b in server.requests if b["messages"][-1]["content"] == last_text]
    assert bodies, f"the provider never saw {last_text!r}"
    return [m["content"] for m in bodies[-1]["messages"] if m["role"] == "user"]


def memory_profile(agent_id: str, **extra) -> dict:
    return profile(agent_id, provider="openai", model=MODEL, context={"maxTurns": 20}, **extra)


async def converse(chat: Chat, agent_id: str, *contents: str, room: str = "room-1") -> list[dict]:
    msgs = [message(agent_id, room_id=room, content=c) for c in contents]
    for msg in msgs:
        await chat.message(msg)
    replies = await chat.wait_replies([m["messageId"] for m in msgs], timeout=90)
    assert all(replies[m["messageId"]][0]["status"] == "ok" for m in msgs)
    return msgs


def delete(worker, path: str) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{worker.web_port}{path}", method="DELETE")
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, json.loads(response.read())


async def test_kill_9_mid_conversation_then_restart_no_turn_lost_or_doubled(cluster_factory, openai_fake):
    server, thread = openai_fake
    cluster = cluster_factory(**env_for(thread))
    worker = cluster.worker()
    worker.wait_ready()
    agent_id = f"kill-{uuid.uuid4().hex[:6]}"
    async with Chat(cluster.deployment) as chat:
        await chat.profile(memory_profile(agent_id))
        await converse(chat, agent_id, "one", "two")
        slow = message(agent_id, content="FAULT:slow:5000 three")
        await chat.message(slow)
        await wait_until(lambda: server.count("FAULT:slow:5000 three") >= 1, 60, "the third call in flight")
        worker.kill()  # mid-call: its reply, turn and offset were never written
        cluster.worker(0).wait_ready()  # the same worker again, on its own data directory
        await chat.wait_replies([slow["messageId"]], timeout=90)
        await converse(chat, agent_id, "four")
    users = users_in(server, "four")
    assert users == ["one", "two", "FAULT:slow:5000 three", "four"], users  # each turn once, in order
    assert len([r for r in chat.replies() if r["message_id"] == slow["messageId"]]) == 1


async def test_a_conversation_and_the_cache_follow_the_agent_to_another_worker(cluster_factory, openai_fake):
    server, thread = openai_fake
    cluster = cluster_factory(**env_for(thread))
    first = cluster.worker()
    first.wait_ready()
    agent_id, cached_agent = f"move-{uuid.uuid4().hex[:6]}", f"cached-{uuid.uuid4().hex[:6]}"
    question = f"cache me {uuid.uuid4().hex[:6]}"
    async with Chat(cluster.deployment) as chat:
        await chat.profile(memory_profile(agent_id))
        await chat.profile(profile(cached_agent, provider="openai", model=MODEL, cache={"ttlSeconds": 600}))
        await converse(chat, agent_id, "alpha", "beta")
        await converse(chat, cached_agent, question)
        second = cluster.worker()
        second.wait_ready()
        first.stop()  # graceful: every partition moves to the second worker
        await wait_until(profiles_applied(second, {agent_id: 1, cached_agent: 1}), 90, "the second worker's tables")
        await converse(chat, agent_id, "gamma")
        again = await converse(chat, cached_agent, question)
        hit = chat.replies_by_message()[again[0]["messageId"]][0]
    assert users_in(server, "gamma") == ["alpha", "beta", "gamma"]
    assert hit["cache_hit"] and sum(1 for b in server.requests if b["messages"][-1]["content"] == question) == 1
    status, view = second.get(f"/agents/{agent_id}/conversations/room-1")
    assert status == 200 and len(view["turns"]) == 3


async def test_a_clear_holds_also_after_a_restore_into_an_empty_data_directory(cluster_factory, openai_fake):
    server, thread = openai_fake
    cluster = cluster_factory(**env_for(thread))
    worker = cluster.worker()
    worker.wait_ready()
    agent_id = f"clear-{uuid.uuid4().hex[:6]}"
    async with Chat(cluster.deployment) as chat:
        await chat.profile(memory_profile(agent_id))
        await converse(chat, agent_id, "secret one", "secret two")
        await converse(chat, agent_id, "other room", room="room-2")
        await chat.clear(agent_id, "room-1")  # the event, as a chat service sends it
        status, accepted = delete(worker, f"/agents/{agent_id}/conversations/room-2")  # the operator's way
        assert status == 202 and accepted["event"]["room_id"] == "room-2"
        # A clear and a message come on different input topics: only the clear's own place in the agent's
        # stream orders them, so the next message is sent once both clears took effect.
        for room in ("room-1", "room-2"):
            await wait_until(lambda: worker.get(f"/agents/{agent_id}/conversations/{room}")[0] == 404, 60,
                             f"the clear of {room}")
        await converse(chat, agent_id, "fresh start")
        await converse(chat, agent_id, "fresh room two", room="room-2")
        assert users_in(server, "fresh start") == ["fresh start"]
        assert users_in(server, "fresh room two") == ["fresh room two"]
        worker.stop()
        empty = cluster.worker()  # a new index: a new, empty data directory; tables come from changelogs
        empty.wait_ready()
        await wait_until(profiles_applied(empty, {agent_id: 1}), 90, "the restored profile")
        await converse(chat, agent_id, "after restore")
    assert users_in(server, "after restore") == ["fresh start", "after restore"]
    assert empty.get(f"/agents/{agent_id}/conversations/room-2")[1]["turns"][0]["id"]
