"""One worker on a real broker: join, parking, versions, rate limits, bad input."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import pytest

from tests.integration.conftest import make_cluster
from tests.fakes.openai_server import FakeOpenAI, ServerThread
from tests.integration.harness import Chat, message, profile, profiles_applied, wait_until

WINDOW = 3.0


@pytest.fixture(scope="module")
def fake_openai():
    server = FakeOpenAI()
    with ServerThread(server.app) as thread:
        yield server, thread


@pytest.fixture(scope="module")
def gateway(kafka, tmp_path_factory, fake_openai):
    cluster = make_cluster(kafka, tmp_path_factory.mktemp("flow"), GATEWAY_RATE_WINDOW_SECONDS=str(WINDOW),
                           GATEWAY_PROFILE_WAIT_SECONDS="4", GATEWAY_MAX_CONTENT_CHARS="1000",
                           GATEWAY_AGENT_BACKLOG_MAX="50", OPENAI_API_KEY="sk-test",
                           GATEWAY_RETRY_BASE_DELAY_SECONDS="0.05", GATEWAY_RETRY_MAX_ATTEMPTS="3",
                           # These tests retry on one endpoint; the breaker has its own (test_providers).
                           GATEWAY_BREAKER_CONSECUTIVE_FAILURES="50",
                           OPENAI_BASE_URL=fake_openai[1].url + "/v1")
    worker = cluster.worker()
    worker.wait_ready()
    yield cluster
    cluster.stop()


@pytest.fixture
async def chat(gateway):
    async with Chat(gateway.deployment) as client:
        yield client


async def test_profile_then_message_gets_ok_reply_and_billing(chat, gateway):
    await chat.profile(profile("a-basic", systemPrompt="be nice"))
    msg = message("a-basic", content="one two three")
    await wait_until(profiles_applied(gateway.workers[0], {"a-basic": 1}), 30, "profile a-basic in force")
    await chat.message(msg)
    replies = await chat.wait_replies([msg["messageId"]])
    reply = replies[msg["messageId"]][0]
    assert reply["status"] == "ok" and reply["content"] == "one two three"
    assert reply["provider"] == "echo" and reply["profile_version"] == 1 and reply["room_id"] == "room-1"
    assert reply["usage"] == {"input_tokens": 5, "output_tokens": 3, "cached_input_tokens": 0, "reasoning_tokens": 0}
    await chat.wait_for(lambda: any(b["message_id"] == msg["messageId"] for _, b in chat.seen["billing"]),
                        what="billing event")
    bill = next(b for _, b in chat.seen["billing"] if b["message_id"] == msg["messageId"])
    assert bill["input_tokens"] == 5 and bill["output_tokens"] == 3 and bill["cost_usd"] == "0.00000000"
    assert bill["price_version"] and bill["event_id"]
    status, body = gateway.workers[0].get("/agents/a-basic")
    assert status == 200 and body["version"] == 1 and body["system_prompt"] == "be nice"


async def test_message_before_profile_is_parked_and_answered_in_order(chat, gateway):
    first, second = message("a-late", content="first"), message("a-late", content="second")
    await chat.message(first)
    await chat.message(second)
    await wait_until(lambda: gateway.workers[0].get("/health")[1]["pending_messages"] >= 2, 30,
                     "both messages taken in by the worker")
    await asyncio.sleep(1.0)  # a negative check: for a while (under the 4 s profile wait) no reply comes
    assert not chat.replies_by_message().get(first["messageId"])
    await chat.profile(profile("a-late", version=3))
    replies = await chat.wait_replies([first["messageId"], second["messageId"]])
    assert [replies[m["messageId"]][0]["status"] for m in (first, second)] == ["ok", "ok"]
    assert chat.arrival(first["messageId"]) <= chat.arrival(second["messageId"])


async def test_message_for_unknown_agent_times_out_as_agent_unavailable(chat):
    msg = message("a-never")
    await chat.message(msg)
    replies = await chat.wait_replies([msg["messageId"]], timeout=30)
    reply = replies[msg["messageId"]][0]
    assert reply["status"] == "agent_unavailable" and reply["error"]["code"] == "agent_unknown"
    await chat.wait_for(lambda: any(d.get("message_id") == msg["messageId"] for _, d in chat.seen["dlq"]),
                        what="DLQ record")


async def test_stale_profile_version_is_ignored(chat, gateway):
    await chat.profile(profile("a-versions", version=2, model="echo-v2"))
    await chat.profile(profile("a-versions", version=1, model="echo-v1"))
    await chat.profile(profile("a-versions", version=2, model="echo-dup"))
    msg = message("a-versions")
    await chat.message(msg)
    reply = (await chat.wait_replies([msg["messageId"]]))[msg["messageId"]][0]
    assert reply["profile_version"] == 2 and reply["model"] == "echo-v2"
    assert gateway.workers[0].get("/agents/a-versions")[1]["model"] == "echo-v2"


async def test_disabled_and_deleted_agents(chat, gateway):
    await chat.profile(profile("a-off", enabled=False))
    msg = message("a-off")
    await chat.message(msg)
    reply = (await chat.wait_replies([msg["messageId"]]))[msg["messageId"]][0]
    assert reply["status"] == "agent_unavailable" and reply["error"]["code"] == "agent_disabled"
    await chat.send("profile_deleted", {"agentId": "a-off", "version": 2}, key=b"a-off")
    await chat.wait_for(lambda: gateway.workers[0].get("/agents/a-off")[0] == 404, what="profile deleted")
    stale_before = gateway.workers[0].get("/health")[1]["counters"].get("profiles_stale", 0)
    await chat.profile(profile("a-off", version=1))  # older than the delete: stays deleted
    await chat.wait_for(lambda: gateway.workers[0].get("/health")[1]["counters"].get("profiles_stale", 0)
                        > stale_before, what="the older update seen and refused as stale")
    status, body = gateway.workers[0].get("/agents/a-off")
    assert status == 404 and body["error"]["code"] == "agent_not_found"


def same_partition_agents(deployment, prefix: str) -> tuple[str, str]:
    first = f"{prefix}-0"
    for i in range(1, 500):
        other = f"{prefix}-{i}"
        if deployment.partition_of(other) == deployment.partition_of(first):
            return first, other
    raise AssertionError("no two agents share a partition")


async def test_rpm_limit_defers_without_delaying_another_agent_on_the_same_partition(chat, gateway):
    limited, free = same_partition_agents(gateway.deployment, "a-rpm")
    await chat.profile(profile(limited, rateLimits={"rpm": 2, "tpm": None}))
    await chat.profile(profile(free))
    await wait_until(profiles_applied(gateway.workers[0], {limited: 1, free: 1}), 30, "both profiles in force")
    # Start just after a window boundary so that the first two fit in one window (pacing, not a wait
    # for a condition: the windows are on the wall clock).
    await asyncio.sleep(WINDOW - time.time() % WINDOW + 0.05)
    # One room: one input partition, so the gateway sees the burst in the order it was sent.
    burst = [message(limited, room_id="r-burst", content=f"limited {i}") for i in range(5)]
    other = message(free, content="not limited")
    sent_at = time.monotonic()
    for msg in burst:
        await chat.message(msg)
    await chat.message(other)
    replies = await chat.wait_replies([m["messageId"] for m in burst] + [other["messageId"]], timeout=30)
    assert all(replies[m["messageId"]][0]["status"] == "ok" for m in burst)
    offsets = [chat.arrival(m["messageId"]) - sent_at for m in burst]
    free_after = chat.arrival(other["messageId"]) - sent_at
    # 2 per window: the 3rd..5th wait for the next windows; the other agent is not held behind them.
    assert free_after < offsets[2], (free_after, offsets)
    assert offsets[2] >= WINDOW * 0.5 and offsets[4] >= WINDOW * 1.5, offsets
    answered_at = [replies[m["messageId"]][0]["created_at"] for m in burst]
    assert answered_at == sorted(answered_at)  # in arrival order
    status, usage = gateway.workers[0].get(f"/agents/{limited}/usage")
    assert status == 200 and usage["limits"]["rpm"] == 2 and usage["requests"] <= 2


async def test_request_over_tpm_is_rate_limited_at_once(chat):
    await chat.profile(profile("a-tpm", maxTokens=500, rateLimits={"rpm": None, "tpm": 100}))
    msg = message("a-tpm")
    await chat.message(msg)
    reply = (await chat.wait_replies([msg["messageId"]]))[msg["messageId"]][0]
    assert reply["status"] == "rate_limited" and reply["error"]["code"] == "exceeds_tpm"


BAD_INPUTS = [
    (b"\xff\xfe\xfd", "undecodable"),
    (b"{oops", "invalid_json"),
    (b"[1, 2, 3]", "invalid_event"),
    (json.dumps({"agentId": "a-bad", "roomId": "room-bad", "content": "no id"}).encode(), "invalid_event"),
    (json.dumps({"messageId": 7, "agentId": "a-bad", "roomId": "room-bad", "content": "x"}).encode(), "invalid_event"),
    (json.dumps({"messageId": "bad-empty", "agentId": "a-bad", "roomId": "room-bad", "content": ""}).encode(),
     "invalid_event"),
    (json.dumps({"messageId": "bad-long", "agentId": "a-bad", "roomId": "room-bad", "content": "x" * 1001}).encode(),
     "content_too_long"),
    (None, "invalid_event"),
]


async def test_bad_inputs_go_to_dlq_and_the_partition_keeps_moving(chat):
    await chat.profile(profile("a-bad"))
    for value, _ in BAD_INPUTS:
        await chat.send("messages", value, key=b"same-key")
    await chat.send("profile_updated", {"agentId": "a-bad", "version": "x"}, key=b"same-key")
    await chat.send("profile_updated", profile("a-bad", version=5, provider="nope"), key=b"same-key")
    good = message("a-bad", room_id="room-bad")
    await chat.send("messages", good, key=b"same-key")
    await chat.wait_replies([good["messageId"]])
    expected = [code for _, code in BAD_INPUTS] + ["invalid_event", "unknown_provider"]

    def dlq_from_inputs():
        return [d for _, d in chat.seen["dlq"] if d.get("agent_id") in (None, "a-bad")]

    await chat.wait_for(lambda: len(dlq_from_inputs()) >= len(expected), what="DLQ records")
    records = dlq_from_inputs()
    assert sorted(d["error_code"] for d in records) == sorted(expected)
    for record in records:
        assert record["reason"] and record["source_offset"] >= 0
        if record["error_code"] == "undecodable":
            assert base64.b64decode(record["value_b64"]) == b"\xff\xfe\xfd"
            assert base64.b64decode(record["key_b64"]) == b"same-key"
    # Messages that named a room got an error reply there.
    errors = [r for r in chat.replies() if r["room_id"] == "room-bad" and r["status"] == "error"]
    assert {r["error"]["code"] for r in errors} == {"invalid_event", "content_too_long"}
    assert len(errors) == 4


async def test_openai_agent_answers_through_the_sdk_and_is_billed_from_the_price_table(chat, fake_openai):
    await chat.profile(profile("a-openai", provider="openai", model="gpt-4o-mini", systemPrompt="be brief"))
    good, bad = message("a-openai", content="what is kafka"), message("a-openai", content="FAULT:400")
    await chat.message(good)
    await chat.message(bad)
    replies = await chat.wait_replies([good["messageId"], bad["messageId"]])
    ok = replies[good["messageId"]][0]
    assert ok["status"] == "ok" and ok["content"] == "fake-openai says: what is kafka"
    assert ok["usage"] == {"input_tokens": 5, "output_tokens": 5, "cached_input_tokens": 2, "reasoning_tokens": 0}
    assert ok["provider"] == "openai" and ok["fallback_index"] == 0 and ok["attempts"] == 1
    failed = replies[bad["messageId"]][0]
    assert failed["status"] == "error" and failed["error"]["code"] == "provider_rejected"
    assert "400" in failed["error"]["message"]
    await chat.wait_for(lambda: any(b["message_id"] == good["messageId"] for _, b in chat.seen["billing"]),
                        what="billing event")
    bill = next(b for _, b in chat.seen["billing"] if b["message_id"] == good["messageId"])
    assert bill["cost_usd"] == "0.00000360"  # (3 * 0.15 + 2 cached * 0.075 + 5 * 0.60) per million
    await chat.wait_for(lambda: any(d.get("message_id") == bad["messageId"] for _, d in chat.seen["dlq"]),
                        what="DLQ record of the failed call")
    dead = next(d for _, d in chat.seen["dlq"] if d.get("message_id") == bad["messageId"])
    assert dead["attempts"] == 1 and json.loads(base64.b64decode(dead["value_b64"]))["content"] == "FAULT:400"
    assert not any(b["message_id"] == bad["messageId"] for _, b in chat.seen["billing"])


async def test_retriable_failures_are_retried_and_permanent_ones_dead_lettered(chat, fake_openai):
    await chat.profile(profile("a-retry", provider="openai", model="gpt-4o-mini"))
    flaky = message("a-retry", content="FAULT:flaky:2:503 then fine")
    down = message("a-retry", room_id="room-2", content="FAULT:502")
    await chat.message(flaky)
    await chat.message(down)
    replies = await chat.wait_replies([flaky["messageId"], down["messageId"]])
    assert replies[flaky["messageId"]][0]["status"] == "ok"
    assert fake_openai[0].seen[flaky["content"]] == 3  # two 503s, then the answer
    failed = replies[down["messageId"]][0]
    assert failed["status"] == "error" and "after 3 attempts" in failed["error"]["message"]
    assert fake_openai[0].seen[down["content"]] == 3  # GATEWAY_RETRY_MAX_ATTEMPTS
    await chat.wait_for(lambda: any(d.get("message_id") == down["messageId"] for _, d in chat.seen["dlq"]),
                        what="DLQ record")
    dead = next(d for _, d in chat.seen["dlq"] if d.get("message_id") == down["messageId"])
    assert dead["attempts"] == 3 and dead["error_code"] == "provider_unavailable"
    assert [h["status"] for h in dead["attempt_history"]] == [502, 502, 502]
    await chat.wait_for(lambda: chat.billing_of(flaky["messageId"]), what="billing of the answered message")
    await asyncio.sleep(1)  # a negative check: for a while no billing of the failed message comes
    assert not any(b["message_id"] == down["messageId"] for _, b in chat.seen["billing"])


async def test_offset_gaps_of_a_transactional_producer_are_crossed_in_order(chat, gateway):
    """Transaction markers take offsets no consumer sees: each gap first looks like a skipped record (the
    consumer seeks back to the missing offset), then the refetch shows it is real, and the stream goes on."""
    from aiokafka import AIOKafkaProducer

    worker = gateway.workers[0]
    before = worker.get("/health")[1]["delivery"]
    await chat.profile(profile("txn-bot"))
    producer = AIOKafkaProducer(bootstrap_servers=gateway.deployment.bootstrap,
                                transactional_id=f"upstream-{time.monotonic_ns()}")
    await producer.start()
    sent = []
    try:
        for _ in range(6):
            async with producer.transaction():  # three records, then a commit marker
                for _ in range(3):
                    msg = message("txn-bot", room_id="room-txn")
                    await producer.send(gateway.deployment.topic("messages"), json.dumps(msg).encode(),
                                        key=b"room-txn")
                    sent.append(msg["messageId"])
    finally:
        await producer.stop()
    replies = await chat.wait_replies(sent, timeout=60)
    assert all(replies[m][0]["status"] == "ok" for m in sent)
    order = [r["message_id"] for r in chat.replies() if r["message_id"] in set(sent)]
    assert sorted(set(order), key=order.index) == sent  # first replies in the order sent
    after = worker.get("/health")[1]["delivery"]
    # Five markers sit between the six transactions (the last one has no record after it yet).
    assert after["gaps_accepted"] - before["gaps_accepted"] == 5
    assert after["hole"] - before["hole"] == 5
