"""Agents that consult each other, through Kafka: one worker as a subprocess on `rocksdb://`, every agent
on the OpenAI fake (whose `CONSULT:<agent>:<question>` makes the model call `consult_agent`).

- `tool`: the room's agent asks a collaborator through the tool, and answers with its answer (streamed);
- `always`: the collaborator drafts first, the agent refines it (one call of its own);
- a collaborator that cannot answer (disabled) leaves the agent answering alone, said in the reply;
- a loop (A asks B, B asks A) is cut, and the chain still answers;
- an agent that keeps consulting is stopped after GATEWAY_COLLABORATION_MAX_ROUNDS (3) rounds.

Every hop is billed to the agent that made it, with the room's message id; the room sees one reply per
message, nothing of the collaborators' own answers."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.fakes.base import ServerThread
from tests.fakes.openai_server import FakeOpenAI
from tests.integration.harness import Chat, message, profile, profiles_applied

PREFIX = FakeOpenAI.answer_prefix


@pytest.fixture
def openai_fake():
    server = FakeOpenAI()
    with ServerThread(server.app) as thread:
        yield server, thread


def requests_of(server: FakeOpenAI, system_prompt: str) -> list[dict]:
    """The chat requests of one agent (each agent's system prompt names it)."""
    return [b for b in server.requests
            if any(m["role"] == "system" and m["content"].startswith(system_prompt) for m in b["messages"])]


def agent(name: str, *collaborators: dict, **extra) -> dict:
    return profile(name, provider="openai", model="gpt-4o-mini", systemPrompt=f"You are {name}.",
                   collaborators=list(collaborators), **extra)


async def test_agents_consult_each_other(cluster_factory, openai_fake):
    server, thread = openai_fake
    cluster = cluster_factory(OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=thread.url + "/v1")
    worker = cluster.worker()
    worker.wait_ready()
    tag = uuid.uuid4().hex[:6]
    a_tool, b_tool, a_always, b_always, a_fail, b_fail, a_loop, b_loop, a_more, b_more = (
        f"{n}-{tag}" for n in ("atool", "btool", "aalways", "balways", "afail", "bfail", "aloop", "bloop", "amore",
                               "bmore"))
    profiles = [
        agent(a_tool, {"agentId": b_tool, "when": "tool", "description": "knows parcels"}, stream=True),
        agent(b_tool, context={"maxTurns": 10}),
        agent(a_always, {"agentId": b_always, "when": "always"}),
        agent(b_always),
        agent(a_fail, {"agentId": b_fail}),
        agent(b_fail, enabled=False),
        agent(a_loop, {"agentId": b_loop}),
        agent(b_loop, {"agentId": a_loop}),
        agent(a_more, {"agentId": b_more}),
        agent(b_more),
    ]
    msgs = {
        "tool": message(a_tool, room_id=f"r-{tag}", content=f"CONSULT:{b_tool}:When does parcel 7 arrive?"),
        "always": message(a_always, room_id=f"r-{tag}", content="Write a greeting for Ana"),
        # A second draft in the same room: another call id (one conversation holds both exchanges).
        "always2": message(a_always, room_id=f"r-{tag}", content="Write a farewell for Ana"),
        "fail": message(a_fail, room_id=f"r-{tag}", content=f"CONSULT:{b_fail}:Are you there?"),
        "loop": message(a_loop, room_id=f"r-{tag}", content=f"CONSULT:{b_loop}:CONSULT:{a_loop}:round and round"),
        # B answers each question with the next one (`REPLY:`), so A's every answer asks B once more.
        "more": message(a_more, room_id=f"r-{tag}", content=f"CONSULT:{b_more}:" + f"REPLY:CONSULT:{b_more}:" * 3 + "x"),
    }
    async with Chat(cluster.deployment) as chat:
        for value in profiles:
            await chat.profile(value)
        await chat.wait_for(profiles_applied(worker, {p["agentId"]: 1 for p in profiles}), 60, "the profiles")
        for value in msgs.values():
            await chat.message(value)
        replies = await chat.wait_replies([m["messageId"] for m in msgs.values()], timeout=90)
        ids = {kind: m["messageId"] for kind, m in msgs.items()}
        # Nothing more reaches the room: one reply per message, none from a collaborator, none for a hop.
        assert sorted(r["message_id"] for r in chat.replies()) == sorted(ids.values())
        billing = [b for _, b in chat.seen["billing"]]
        chunks = {kind: chat.chunks_of(ids[kind]) for kind in ids}
    reply = {kind: replies[ids[kind]][0] for kind in ids}
    assert all(r["status"] == "ok" and r["reply_to"] is None for r in reply.values()), reply

    # tool: B answers the question; A answers with B's answer as its tool result.
    b_answer = f"{PREFIX} When does parcel 7 arrive?"
    assert reply["tool"]["content"] == f"{PREFIX} {b_answer}"
    assert reply["tool"]["collaboration"] == {"consulted": [
        {"agent_id": b_tool, "asked_by": a_tool, "mode": "tool", "status": "ok", "error_code": None, "reason": None,
         "depth": 1}]}
    first, second = requests_of(server, f"You are {a_tool}.")
    tool = next(t for t in first["tools"] if t["function"]["name"] == "consult_agent")
    assert tool["function"]["parameters"]["properties"]["agent_id"]["enum"] == [b_tool]
    assert "knows parcels" in tool["function"]["description"]
    (asked,) = requests_of(server, f"You are {b_tool}.")
    assert asked["messages"][-1] == {"role": "user", "content": "When does parcel 7 arrive?"}
    assert not asked.get("stream")  # a collaborator's answer is never streamed to the room
    call = second["messages"][-2]["tool_calls"][0]
    assert json.loads(call["function"]["arguments"]) == {"agent_id": b_tool, "question": "When does parcel 7 arrive?"}
    assert second["messages"][-1] == {"role": "tool", "tool_call_id": call["id"], "content": b_answer}
    # Streamed under the room's message id; the last stream is the reply (the first one held the call).
    streamed = [c for _, c in chunks["tool"]]
    last_stream = streamed[-1]["stream_id"]
    assert "".join(c["delta"] for c in streamed if c["stream_id"] == last_stream) == reply["tool"]["content"]
    assert all(c["agent_id"] == a_tool for c in streamed)
    # Each hop billed to its agent, all under the room's message.
    hops = [b for b in billing if b.get("root_message_id") == ids["tool"]]
    assert sorted(b["agent_id"] for b in hops) == sorted([a_tool, a_tool, b_tool])
    assert [b["consulted_by"] for b in hops if b["agent_id"] == b_tool] == [a_tool]
    assert all(b["consulted_by"] is None for b in hops if b["agent_id"] == a_tool)
    assert all(int(b["input_tokens"]) > 0 for b in hops)

    # always: B drafts first; A makes one call, with the draft as its consult_agent result, told to refine.
    draft = f"{PREFIX} Write a greeting for Ana"
    assert reply["always"]["content"] == f"{PREFIX} {draft}"
    assert [h["mode"] for h in reply["always"]["collaboration"]["consulted"]] == ["always"]
    refine = next(r for r in requests_of(server, f"You are {a_always}.") if r["messages"][-1]["content"] == draft)
    assert "Refine it into your own answer" in refine["messages"][0]["content"]
    assert reply["always2"]["content"] == f"{PREFIX} {PREFIX} Write a farewell for Ana"
    assert len(requests_of(server, f"You are {a_always}.")) == 2 and len(requests_of(server, f"You are {b_always}.")) == 2

    # fail: the collaborator is disabled; A is told and answers alone, the reply says so.
    (hop,) = reply["fail"]["collaboration"]["consulted"]
    assert (hop["agent_id"], hop["status"], hop["error_code"]) == (b_fail, "failed", "agent_disabled")
    assert reply["fail"]["content"] == f"{PREFIX} error: agent {b_fail} could not answer (agent_disabled): agent is disabled"
    assert requests_of(server, f"You are {b_fail}.") == []
    assert not [b for b in billing if b["agent_id"] == b_fail]

    # loop: B may not ask A back (A is in the chain); B answers alone, then A answers.
    refused, answered = reply["loop"]["collaboration"]["consulted"]
    assert (refused["agent_id"], refused["asked_by"], refused["status"], refused["error_code"], refused["depth"]) == \
        (a_loop, b_loop, "refused", "collaboration_loop", 2)
    assert (answered["agent_id"], answered["status"], answered["depth"]) == (b_loop, "ok", 1)
    assert "is already in this chain" in reply["loop"]["content"]
    assert len(requests_of(server, f"You are {a_loop}.")) == 2 and len(requests_of(server, f"You are {b_loop}.")) == 2

    # more: three rounds, then the fourth answer's consult_agent call is dropped, and the reply says so.
    assert len(requests_of(server, f"You are {a_more}.")) == 4 and len(requests_of(server, f"You are {b_more}.")) == 3
    assert [h["status"] for h in reply["more"]["collaboration"]["consulted"]] == ["ok", "ok", "ok", "refused"]
    assert reply["more"]["collaboration"]["consulted"][-1]["error_code"] == "collaboration_rounds"
    assert reply["more"]["tool_calls"] == []
    assert {"stage": "collaborate", "action": "modify",
            "reason": "consult_agent calls dropped: 3 consultation rounds were used for this answer"} in reply["more"]["stages"]


async def test_a_consultation_survives_a_kill_9_of_the_worker_answering_it(cluster_factory, openai_fake):
    """The collaborator's call is in flight when the worker dies: the question is a record on its partition,
    so the restarted worker answers it, and the asker (whose asking run was already recorded) answers once."""
    server, thread = openai_fake
    cluster = cluster_factory(OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=thread.url + "/v1")
    worker = cluster.worker()
    worker.wait_ready()
    tag = uuid.uuid4().hex[:6]
    asker, helper = f"asker-{tag}", f"helper-{tag}"
    question = "FAULT:slow:4000 Which plan fits?"
    msg = message(asker, room_id=f"r-{tag}", content=f"CONSULT:{helper}:{question}")
    async with Chat(cluster.deployment) as chat:
        await chat.profile(agent(asker, {"agentId": helper}))
        await chat.profile(agent(helper))
        await chat.wait_for(profiles_applied(worker, {asker: 1, helper: 1}), 60, "the profiles")
        await chat.message(msg)
        await chat.wait_for(lambda: server.count(question) >= 1, 60, "the collaborator's call in flight")
        worker.kill()
        cluster.worker(0).wait_ready()
        replies = await chat.wait_replies([msg["messageId"]], timeout=90)
        assert [r["message_id"] for r in chat.replies()] == [msg["messageId"]]
    (reply,) = replies[msg["messageId"]]
    assert reply["status"] == "ok" and reply["content"] == f"{PREFIX} {PREFIX} {question}"
    assert [h["status"] for h in reply["collaboration"]["consulted"]] == ["ok"]
    assert len(requests_of(server, f"You are {asker}.")) == 2  # the asking run was recorded before the kill
    assert len(requests_of(server, f"You are {helper}.")) == 2  # the call cut by the kill, and its redo
