"""Every provider through the gateway on a real broker, streamed and not, and the fault matrix: each
fault injected once (then the provider answers) and permanently; the breaker and fallbacks; a 429 storm
on one provider beside a healthy one. The matrix's figures (attempts, time, outcome) are printed."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from tests.fakes.all_providers import MODEL, PROVIDERS, provider_env, running_fakes
from tests.integration.conftest import make_cluster
from tests.integration.harness import Chat, message, profile, profiles_applied, wait_until

PREFIX = {"openai": "fake-openai says:", "azure": "fake-azure says:", "local": "fake-openai says:",
          "anthropic": "fake-anthropic says:", "cohere": "fake-cohere says:"}
ATTEMPT_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def fakes():
    with running_fakes() as running:
        yield running


@pytest.fixture(scope="module")
def gateway(kafka, tmp_path_factory, fakes):
    _, threads = fakes
    env = {
        **provider_env(threads),
        "GATEWAY_RETRY_MAX_ATTEMPTS": "3", "GATEWAY_RETRY_BASE_DELAY_SECONDS": "0.05",
        "GATEWAY_CALL_TIMEOUT_SECONDS": str(ATTEMPT_TIMEOUT), "GATEWAY_FIRST_TOKEN_TIMEOUT_SECONDS": "2",
        "GATEWAY_BREAKER_CONSECUTIVE_FAILURES": "3", "GATEWAY_BREAKER_OPEN_SECONDS": "120",
    }
    cluster = make_cluster(kafka, tmp_path_factory.mktemp("providers"), **env)
    cluster.worker().wait_ready()
    yield cluster
    cluster.stop()


@pytest.fixture
async def chat(gateway):
    async with Chat(gateway.deployment) as client:
        yield client


def final_stream(chunks: list[tuple[float, dict]]) -> list[dict]:
    """The chunks of the stream that ended with a final chunk, in arrival order."""
    finished = next(c["stream_id"] for _, c in chunks if c["final"])
    return [c for _, c in chunks if c["stream_id"] == finished]


def agent(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


async def test_every_provider_answers_streamed_and_not(chat):
    sent = {}
    for name in PROVIDERS:
        for stream in (False, True):
            agent_id = agent(f"{name}-{'stream' if stream else 'plain'}")
            await chat.profile(profile(agent_id, provider=name, model=MODEL[name], systemPrompt="be brief",
                                       stream=stream))
            msg = message(agent_id, content=f"tell me about {name} please")
            await chat.message(msg)
            sent[(name, stream)] = msg
    replies = await chat.wait_replies([m["messageId"] for m in sent.values()], timeout=60)
    # Chunks are sent before the reply, but on another topic: a reader may see the reply first.
    streamed = [m["messageId"] for (_, stream), m in sent.items() if stream]
    await chat.wait_for(lambda: all(any(c["final"] for _, c in chat.chunks_of(m)) for m in streamed),
                        what="final chunks")
    for (name, stream), msg in sent.items():
        reply = replies[msg["messageId"]][0]
        assert reply["status"] == "ok", reply
        assert reply["content"] == f"{PREFIX[name]} tell me about {name} please"
        assert reply["provider"] == name and reply["model"] == MODEL[name] and reply["fallback_index"] == 0
        assert reply["provider_request_id"] and reply["finish_reason"] == "stop"
        plain = replies[sent[(name, False)]["messageId"]][0]
        assert reply["usage"] == plain["usage"] and reply["usage"]["input_tokens"] == 7  # "be brief" + 5 words
        chunks = chat.chunks_of(msg["messageId"])
        if not stream:
            assert chunks == []
            continue
        # A cold worker's first stream may miss the first-token timeout and be retried: check the
        # stream that finished (every attempt streams under its own stream_id).
        ordered = final_stream(chunks)
        assert [c["seq"] for c in ordered] == list(range(len(ordered))), "chunks out of order"
        assert ordered[-1]["final"] and len(ordered) >= 5 and ordered[-1]["attempt"] == reply["attempts"]
        assert "".join(c["delta"] for c in ordered) == reply["content"]
    await chat.wait_for(lambda: all(chat.billing_of(m["messageId"]) for m in sent.values()), what="billing")
    for (name, stream), msg in sent.items():
        bill = chat.billing_of(msg["messageId"])[0]
        assert bill["provider"] == name and bill["input_tokens"] == 7 and bill["fallback_index"] == 0
    costs = {(n, s): chat.billing_of(m["messageId"])[0]["cost_usd"] for (n, s), m in sent.items()}
    assert costs[("anthropic", True)] == costs[("anthropic", False)] != "0.00000000"


# fault -> (stream?, outcome of one injected fault followed by a normal answer)
ONCE = ["429", "429-bare", "500", "502", "503", "slow:300", "hang", "reset", "malformed", "error200", "hollow", "cut"]
STREAM_ONCE = ["cut", "truncate", "error200", "hang"]
PERMANENT = {"500": "provider_unavailable", "429": "provider_rate_limited", "400": "provider_rejected",
             "401": "provider_auth_failed", "hang": "provider_timeout", "malformed": "provider_bad_response"}


def expected_attempts(kind: str, fault: str) -> int:
    if kind == "once":
        return 1 if fault.startswith("slow") else 2
    return 1 if fault in ("400", "401") else 3  # GATEWAY_RETRY_MAX_ATTEMPTS


async def test_fault_matrix(chat, capsys):
    cases = []  # (provider, stream, fault, kind, agent id, message)
    for name in ["openai", "azure", "anthropic", "cohere"]:
        for stream, faults in ((False, ONCE), (True, STREAM_ONCE)):
            cases += [(name, stream, fault, "once") for fault in faults]
        cases += [(name, False, fault, "permanent") for fault in PERMANENT]
    sent = []
    for index, (name, stream, fault, kind) in enumerate(cases):
        # Each case is its own agent and endpoint (model), so breakers and pauses do not interfere.
        agent_id = agent(f"fm{index}")
        await chat.profile(profile(agent_id, provider=name, model=f"{kind}-{fault}-{int(stream)}", stream=stream))
        content = f"FAULT:flaky:1:{fault} case {index}" if kind == "once" else f"FAULT:{fault} case {index}"
        sent.append(message(agent_id, content=content))
    for msg in sent:  # all at once: the cases run concurrently
        await chat.message(msg)
    replies = await chat.wait_replies([m["messageId"] for m in sent], timeout=90)
    rows = []
    for (name, stream, fault, kind), msg in zip(cases, sent):
        reply = replies[msg["messageId"]][0]
        outcome = reply["status"] if reply["status"] == "ok" else reply["error"]["code"]
        rows.append((name, "stream" if stream else "plain", f"{fault} {kind}", reply["attempts"], reply["latency_ms"],
                     outcome))
        if kind == "once":
            assert reply["status"] == "ok", (name, stream, fault, reply)
            assert reply["attempts"] == expected_attempts(kind, fault), (name, stream, fault, reply)
            assert reply["content"].endswith(msg["content"])
            if stream:  # the finished stream's chunks are the answer; the broken attempt's came first
                await chat.wait_for(lambda: any(c["final"] for _, c in chat.chunks_of(msg["messageId"])),
                                    what="final chunk")
                last = final_stream(chat.chunks_of(msg["messageId"]))
                assert "".join(c["delta"] for c in last) == reply["content"] and last[-1]["final"]
        else:
            assert reply["status"] == "error" and outcome == PERMANENT[fault], (name, fault, reply)
            assert reply["attempts"] == expected_attempts(kind, fault), (name, fault, reply)
    await chat.wait_for(lambda: all(chat.dlq_of(m["messageId"]) for m, c in zip(sent, cases) if c[3] == "permanent"),
                        what="DLQ records of the permanent failures")
    await chat.wait_for(lambda: all(chat.billing_of(m["messageId"]) for m, c in zip(sent, cases) if c[3] == "once"),
                        what="billing of the answered messages")
    # A negative check: for a while no billing of a failed message, nor a second one of an answered one, comes.
    await asyncio.sleep(1.0)
    for (name, stream, fault, kind), msg in zip(cases, sent):
        if kind == "permanent":
            dead = chat.dlq_of(msg["messageId"])[0]
            assert dead["attempts"] == expected_attempts(kind, fault) == len(dead["attempt_history"])
            assert dead["error_code"] == PERMANENT[fault] and dead["value_b64"]
            assert chat.billing_of(msg["messageId"]) == [], "a failed message was billed"
        else:
            assert len(chat.billing_of(msg["messageId"])) == 1
    with capsys.disabled():
        print("\nfault matrix (each case alone on its endpoint; attempt timeout 2 s, first token 2 s):")
        print(f"{'provider':10} {'mode':7} {'fault':22} {'attempts':>8} {'ms':>6}  outcome")
        for row in rows:
            print(f"{row[0]:10} {row[1]:7} {row[2]:22} {row[3]:>8} {row[4]:>6}  {row[5]}")


async def test_breaker_opens_and_the_fallback_answers(chat, gateway, fakes, capsys):
    servers, _ = fakes
    agent_id = agent("brk")
    await chat.profile(profile(agent_id, provider="openai", model="breaker-model",
                               fallbacks=[{"provider": "anthropic", "model": "claude-haiku-4-5"}]))
    msgs = [message(agent_id, content=f"FAULT@openai:503 number {i}") for i in range(6)]
    for msg in msgs:  # one room: answered one after the other
        await chat.message(msg)
    replies = await chat.wait_replies([m["messageId"] for m in msgs], timeout=60)
    answered = [replies[m["messageId"]][0] for m in msgs]
    assert all(r["status"] == "ok" and r["provider"] == "anthropic" and r["fallback_index"] == 1 for r in answered)
    assert answered[0]["attempts"] == 4  # three 503s opened the breaker, then the fallback
    assert [r["attempts"] for r in answered[1:]] == [1] * 5  # breaker open: straight to the fallback
    assert servers["openai"].count("FAULT@openai:503 number") == 3
    await chat.wait_for(lambda: all(chat.billing_of(m["messageId"]) for m in msgs), what="billing")
    bill = chat.billing_of(msgs[0]["messageId"])[0]
    assert bill["provider"] == "anthropic" and bill["fallback_index"] == 1
    status, body = gateway.workers[0].get("/providers")
    endpoint = next(e for e in body["endpoints"] if e["model"] == "breaker-model")
    assert status == 200 and endpoint["breaker"]["state"] == "open" and endpoint["failures"] == 3
    with capsys.disabled():
        print(f"\nbreaker: attempts per message {[r['attempts'] for r in answered]}, "
              f"latency ms {[r['latency_ms'] for r in answered]}, primary requests 3, all answered by the fallback")


async def test_429_storm_on_one_provider_does_not_delay_an_agent_on_another(chat, gateway, fakes, capsys):
    servers, _ = fakes
    stormy, calm = agent("storm"), agent("calm")
    while gateway.deployment.partition_of(calm) != gateway.deployment.partition_of(stormy):
        calm = agent("calm")  # same partition: the same worker loop serves both
    await chat.profile(profile(stormy, provider="openai", model="storm-model"))
    await chat.profile(profile(calm, provider="cohere", model="command-r-08-2024"))
    await wait_until(profiles_applied(gateway.workers[0], {stormy: 1, calm: 1}), 30, "both profiles in force")
    storm = [message(stormy, room_id=f"r{i}", content=f"FAULT:429 storm {i}") for i in range(20)]
    quiet = [message(calm, room_id=f"r{i}", content=f"calm {i}") for i in range(10)]
    for msg in storm:
        await chat.message(msg)
    for msg in quiet:
        await chat.message(msg)
    replies = await chat.wait_replies([m["messageId"] for m in storm + quiet], timeout=60)
    storm_replies = [replies[m["messageId"]][0] for m in storm]
    quiet_replies = [replies[m["messageId"]][0] for m in quiet]
    assert all(r["status"] == "error" and r["error"]["code"] == "provider_rate_limited" for r in storm_replies)
    assert all(r["status"] == "ok" and r["attempts"] == 1 for r in quiet_replies)
    # Each storm message waited out the Retry-After pauses (2 x 1 s); the calm agent's never waited.
    assert min(r["latency_ms"] for r in storm_replies) >= 1800
    assert max(r["latency_ms"] for r in quiet_replies) < min(r["latency_ms"] for r in storm_replies)
    last_quiet = max(chat.arrival(m["messageId"]) for m in quiet)
    assert last_quiet < min(chat.arrival(m["messageId"]) for m in storm)
    # The pause held every storm message back together: 20 x 3 attempts at most, in 3 waves.
    assert servers["openai"].count("FAULT:429 storm") == 60
    with capsys.disabled():
        storm_ms = sorted(r["latency_ms"] for r in storm_replies)
        quiet_ms = sorted(r["latency_ms"] for r in quiet_replies)
        print(f"\n429 storm: 20 messages on the stormy endpoint, 60 requests, latency {storm_ms[0]}-{storm_ms[-1]} ms, "
              f"all provider_rate_limited; 10 on the calm one answered in {quiet_ms[0]}-{quiet_ms[-1]} ms")


async def test_tool_calls_reach_the_reply(chat):
    weather = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                                "parameters": {"type": "object",
                                                               "properties": {"city": {"type": "string"}}}}}
    sent = []
    for name in PROVIDERS:
        agent_id = agent(f"tools-{name}")
        await chat.profile(profile(agent_id, provider=name, model=MODEL[name], tools=[weather],
                                   stream=name in ("anthropic", "cohere")))
        sent.append((name, message(agent_id, content="TOOL: weather in Paris?")))
    bad_tools = agent("tools-bad")
    await chat.profile(profile(bad_tools, provider="openai", model="m", tools=[{"type": "function",
                                                                                "function": {"description": "x"}}]))
    for _, msg in sent:
        await chat.message(msg)
    replies = await chat.wait_replies([m["messageId"] for _, m in sent])
    for name, msg in sent:
        reply = replies[msg["messageId"]][0]
        assert reply["status"] == "ok" and reply["finish_reason"] == "tool_calls", (name, reply)
        assert [(c["name"], json.loads(c["arguments"])) for c in reply["tool_calls"]] == \
            [("get_weather", {"city": "Paris"})], (name, reply)
    await chat.wait_for(lambda: any(d.get("agent_id") == bad_tools and d["error_code"] == "invalid_event"
                                    for _, d in chat.seen["dlq"]), what="DLQ record of the bad tool profile")
