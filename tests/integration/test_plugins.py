"""Plugins through workers on a real broker. The workers run in the venv, where `make` installed the
example package (`parrot` provider, `redact-emails` stage) and the test stages (`tests/plugin_fixtures`).

Two deployments, each shared by several checks to save start-up time: one for the example package
(and profiles naming stages that are not installed or refuse their options), one for stages that fail,
hang, block or regenerate."""

from __future__ import annotations

import uuid

import pytest
from gateway_plugin_example.fake_server import FakeParrot

from tests.fakes.base import ServerThread
from tests.integration.harness import Chat, message, profile

PARROT_KEY = "parrot-integration-key"
PROFILE_WAIT = 2.0  # an agent whose profile was refused: its messages wait this long, then agent_unknown


def agent(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def fake_parrot():
    server = FakeParrot(PARROT_KEY)
    with ServerThread(server.app) as thread:
        yield server, thread.url


async def wait_applied(chat: Chat, worker, agent_ids: list[str]) -> None:
    """The worker stores these profiles: messages sent now are not parked waiting for them."""
    await chat.wait_for(lambda: all(worker.get(f"/agents/{a}")[0] == 200 for a in agent_ids), timeout=20,
                        what=f"profiles of {agent_ids} applied")


def only(replies: dict[str, list[dict]], msg: dict) -> dict:
    """The message's reply. Delivery is at least once: after a rebalance a message may be answered
    again, with the same outcome (re-sent bytes, or the same deterministic stages and fake answers)."""
    first, *copies = replies[msg["messageId"]]

    def outcome(reply: dict) -> tuple:
        return reply["status"], reply["content"], reply["error"], reply["stages"]

    assert all(outcome(copy) == outcome(first) for copy in copies), copies
    return first


def distinct(records: list[dict], key: str) -> list[dict]:
    """Billing events or DLQ records, one per id (a redelivery re-sends them with the same id)."""
    return list({record[key]: record for record in records}.values())


async def test_parrot_provider_with_redaction_end_to_end_and_profiles_naming_bad_stages(cluster_factory,
                                                                                         fake_parrot):
    server, url = fake_parrot
    cluster = cluster_factory(PARROT_BASE_URL=url, PARROT_API_KEY=PARROT_KEY,
                              GATEWAY_PROFILE_WAIT_SECONDS=str(PROFILE_WAIT))
    worker = cluster.worker()
    worker.wait_ready()
    async with Chat(cluster.deployment) as chat:
        plain, streamed = agent("parrot"), agent("parrot-stream")
        unknown, refused = agent("unknown-stage"), agent("refused-options")
        await chat.profile(profile(plain, provider="parrot", model="parrot-1", systemPrompt="be brief",
                                   stages=[{"name": "redact-emails"}]))
        await chat.profile(profile(streamed, provider="parrot", model="parrot-1", stream=True,
                                   stages=[{"name": "redact-emails", "options": {"replacement": "[hidden]"}}]))
        await chat.profile(profile(unknown, stages=[{"name": "no-such-stage"}]))
        await chat.profile(profile(refused, stages=[{"name": "redact-emails", "options": {"replacement": 5}}]))
        await wait_applied(chat, worker, [plain, streamed])

        ok = message(plain, room_id="room-parrot", content="write to ann@example.com today")
        stream = message(streamed, room_id="room-parrot-stream", content="bob@example.org knows the answer")
        clean = message(plain, room_id="room-parrot-clean", content="nothing private here")
        to_unknown, to_refused = message(unknown, room_id="room-unknown"), message(refused, room_id="room-refused")
        for msg in (ok, stream, clean, to_unknown, to_refused):
            await chat.message(msg)
        replies = await chat.wait_replies([m["messageId"] for m in (ok, stream, clean)], timeout=45)

        # (a) the plugin provider answered, the plugin stage redacted, and the answer was billed
        reply = only(replies, ok)
        assert reply["status"] == "ok", reply
        assert reply["content"] == "today [email redacted] to write"  # parrot reverses the words
        assert reply["provider"] == "parrot" and reply["model"] == "parrot-1" and reply["finish_reason"] == "stop"
        assert reply["provider_request_id"].startswith("parrot-") and reply["attempts"] == 1
        assert reply["stages"] == [{"stage": "redact-emails", "action": "modify",
                                    "reason": "1 e-mail address redacted"}]
        # words_in: "be brief" + the 4 words of the prompt; words_out: 4
        assert reply["usage"] == {"input_tokens": 6, "output_tokens": 4, "cached_input_tokens": 0,
                                  "reasoning_tokens": 0}
        [sent_to_parrot] = [r for r in server.requests if r["prompt"] == ok["content"]]
        assert sent_to_parrot == {"model": "parrot-1", "system": "be brief", "prompt": ok["content"], "history": [],
                                  "max_words": 64}
        untouched = only(replies, clean)
        assert untouched["status"] == "ok" and untouched["content"] == "here private nothing"
        assert untouched["stages"] == []  # the stage passed: no note
        # streamed: the chunks carry the provider's text, the final reply is redacted
        streamed_reply = only(replies, stream)
        assert streamed_reply["status"] == "ok" and streamed_reply["content"] == "answer the knows [hidden]"
        assert streamed_reply["stages"][0]["action"] == "modify"
        await chat.wait_for(lambda: any(c["final"] for _, c in chat.chunks_of(stream["messageId"])),
                            what="final chunk of the streamed parrot answer")
        await chat.wait_for(lambda: chat.billing_of(ok["messageId"]) and chat.billing_of(stream["messageId"]),
                            what="billing of the parrot answers")
        [bill] = distinct(chat.billing_of(ok["messageId"]), "event_id")
        assert bill["provider"] == "parrot" and bill["model"] == "parrot-1" and bill["agent_id"] == plain
        assert (bill["input_tokens"], bill["output_tokens"]) == (6, 4)
        assert bill["provider_request_id"] == reply["provider_request_id"] and bill["event_id"]

        # (e) profiles naming a stage that is not installed, or refused options: dead-lettered at intake,
        # and their agents' messages are answered as for an agent without a profile
        def profile_dlq(agent_id: str) -> list[dict]:
            return [d for _, d in chat.seen["dlq"] if d.get("agent_id") == agent_id and d.get("message_id") is None]

        await chat.wait_for(lambda: profile_dlq(unknown) and profile_dlq(refused), timeout=20,
                            what="DLQ records of the refused profiles")
        [dead] = distinct(profile_dlq(unknown), "dlq_id")
        assert dead["error_code"] == "unknown_stage" and "'no-such-stage' is not installed" in dead["reason"]
        assert dead["source_topic"] == cluster.deployment.topic("profile_updated")
        [dead] = distinct(profile_dlq(refused), "dlq_id")
        assert dead["error_code"] == "invalid_stage_options"
        assert dead["reason"] == "stage 'redact-emails' refused its options: replacement must be text, not int"
        replies = await chat.wait_replies([to_unknown["messageId"], to_refused["messageId"]],
                                          timeout=PROFILE_WAIT + 40)
        for msg in (to_unknown, to_refused):
            reply = only(replies, msg)
            assert reply["status"] == "agent_unavailable" and reply["error"]["code"] == "agent_unknown", reply
        assert worker.get(f"/agents/{unknown}")[0] == 404
        status, health = worker.get("/health")
        assert status == 200
        listed = {p["name"]: p for p in health["plugins"]}
        assert listed["parrot"]["loaded"] and listed["redact-emails"]["loaded"]


async def test_stages_that_fail_hang_block_and_regenerate(cluster_factory):
    cluster = cluster_factory()
    worker = cluster.worker()
    worker.wait_ready()
    async with Chat(cluster.deployment) as chat:
        names = ["fail-closed", "garbage", "fail-open", "hang", "block", "regenerate"]
        agents = {name: agent(name) for name in names}
        for name, agent_id in agents.items():
            await chat.profile(profile(agent_id, stages=[{"name": f"test-{name}"}]))
        await wait_applied(chat, worker, list(agents.values()))

        closed = message(agents["fail-closed"], room_id="room-closed")
        garbage = message(agents["garbage"], room_id="room-garbage", content="one two three")
        opened = message(agents["fail-open"], room_id="room-open", content="still answered")
        hang = message(agents["hang"], room_id="room-hang", content="[hang] please")
        after_hang = message(agents["hang"], room_id="room-hang", content="after the hang")
        block = message(agents["block"], room_id="room-block")
        regenerate = message(agents["regenerate"], room_id="room-regenerate", content="say it twice")
        sent = [closed, garbage, opened, hang, after_hang, block, regenerate]
        for msg in sent:
            await chat.message(msg)
        replies = await chat.wait_replies([m["messageId"] for m in sent], timeout=45)

        # (b) a failing `closed` stage fails its message: error reply naming the stage, and a DLQ record
        reply = only(replies, closed)
        assert reply["status"] == "error" and reply["error"]["code"] == "stage_failed", reply
        assert reply["error"]["message"] == \
            "stage 'test-fail-closed' failed: raised RuntimeError: test-fail-closed fails on purpose"
        reply = only(replies, garbage)
        assert reply["status"] == "error" and reply["error"]["code"] == "stage_failed", reply
        assert reply["error"]["message"].startswith("stage 'test-garbage' failed: returned str, not one of Pass")
        failed = [closed, garbage, hang]
        await chat.wait_for(lambda: all(chat.dlq_of(m["messageId"]) for m in failed), what="DLQ records")
        for msg in failed:
            [dead] = distinct(chat.dlq_of(msg["messageId"]), "dlq_id")
            assert dead["error_code"] == "stage_failed" and dead["agent_id"] == msg["agentId"]
            assert dead["source_topic"] == cluster.deployment.topic("messages")

        # (c) a failing `open` stage is skipped: the message is answered, the reply and /health say so
        reply = only(replies, opened)
        assert reply["status"] == "ok" and reply["content"] == "still answered", reply
        assert reply["stages"] == [{"stage": "test-fail-open", "action": "skipped", "reason": None}]
        status, health = worker.get("/health")
        assert status == 200 and health["counters"]["stages_failed_open"] >= 1

        # (d) a hanging stage is cut at its time limit (0.5 s), long before the 60 s call timeout, and
        # the conversation goes on: the next message of the same room is answered. `latency_ms` is the
        # worker's own time for the message (the wall clock adds the broker's hops: seconds on a loaded
        # machine; the replies' deadline above, 45 s, is itself below the call timeout).
        reply = only(replies, hang)
        assert reply["status"] == "error" and reply["error"]["code"] == "stage_failed", reply
        assert reply["error"]["message"] == "stage 'test-hang' failed: no verdict within its time limit of 0.5s"
        assert 500 <= reply["latency_ms"] < 3000, reply
        reply = only(replies, after_hang)
        assert reply["status"] == "ok" and reply["content"] == "after the hang", reply
        assert chat.arrival(hang["messageId"]) <= chat.arrival(after_hang["messageId"])

        # (f) a pre-call Block: status blocked, no provider call, no DLQ record, no billing
        reply = only(replies, block)
        assert reply["status"] == "blocked" and reply["error"]["code"] == "blocked_by_stage", reply
        assert reply["error"]["message"] == "blocked by stage 'test-block': test-block refuses every input"
        assert reply["stages"] == [{"stage": "test-block", "action": "block",
                                    "reason": "test-block refuses every input"}]
        assert reply["attempts"] == 0

        # (f) a post-call Regenerate: asked once, the second answer is sent, both answers are billed
        reply = only(replies, regenerate)
        assert reply["status"] == "ok" and reply["content"] == "say it twice", reply
        assert reply["stages"] == [{"stage": "test-regenerate", "action": "regenerate",
                                    "reason": "test-regenerate wants a second answer"}]
        await chat.wait_for(lambda: len(distinct(chat.billing_of(regenerate["messageId"]), "event_id")) >= 2
                            and chat.billing_of(garbage["messageId"]), what="billing events")
        bills = distinct(chat.billing_of(regenerate["messageId"]), "event_id")
        assert len(bills) == 2  # two answers, two events with distinct ids
        assert all((b["input_tokens"], b["output_tokens"]) == (3, 3) for b in bills)
        # the garbage stage failed after its provider answer: that answer is billed once
        assert len(distinct(chat.billing_of(garbage["messageId"]), "event_id")) == 1

        # What must not exist: written before the replies above (a DLQ record goes out before its reply,
        # billing right after it), so what we have read by now is complete for these messages.
        assert not chat.dlq_of(block["messageId"]) and not chat.billing_of(block["messageId"])
        assert not chat.dlq_of(opened["messageId"]) and not chat.dlq_of(regenerate["messageId"])
        assert not chat.billing_of(closed["messageId"])
