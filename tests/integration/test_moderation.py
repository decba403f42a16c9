"""Moderation through Kafka, one worker and the OpenAI fake (chat and moderation endpoints): each signal
kind and what it does, from its place in the agent's stream to the end of its ttl; output and input
checks with each action, streamed and not; provider moderation with both fail modes. The fake's
`REPLY:<text>` makes the model say exactly <text>; `MODERATE:<category>` makes its moderation endpoint
flag a text."""

from __future__ import annotations

import uuid

import pytest

from gateway_app.moderation.steering import LIVELY, NO_REPEAT
from tests.fakes.base import ServerThread
from tests.fakes.openai_server import FakeOpenAI
from tests.integration.conftest import make_cluster
from tests.integration.harness import Chat, message, profile

MODEL = "gpt-4o-mini"


@pytest.fixture(scope="module")
def fake():
    server = FakeOpenAI()
    with ServerThread(server.app) as thread:
        yield server, thread


@pytest.fixture(scope="module")
def gateway(kafka, tmp_path_factory, fake):
    _, thread = fake
    cluster = make_cluster(kafka, tmp_path_factory.mktemp("moderation"), OPENAI_API_KEY="sk-test",
                           OPENAI_BASE_URL=thread.url + "/v1", GATEWAY_SWEEP_INTERVAL_SECONDS="1",
                           GATEWAY_RETRY_BASE_DELAY_SECONDS="0.05", GATEWAY_RETRY_MAX_ATTEMPTS="2")
    cluster.worker().wait_ready()
    yield cluster
    cluster.stop()


@pytest.fixture
async def chat(gateway):
    async with Chat(gateway.deployment) as client:
        yield client


