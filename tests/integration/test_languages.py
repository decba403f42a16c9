"""The profile's `language` through Kafka, one worker as a subprocess on `rocksdb://`: a fixed tag asks
the model for that language whatever the user writes, `auto` for the user's, and the reply says which."""

from __future__ import annotations

import uuid

import pytest

from tests.fakes.base import ServerThread
from tests.fakes.openai_server import FakeOpenAI
from tests.integration.harness import Chat, message, profile, profiles_applied, wait_until


@pytest.fixture
def openai_fake():
    server = FakeOpenAI()
    with ServerThread(server.app) as thread:
        yield server, thread


def system_prompt_for(server: FakeOpenAI, content: str) -> str:
    body = next(b for b in server.requests if b["messages"][-1]["content"] == content)
    return next((m["content"] for m in body["messages"] if m["role"] == "system"), "")


async def test_fixed_and_auto_languages(cluster_factory, openai_fake):
    server, thread = openai_fake
    cluster = cluster_factory(OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=thread.url + "/v1")
    worker = cluster.worker()
    worker.wait_ready()
    fixed, auto, none = (f"{kind}-{uuid.uuid4().hex[:6]}" for kind in ("fixed", "auto", "none"))
    spanish = "Hola, ¿dónde está mi pedido? Lo compré la semana pasada."
    async with Chat(cluster.deployment) as chat:
        for agent, language in ((fixed, "pt-BR"), (auto, "auto"), (none, None)):
            await chat.profile(profile(agent, provider="openai", model="gpt-4o-mini", systemPrompt="You help.",
                                       **({"language": language} if language else {})))
        await wait_until(profiles_applied(worker, {fixed: 1, auto: 1, none: 1}), 60, "the profiles")
        # Told apart at the fake by a number (digits are no letters: "ok 12" is still too short to judge).
        pairs = [(agent, text) for agent in (fixed, auto, none) for text in (spanish, "ok")]
        msgs = {key: message(key[0], room_id=f"r-{key[0]}", content=f"{key[1]} {n}") for n, key in enumerate(pairs)}
        for msg in msgs.values():
            await chat.message(msg)
        replies = await chat.wait_replies([m["messageId"] for m in msgs.values()], timeout=90)
    reply = {key: replies[m["messageId"]][0] for key, m in msgs.items()}
    prompt = {key: system_prompt_for(server, m["content"]) for key, m in msgs.items()}
    assert all(r["status"] == "ok" for r in reply.values()), reply
    for text in (spanish, "ok"):  # a fixed tag whatever the user writes
        assert reply[(fixed, text)]["language"] == "pt-BR"
        assert prompt[(fixed, text)] == ("You help.\n\nAlways answer in Portuguese (Brazil) (pt-BR), whatever "
                                         "language the user writes in.")
    assert reply[(auto, spanish)]["language"] == "es"
    assert prompt[(auto, spanish)] == "You help.\n\nAnswer in Spanish, the language of the user's last message."
    assert reply[(auto, "ok")]["language"] is None and prompt[(auto, "ok")] == "You help."  # too short to tell
    assert all(reply[(none, t)]["language"] is None and prompt[(none, t)] == "You help." for t in (spanish, "ok"))
