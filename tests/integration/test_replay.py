"""Replays on a real broker with a real worker, the commands run as an operator runs them (subprocesses
with the deployment's environment):

- `shadow` against the echo provider writes one reply and one billing event per message into the run's
  shadow topics and nothing into the live reply topic; `compare` prints both sides;
- `reprice` with a price table the test writes bills the same event ids at the new prices;
- neither moves the live group's committed offsets, nor joins the group;
- `reprocess` after a provider outage (the OpenAI fake switched `down`) answers each failed message once
  and sends no answered message to the provider again; billing event ids stay unique;
- `dlq replay` sends an outage's dead letters back and says which.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from devtools.workers import REPO, Deployment
from gateway_app.credentials.kafka_rotation import read_changelog
from gateway_app.pricing.prices import PriceTable
from tests.fakes.openai_server import FakeOpenAI, ServerThread
from tests.integration.conftest import make_cluster
from tests.integration.harness import Chat, message, profile, profiles_applied, wait_until

MESSAGES = 5


@pytest.fixture(scope="module")
def fake():
    server = FakeOpenAI()
    with ServerThread(server.app) as thread:
        yield server, thread


@pytest.fixture(scope="module")
def gateway(kafka, tmp_path_factory, fake):
    _, thread = fake
    env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": thread.url + "/v1", "GATEWAY_PRELOAD_PROVIDERS": "openai",
           # an outage fails each message at once, and the breaker never opens (the retry must reach the fake)
           "GATEWAY_RETRY_MAX_ATTEMPTS": "1", "GATEWAY_MESSAGE_DEADLINE_SECONDS": "5",
           "GATEWAY_CALL_TIMEOUT_SECONDS": "3", "GATEWAY_BREAKER_CONSECUTIVE_FAILURES": "1000",
           "GATEWAY_BREAKER_MIN_CALLS": "1000"}
    cluster = make_cluster(kafka, tmp_path_factory.mktemp("replay"), **env)
    cluster.worker().wait_ready()
    yield cluster
    cluster.stop()


@pytest.fixture
async def chat(gateway):
    async with Chat(gateway.deployment) as client:
        yield client


def cli(deployment: Deployment, data_dir, *args: str) -> str:
    """The command's stdout; fails the test with its stderr when it exits non-zero."""
    done = subprocess.run([sys.executable, "-m", "gateway_app.cli", *args, "--data-dir", str(data_dir)], cwd=REPO,
                          env={**os.environ, **deployment.environment()}, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    if args[0] == "replay" and "--execute" in args:
        assert "records" in done.stderr, f"no progress line on stderr: {done.stderr}"
    return done.stdout


def moment() -> str:
    """A `--from` just before what the test sends next."""
    return (datetime.now(timezone.utc) - timedelta(seconds=1)).isoformat()


def priced(agent_id: str) -> dict:
    return profile(agent_id, provider="openai", model="gpt-4o-mini", systemPrompt="be brief")


async def values(d: Deployment, topic: str) -> list[dict]:
    return [json.loads(value) for _, value in await read_changelog(d.bootstrap, topic)]


async def group_offsets(d: Deployment) -> tuple[dict, int]:
    """The live group's committed offsets, and how many members it has."""
    admin = AIOKafkaAdminClient(bootstrap_servers=d.bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(d.name)
        described = await admin.describe_consumer_groups([d.name])
    finally:
        await admin.close()
    members = len(described[0].groups[0][5]) if described and described[0].groups else 0
    return {f"{tp.topic}/{tp.partition}": meta.offset for tp, meta in offsets.items()}, members


async def settled(d: Deployment) -> dict:
    """Wait until the live group committed everything of the messages topic and the internal topic (the
    workers have nothing left to do), then its committed offsets."""
    consumer = AIOKafkaConsumer(bootstrap_servers=d.bootstrap, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(d.topic(key), p) for key in ("messages", "agent_events") for p in range(d.partitions)]
        state: dict = {}

        async def caught_up() -> bool:
            ends = await consumer.end_offsets(tps)
            state["offsets"], _ = await group_offsets(d)
            return all(state["offsets"].get(f"{tp.topic}/{tp.partition}", 0) >= end or end == 0
                       for tp, end in ends.items())

        for _ in range(300):
            if await caught_up():
                return state["offsets"]
            await asyncio.sleep(0.1)
        raise AssertionError(f"the live group did not catch up: {state}")
    finally:
        await consumer.stop()


async def answered(chat: Chat, worker, agent_id: str, count: int, prefix: str) -> list[dict]:
    await chat.profile(priced(agent_id))
    await wait_until(profiles_applied(worker, {agent_id: 1}), 60, "profile applied")
    msgs = [message(agent_id, room_id=f"room-{i}", content=f"{prefix} {i}") for i in range(count)]
    for msg in msgs:
        await chat.message(msg)
    replies = await chat.wait_replies([m["messageId"] for m in msgs])
    assert all(replies[m["messageId"]][0]["status"] == "ok" for m in msgs), replies
    return msgs


async def test_shadow_compare_and_reprice_write_their_own_topics_and_leave_the_live_group_alone(
        chat, gateway, fake, tmp_path):
    d, worker = gateway.deployment, gateway.workers[0]
    agent_id, start = f"shadowed-{uuid.uuid4().hex[:6]}", moment()
    msgs = await answered(chat, worker, agent_id, MESSAGES, "shadow me")
    ids = {m["messageId"] for m in msgs}
    await chat.wait_for(lambda: all(chat.billing_of(m) for m in ids), what="live billing")
    before = await settled(d)
    live_replies = len(await values(d, d.topic("replies")))

    dry = cli(d, tmp_path, "replay", "shadow", "--from", start, "--agent", agent_id, "--provider", "echo",
              "--model", "echo-2")
    assert f"{MESSAGES} messages would be sent to echo/echo-2" in dry and "partition 0: offsets" in dry, dry
    run = f"shadow-{uuid.uuid4().hex[:6]}"
    done = cli(d, tmp_path, "replay", "shadow", "--from", start, "--agent", agent_id, "--provider", "echo",
               "--model", "echo-2", "--execute", "--run", run)
    print(done)
    shadow_replies = await values(d, f"{d.topic('replies')}.shadow.{run}")
    shadow_bills = await values(d, f"{d.topic('billing')}.shadow.{run}")
    assert {r["message_id"] for r in shadow_replies} == ids and len(shadow_replies) == MESSAGES
    assert all(r["status"] == "ok" and (r["provider"], r["model"]) == ("echo", "echo-2") for r in shadow_replies)
    assert all(r["content"].startswith("shadow me") for r in shadow_replies)  # echo answers the message itself
    assert {b["message_id"] for b in shadow_bills} == ids and len(shadow_bills) == MESSAGES
    assert len(await values(d, d.topic("replies"))) == live_replies, "the shadow wrote to the live reply topic"

    table = cli(d, tmp_path, "replay", "compare", run)
    print(table)
    assert "original" in table and "shadow (echo/echo-2)" in table and "latency p95 ms" in table
    side_by_side = json.loads(cli(d, tmp_path, "replay", "compare", run, "--format", "json"))
    assert side_by_side["original"]["messages"] == side_by_side["shadow"]["messages"] == MESSAGES
    assert side_by_side["original"]["statuses"] == side_by_side["shadow"]["statuses"] == {"ok": MESSAGES}
    assert Decimal(side_by_side["original"]["total_cost_usd"]) > 0 == Decimal(side_by_side["shadow"]["total_cost_usd"])

    prices = tmp_path / "prices-test.json"
    new_table = PriceTable(f"test-{run}", {"openai": {"gpt-4o-mini": {"input": "1.00", "cached_input": "0.50",
                                                                      "output": "2.00"}}})
    prices.write_text(json.dumps({"version": new_table.version, "models": new_table.models}))
    reprice_run = f"reprice-{uuid.uuid4().hex[:6]}"
    summary = cli(d, tmp_path, "replay", "reprice", "--prices", str(prices), "--from", start, "--agent", agent_id,
                  "--execute", "--run", reprice_run)
    print(summary)
    live = {b["event_id"]: b for b in await values(d, d.topic("billing")) if b["message_id"] in ids}
    repriced = await values(d, f"{d.topic('billing')}.reprice.{reprice_run}")
    assert {b["event_id"] for b in repriced} == set(live) and len(live) == MESSAGES
    for bill in repriced:
        expected = new_table.cost("openai", "gpt-4o-mini", bill["input_tokens"], bill["output_tokens"],
                                  bill["cached_input_tokens"])
        assert (Decimal(bill["cost_usd"]), bill["price_version"]) == (expected, new_table.version)
    old = sum(Decimal(b["cost_usd"]) for b in live.values())
    new = sum(Decimal(b["cost_usd"]) for b in repriced)
    row = next(line.split() for line in summary.splitlines() if line.startswith("openai/gpt-4o-mini"))
    assert row == ["openai/gpt-4o-mini", str(MESSAGES), f"{old:f}", f"{new:f}", f"{new - old:f}"], summary

    after, members = await group_offsets(d)
    assert after == before, "a replay moved the live group's committed offsets"
    assert members == 1, "a replay joined the live group"


async def test_a_shadow_stops_before_the_call_that_would_pass_its_cap_and_resumes_from_there(
        chat, gateway, tmp_path):
    d, worker = gateway.deployment, gateway.workers[0]
    agent_id, start = f"capped-{uuid.uuid4().hex[:6]}", moment()
    msgs = await answered(chat, worker, agent_id, 3, "cap")
    # each call is estimated at ceil(chars / 4) of the prompt plus all of maxTokens (64) at gpt-4o-mini's
    # price: $0.000039 for these prompts; the cap admits one (the second would be checked while it is in flight)
    run = f"capped-{uuid.uuid4().hex[:6]}"
    shadow = ("replay", "shadow", "--from", start, "--agent", agent_id, "--provider", "openai", "--model",
              "gpt-4o-mini", "--execute", "--run", run)
    stopped = cli(d, tmp_path, *shadow, "--max-cost-usd", "0.00005")
    print(stopped)
    assert "STOPPED: spend cap $0.00005 reached before message" in stopped, stopped
    replies_topic = f"{d.topic('replies')}.shadow.{run}"
    assert len(await values(d, replies_topic)) == 1
    resumed = cli(d, tmp_path, *shadow, "--max-cost-usd", "1")
    assert "resuming from the offsets saved" in resumed and "STOPPED" not in resumed, resumed
    written = [r["message_id"] for r in await values(d, replies_topic)]
    assert sorted(written) == sorted(m["messageId"] for m in msgs), "a message skipped or answered twice"


async def outage(chat: Chat, fake: FakeOpenAI, agent_id: str, count: int, prefix: str) -> list[dict]:
    """Messages sent while the provider is down: each gets an error reply and a dead letter."""
    fake.down = True
    try:
        msgs = [message(agent_id, room_id=f"room-{i}", content=f"{prefix} {i}") for i in range(count)]
        for msg in msgs:
            await chat.message(msg)
        replies = await chat.wait_replies([m["messageId"] for m in msgs])
        await chat.wait_for(lambda: all(chat.dlq_of(m["messageId"]) for m in msgs), what="dead letters")
    finally:
        fake.down = False
    assert all(replies[m["messageId"]][0]["error"]["code"] == "provider_unavailable" for m in msgs), replies
    return msgs


def oks(chat: Chat, message_id: str) -> int:
    return sum(1 for r in chat.replies_by_message().get(message_id, ()) if r["status"] == "ok")


async def test_reprocess_after_an_outage_answers_each_failed_message_once(chat, gateway, fake, tmp_path):
    server, _ = fake
    d, worker = gateway.deployment, gateway.workers[0]
    agent_id, start = f"outage-{uuid.uuid4().hex[:6]}", moment()
    earlier = await answered(chat, worker, agent_id, 3, "answered before the outage")
    failed = await outage(chat, server, agent_id, 4, "lost in the outage")
    await settled(d)

    dry = cli(d, tmp_path, "replay", "reprocess", "--from", start, "--agent", agent_id)
    print(dry)
    assert "4 messages would be sent again" in dry and "left out: 3 answered" in dry, dry
    run = f"reprocess-{uuid.uuid4().hex[:6]}"
    done = cli(d, tmp_path, "replay", "reprocess", "--from", start, "--agent", agent_id, "--execute", "--run", run)
    print(done)
    assert "4 messages sent again" in done, done
    await chat.wait_for(lambda: all(oks(chat, m["messageId"]) for m in failed), what="ok replies after the replay")
    await settled(d)  # the workers are done: a second answer would be there by now

    assert [oks(chat, m["messageId"]) for m in failed] == [1] * 4
    assert [len(chat.replies_by_message()[m["messageId"]]) for m in earlier] == [1] * 3, "an answered one was re-sent"
    asked = [m["messages"][-1]["content"] for m in server.requests]
    assert [asked.count(m["content"]) for m in earlier] == [1] * 3, "an answered message reached the provider again"
    assert [asked.count(m["content"]) for m in failed] == [2] * 4  # once down, once after the replay
    bills = [b["event_id"] for _, b in chat.seen["billing"] if b["agent_id"] == agent_id]
    assert len(bills) == len(set(bills)) == 7

    again = cli(d, tmp_path, "replay", "reprocess", "--from", start, "--agent", agent_id, "--execute", "--run", run)
    assert "resuming from the offsets saved" in again and "0 messages sent again" in again, again


async def test_dlq_replay_sends_an_outages_dead_letters_back_and_says_which(chat, gateway, fake, tmp_path):
    server, _ = fake
    d, worker = gateway.deployment, gateway.workers[0]
    agent_id, since = f"dead-{uuid.uuid4().hex[:6]}", moment()
    await chat.profile(priced(agent_id))
    await wait_until(profiles_applied(worker, {agent_id: 1}), 60, "profile applied")
    failed = await outage(chat, server, agent_id, 2, "dead lettered")
    sources = {m["messageId"]: chat.dlq_of(m["messageId"])[0] for m in failed}

    args = ("dlq", "replay", "--code", "provider_unavailable", "--since", since, "--agent", agent_id)
    dry = cli(d, tmp_path, *args)
    assert "0 of 2 dead letters" not in dry and "2 of 2 dead letters with code provider_unavailable would be" in dry
    done = cli(d, tmp_path, *args, "--execute")
    print(done)
    for message_id, dead in sources.items():
        where = f"{dead['source_topic']}/{dead['source_partition']}/{dead['source_offset']}"
        assert f"{message_id}  {where}  sent" in done, done
    await chat.wait_for(lambda: all(oks(chat, m) for m in sources), what="ok replies after the DLQ replay")
    await settled(d)
    assert [oks(chat, m) for m in sources] == [1, 1]
    again = cli(d, tmp_path, *args, "--execute")
    assert "0 of 2 dead letters" in again and again.count("left out: answered meanwhile") == 2, again