def agent(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


def openai_profile(agent_id: str, **extra) -> dict:
    return profile(agent_id, provider="openai", model=MODEL, temperature=0.5, maxTokens=100, **extra)


def signal(kind: str, room: str = "room-1", agent_id: str | None = None, **extra) -> dict:
    return {"signalId": f"s-{uuid.uuid4().hex[:8]}", "signal": kind, "roomId": room, "agentId": agent_id, **extra}


async def ask(chat: Chat, agent_id: str, content: str, room: str = "room-1") -> dict:
    msg = message(agent_id, room_id=room, content=content)
    await chat.message(msg)
    return (await chat.wait_replies([msg["messageId"]]))[msg["messageId"]][0]


async def applied(chat: Chat, sig: dict, agents: int = 1) -> list[dict]:
    def events():
        return [e for e in chat.moderation_events() if e["signal_id"] == sig["signalId"] and e["verdict"] == "applied"]

    await chat.wait_for(lambda: len(events()) >= agents, what=f"signal {sig['signalId']} applied")
    return events()


def sent(server: FakeOpenAI, content: str) -> dict:
    """The last chat request whose user message is `content`."""
    bodies = [b for b in server.requests if b["messages"][-1].get("content") == content]
    assert bodies, f"the provider never saw {content!r}"
    return bodies[-1]


def system_of(body: dict) -> str:
    return next((m["content"] for m in body["messages"] if m["role"] == "system"), "")


async def test_a_signal_acts_from_its_place_in_the_agents_stream_until_its_ttl(chat, fake):
    server, _ = fake
    agent_id = agent("boring")
    early = message(agent_id, content=f"read before the signal {uuid.uuid4().hex[:4]}")
    await chat.message(early)  # no profile yet: it waits in admission, read before the signal
    boring = signal("boring", agent_id=agent_id, severity="high", ttlSeconds=4)
    await chat.signal(boring)
    event = (await applied(chat, boring))[0]
    assert event["stage"] == "signal" and event["check"] == "boring" and event["action"] == "steer"
    late = message(agent_id, content=f"read after the signal {uuid.uuid4().hex[:4]}")
    await chat.message(late)
    await chat.profile(openai_profile(agent_id))
    replies = await chat.wait_replies([early["messageId"], late["messageId"]])
    before, after = sent(server, early["content"]), sent(server, late["content"])
    assert before["temperature"] == 0.5 and LIVELY not in system_of(before)
    assert after["temperature"] == 0.8 and LIVELY in system_of(after)
    assert replies[early["messageId"]][0]["moderation"] is None
    assert replies[late["messageId"]][0]["moderation"]["signals"][0]["signal_id"] == boring["signalId"]
    await chat.wait_for(lambda: any(e["signal_id"] == boring["signalId"] and e["verdict"] == "expired"
                                    for e in chat.moderation_events()), timeout=30, what="the expiry event")
    later = await ask(chat, agent_id, f"after the ttl {uuid.uuid4().hex[:4]}")
    assert later["moderation"] is None and sent(server, later_content(later, server))["temperature"] == 0.5


def later_content(reply: dict, server: FakeOpenAI) -> str:
    return reply["content"].removeprefix("fake-openai says: ")


async def test_engagement_shortens_or_lengthens_the_answer(chat, fake):
    server, _ = fake
    low, high = agent("engaged-low"), agent("engaged-high")
    for agent_id, severity in ((low, "low"), (high, "high")):
        await chat.profile(openai_profile(agent_id))
        await applied(chat, await send_signal(chat, signal("engagement", agent_id=agent_id, severity=severity)))
    short, long = f"short please {uuid.uuid4().hex[:4]}", f"long please {uuid.uuid4().hex[:4]}"
    await ask(chat, low, short)
    await ask(chat, high, long)
    assert sent(server, short)["max_tokens"] == 50 and sent(server, long)["max_tokens"] == 150


async def send_signal(chat: Chat, sig: dict) -> dict:
    await chat.signal(sig)
    return sig


async def test_repetitive_regenerates_once_with_penalties_then_publishes_flagged(chat, fake):
    server, _ = fake
    agent_id = agent("repeats")
    await chat.profile(openai_profile(agent_id))
    await applied(chat, await send_signal(chat, signal("repetitive", agent_id=agent_id, severity="medium")))
    same = "REPLY:Our store opens at nine every morning and closes at six."
    first = await ask(chat, agent_id, same)
    second = await ask(chat, agent_id, same)
    assert first["status"] == "ok" and first["moderation"]["verdicts"] == []
    verdicts = second["moderation"]["verdicts"]
    assert [(v["check"], v["action"]) for v in verdicts] == [("repetition", "regenerate"), ("repetition", "flag")]
    assert second["status"] == "ok" and second["attempts"] == 2
    redo = [b for b in server.requests if b["messages"][-1]["content"] == same][-1]
    assert redo["frequency_penalty"] == 0.6 and NO_REPEAT in system_of(redo)
    await chat.wait_for(lambda: len(chat.billing_of(second["message_id"])) == 2, what="both answers billed")


async def test_inappropriate_high_mutes_the_agent_in_the_room_at_no_cost(chat, fake):
    server, _ = fake
    agent_id = agent("muted")
    await chat.profile(openai_profile(agent_id))
    await applied(chat, await send_signal(chat, signal("inappropriate", agent_id=agent_id, severity="high",
                                                       ttlSeconds=3)))
    content = f"are you there {uuid.uuid4().hex[:4]}"
    muted = await ask(chat, agent_id, content)
    assert muted["status"] == "blocked" and muted["error"]["code"] == "agent_muted" and muted["content"] == ""
    assert muted["attempts"] == 0 and not any(b["messages"][-1]["content"] == content for b in server.requests)
    other_room = await ask(chat, agent_id, f"elsewhere {uuid.uuid4().hex[:4]}", room="room-2")
    assert other_room["status"] == "ok"  # muted in that room only
    await chat.wait_for(lambda: any(e["check"] == "inappropriate" and e["verdict"] == "expired"
                                    and e["agent_id"] == agent_id for e in chat.moderation_events()), timeout=30,
                        what="the mute's expiry")
    assert (await ask(chat, agent_id, f"back {uuid.uuid4().hex[:4]}"))["status"] == "ok"
    assert chat.billing_of(muted["message_id"]) == [] and chat.dlq_of(muted["message_id"]) == []


async def test_inappropriate_medium_replaces_a_failing_reply_and_low_blocks_it(chat):
    replaced, strict = agent("fallback"), agent("strict")
    await chat.profile(openai_profile(replaced, moderation={"fallbackReply": "Let's keep it friendly."}))
    await chat.profile(openai_profile(strict))
    await applied(chat, await send_signal(chat, signal("inappropriate", agent_id=replaced, severity="medium")))
    await applied(chat, await send_signal(chat, signal("inappropriate", agent_id=strict, severity="low")))
    swear = "REPLY:That is a shit good question."
    reply = await ask(chat, replaced, swear)
    assert reply["status"] == "ok" and reply["content"] == "Let's keep it friendly."
    assert reply["moderation"]["verdicts"][0]["action"] == "replace"
    blocked = await ask(chat, strict, "REPLY:Write to me at jane.doe@example.com anytime.")
    assert blocked["status"] == "blocked" and blocked["error"]["code"] == "moderation_pii"
    clean = await ask(chat, strict, "REPLY:The weather is fine today.")
    assert clean["status"] == "ok"


async def test_a_signal_without_an_agent_reaches_every_agent_active_in_the_room(chat):
    room = f"room-{uuid.uuid4().hex[:6]}"
    first, second, elsewhere = agent("fan-a"), agent("fan-b"), agent("fan-c")
    for agent_id in (first, second, elsewhere):
        await chat.profile(openai_profile(agent_id))
    await ask(chat, first, "hello from a", room=room)
    await ask(chat, second, "hello from b", room=room)
    await ask(chat, elsewhere, "hello from c", room="another-room")
    sig = await send_signal(chat, signal("boring", room=room, severity="low"))
    events = await applied(chat, sig, agents=2)
    assert sorted(e["agent_id"] for e in events) == sorted([first, second])
    reply = await ask(chat, second, "and now?", room=room)
    assert reply["moderation"]["signals"][0]["signal_id"] == sig["signalId"]


@pytest.mark.parametrize("stream", [False, True])
async def test_output_checks_flag_mask_replace_and_block(chat, stream):
    flagger, masker, replacer, blocker = (agent(f"{kind}-{stream}") for kind in ("flag", "mask", "replace", "block"))
    await chat.profile(openai_profile(flagger, stream=stream))  # the defaults: flag
    await chat.profile(openai_profile(masker, stream=stream, moderation={"outputChecks": {"pii": {"action": "mask"}}}))
    await chat.profile(openai_profile(replacer, stream=stream, moderation={
        "outputChecks": {"wordlist": {"action": "replace"}}, "fallbackReply": "I'd rather not say."}))
    await chat.profile(openai_profile(blocker, stream=stream, moderation={"outputChecks": {"wordlist": {"action": "block"}}}))
    email = "REPLY:Sure. Mail jane.doe@example.com for details. Bye."
    flagged = await ask(chat, flagger, email)
    assert flagged["status"] == "ok" and "jane.doe@example.com" in flagged["content"]
    assert flagged["moderation"]["verdicts"] == [{"stage": "output", "check": "pii", "verdict": "flagged",
                                                  "action": "flag", "categories": ["email"]}]
    masked = await ask(chat, masker, email)
    assert "jane.doe@example.com" not in masked["content"] and masked["content"].startswith("Sure.")
    swear = "REPLY:Hello there. That is shit bad. More to come."
    replaced = await ask(chat, replacer, swear)
    assert replaced["content"] == "I'd rather not say."
    blocked = await ask(chat, blocker, swear)
    assert blocked["status"] == "blocked" and blocked["error"]["code"] == "moderation_wordlist" and not blocked["content"]
    events = [e for e in chat.moderation_events() if e["message_id"] == blocked["message_id"]]
    assert events and events[0]["action"] == "block" and events[0]["content"] is None  # no content by default
    if stream:
        for reply, leaked in ((masked, "jane.doe@example.com"), (blocked, "shit"), (replaced, "shit")):
            await chat.wait_for(lambda: any(c["final"] for _, c in chat.chunks_of(reply["message_id"])),
                                what="the final chunk")
            chunks = [c for _, c in chat.chunks_of(reply["message_id"])]
            assert not any(leaked in c["delta"] for c in chunks), chunks  # nothing past the failed check
        final = [c for _, c in chat.chunks_of(blocked["message_id"]) if c["final"]][0]
        assert final["blocked"] and "".join(c["delta"] for _, c in chat.chunks_of(blocked["message_id"])) == "Hello there. "


async def test_input_checks_block_before_any_call_or_mask_what_the_provider_sees(chat, fake):
    server, _ = fake
    blocker, masker = agent("in-block"), agent("in-mask")
    await chat.profile(openai_profile(blocker, moderation={"inputChecks": {"wordlist": {"action": "block"}}}))
    await chat.profile(openai_profile(masker, moderation={"inputChecks": {"pii": {"action": "mask"}}}))
    rude = f"you shit machine {uuid.uuid4().hex[:4]}"
    blocked = await ask(chat, blocker, rude)
    assert blocked["status"] == "blocked" and blocked["error"]["code"] == "moderation_wordlist"
    assert not any(rude in str(b["messages"]) for b in server.requests) and blocked["attempts"] == 0
    private = f"call me at +44 20 7946 0958 please, ref {uuid.uuid4().hex[:4]}"
    await ask(chat, masker, private)
    assert not any("7946 0958" in str(b["messages"]) for b in server.requests)


async def test_provider_moderation_blocks_or_replaces_and_its_errors_follow_the_fail_mode(chat, fake):
    server, _ = fake
    blocker, replacer, open_mode, closed_mode = (agent(k) for k in ("mod-block", "mod-replace", "mod-open", "mod-closed"))
    await chat.profile(openai_profile(blocker, moderation={"provider": {"action": "block"}}))
    await chat.profile(openai_profile(replacer, moderation={"provider": {"action": "replace"},
                                                            "fallbackReply": "Let's talk about something else."}))
    await chat.profile(openai_profile(open_mode, moderation={"provider": {"failMode": "open"}}))
    await chat.profile(openai_profile(closed_mode, moderation={"provider": {"failMode": "closed"}}))
    violent = "REPLY:Here is how. MODERATE:violence:0.97"
    blocked = await ask(chat, blocker, violent)
    assert blocked["status"] == "blocked" and blocked["error"]["code"] == "moderation_provider"
    assert blocked["moderation"]["verdicts"][0]["categories"] == ["violence"]
    replaced = await ask(chat, replacer, violent)
    assert replaced["status"] == "ok" and replaced["content"] == "Let's talk about something else."
    await chat.wait_for(lambda: any(b["model"] == "omni-moderation-latest" for b in chat.billing_of(replaced["message_id"])),
                        what="the moderation call's billing")
    bill = next(b for b in chat.billing_of(replaced["message_id"]) if b["model"] == "omni-moderation-latest")
    assert bill["cost_usd"] == "0.00000000" or float(bill["cost_usd"]) == 0
    broken = "REPLY:FAULT:500 the moderation endpoint fails on this"
    published = await ask(chat, open_mode, broken)
    assert published["status"] == "ok" and published["moderation"]["verdicts"][0]["verdict"] == "error"
    refused = await ask(chat, closed_mode, broken)
    assert refused["status"] == "blocked" and refused["error"]["code"] == "moderation_check_failed"
    assert server.moderation_requests  # the endpoint was really called


async def test_active_signals_survive_a_restart_with_an_empty_data_directory(cluster_factory, fake):
    _, thread = fake
    cluster = cluster_factory(OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=thread.url + "/v1")
    worker = cluster.worker()
    worker.wait_ready()
    agent_id = agent("muted-restart")
    async with Chat(cluster.deployment) as chat:
        await chat.profile(openai_profile(agent_id))
        await applied(chat, await send_signal(chat, signal("inappropriate", agent_id=agent_id, severity="high",
                                                           ttlSeconds=600)))
        worker.stop()
        fresh = cluster.worker()  # a new index: an empty data directory, tables from their changelogs
        fresh.wait_ready()
        reply = await ask(chat, agent_id, "still muted?")
        assert reply["status"] == "blocked" and reply["error"]["code"] == "agent_muted"
        status, view = fresh.get(f"/agents/{agent_id}/rooms/room-1/moderation")
        assert status == 200 and view["signals"][0]["signal"] == "inappropriate"


@pytest.mark.parametrize("stream", [False, True])
async def test_regenerate_once_then_the_rules_next_action(chat, fake, stream):
    server, _ = fake
    agent_id = agent(f"regen-{stream}")
    await chat.profile(openai_profile(agent_id, stream=stream, moderation={
        "outputChecks": {"wordlist": {"action": "regenerate", "then": "block"}}}))
    swear = f"REPLY:Fine. That is shit {uuid.uuid4().hex[:4]}. Anyway."
    reply = await ask(chat, agent_id, swear)  # the model says it again: regenerated once, then blocked
    assert reply["status"] == "blocked" and reply["error"]["code"] == "moderation_wordlist"
    assert [v["action"] for v in reply["moderation"]["verdicts"]] == ["regenerate", "block"]
    assert sum(1 for b in server.requests if b["messages"][-1]["content"] == swear) == 2
    await chat.wait_for(lambda: len(chat.billing_of(reply["message_id"])) == 2, what="both answers billed")
    if stream:
        await chat.wait_for(lambda: any(c["final"] for _, c in chat.chunks_of(reply["message_id"])),
                            what="the final chunk")
        chunks = [c for _, c in chat.chunks_of(reply["message_id"])]
        assert not any("shit" in c["delta"] for c in chunks)
        assert [c["blocked"] for c in chunks if c["final"]] == [True]  # the superseded stream got no end


async def test_input_checks_flag_or_answer_with_the_fallback_without_a_call(chat, fake):
    server, _ = fake
    flagger, replacer = agent("in-flag"), agent("in-replace")
    await chat.profile(openai_profile(flagger, moderation={"inputChecks": {"pii": {"action": "flag"}}}))
    await chat.profile(openai_profile(replacer, moderation={"inputChecks": {"wordlist": {"action": "replace"}},
                                                            "fallbackReply": "Please keep it civil."}))
    flagged = await ask(chat, flagger, f"my mail is joe@example.org {uuid.uuid4().hex[:4]}")
    assert flagged["status"] == "ok" and flagged["moderation"]["verdicts"][0]["stage"] == "input"
    rude = f"shit service {uuid.uuid4().hex[:4]}"
    answered = await ask(chat, replacer, rude)
    assert answered["status"] == "ok" and answered["content"] == "Please keep it civil." and answered["attempts"] == 0
    assert not any(rude in str(b["messages"]) for b in server.requests)


async def test_sentiment_on_the_reply_and_on_its_moderation_events(chat):
    analyst, plain = agent("sentiment"), agent("no-sentiment")
    await chat.profile(openai_profile(analyst, postProcessing=["sentiment"]))
    await chat.profile(openai_profile(plain))
    happy = await ask(chat, analyst, "REPLY:Great news, your refund went through and I'm glad I could help!")
    assert happy["status"] == "ok" and happy["sentiment"]["reply"]["label"] == "positive"
    assert happy["sentiment"]["reply"]["score"] > 0.5 and happy["sentiment"]["user"]["label"] == "positive"
    angry = await ask(chat, analyst, "REPLY:This is awful and I hate it. Mail jane.doe@example.com if you must.")
    assert angry["sentiment"]["reply"]["label"] == "negative"
    events = [e for e in chat.moderation_events() if e["message_id"] == angry["message_id"]]
    assert events and all(e["sentiment"] == angry["sentiment"] for e in events)  # the pii flag carries it
    untouched = await ask(chat, plain, "REPLY:Great news, your refund went through!")
    assert untouched["sentiment"] is None
