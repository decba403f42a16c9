"""Conversations through Kafka, one worker and every provider: the earlier turns reach each provider in its
own wire form, the token budget drops the oldest, tool calls go round trip (streamed and not), JSON
replies are valid, repaired or failed, and a repeated request is answered from the cache.

The fakes record every request body and refuse a wrong tool wire form with a 400 (as the real APIs do),
so an `ok` reply after tool results also proves the exchange was well formed."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.fakes.all_providers import MODEL, PROVIDERS, provider_env, running_fakes
from tests.integration.conftest import make_cluster
from tests.integration.harness import Chat, message, profile

WEATHER = {"type": "function", "function": {"name": "weather", "description": "the weather in a city",
                                            "parameters": {"type": "object",
                                                           "properties": {"city": {"type": "string"}}}}}


@pytest.fixture(scope="module")
def fakes():
    with running_fakes() as running:
        yield running


@pytest.fixture(scope="module")
def gateway(kafka, tmp_path_factory, fakes):
    cluster = make_cluster(kafka, tmp_path_factory.mktemp("conversations"), **provider_env(fakes[1]),
                           GATEWAY_RETRY_BASE_DELAY_SECONDS="0.05")
    cluster.worker().wait_ready()
    yield cluster
    cluster.stop()


@pytest.fixture
async def chat(gateway):
    async with Chat(gateway.deployment) as client:
        yield client


def agent(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


def text_of(content: Any) -> str:
    """A message's text in any of the wire forms: a string, or a list of text / tool_result / document
    blocks."""
    if isinstance(content, str):
        return content
    parts = []
    for block in content or ():
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            parts.append(block["text"])
        elif block.get("type") == "tool_result":
            parts.append(text_of(block.get("content")))
        elif block.get("type") == "document":
            data = block["document"].get("data")
            parts.append(data if isinstance(data, str) else json.dumps(data))
    return " ".join(parts)


def flat(body: dict) -> list[tuple[str, str]]:
    """(role, text) of every message of a request body, system prompt excluded."""
    return [(m["role"], text_of(m.get("content"))) for m in body["messages"] if m["role"] != "system"]


def request_for(server, text: str) -> dict:
    """The last request whose newest message says `text`."""
    found = [body for body in server.requests if flat(body) and text in flat(body)[-1][1]]
    assert found, f"no request ending with {text!r}"
    return found[-1]


async def test_three_turns_every_provider_receives_the_earlier_turns_in_its_wire_form(chat, fakes):
    servers, _ = fakes
    sent = {}
    for name in PROVIDERS:
        agent_id = agent(f"{name}-memory")
        await chat.profile(profile(agent_id, provider=name, model=MODEL[name], systemPrompt="be brief",
                                   context={"maxTurns": 10, "maxTokens": 4000}))
        sent[name] = [message(agent_id, content=f"{word} {name} {uuid.uuid4().hex[:6]}")
                      for word in ("first", "second", "third")]
        for msg in sent[name]:  # all at once: the conversation's turn keeps them in order
            await chat.message(msg)
    replies = await chat.wait_replies([m["messageId"] for msgs in sent.values() for m in msgs])
    for name, msgs in sent.items():
        answers = [replies[m["messageId"]][0] for m in msgs]
        assert all(a["status"] == "ok" for a in answers), [(name, a["status"], a.get("error")) for a in answers]
        seen = flat(request_for(servers[name], msgs[2]["content"]))
        expected = [("user", msgs[0]["content"]), ("assistant", answers[0]["content"]),
                    ("user", msgs[1]["content"]), ("assistant", answers[1]["content"]),
                    ("user", msgs[2]["content"])]
        assert seen == expected, (name, seen)
        # The reported usage grew with the context: the third call's prompt carried all of it.
        assert answers[2]["usage"]["input_tokens"] > answers[0]["usage"]["input_tokens"]


async def test_the_token_budget_drops_the_oldest_turns(chat, fakes, gateway):
    servers, _ = fakes
    agent_id = agent("budget")
    await chat.profile(profile(agent_id, provider="openai", model=MODEL["openai"],
                               context={"maxTurns": 10, "maxTokens": 30}))
    msgs = [message(agent_id, content=f"turn {i} " + "word " * 12) for i in range(4)]
    for msg in msgs:
        await chat.message(msg)
    await chat.wait_replies([m["messageId"] for m in msgs])
    seen = [text for role, text in flat(request_for(servers["openai"], msgs[3]["content"])) if role == "user"]
    assert seen[-1] == msgs[3]["content"] and msgs[2]["content"] in seen
    assert msgs[0]["content"] not in seen  # the oldest went first
    status, body = gateway.workers[0].get(f"/agents/{agent_id}/conversations/room-1")
    assert status == 200 and [t["id"] for t in body["turns"]] == [m["messageId"] for m in msgs]
    assert all(t["tokens"] > 0 for t in body["turns"]) and "user" not in body["turns"][0]  # no content
    status, full = gateway.workers[0].get(f"/agents/{agent_id}/conversations/room-1?content=true")
    assert full["turns"][0]["user"] == msgs[0]["content"] and full["turns"][0]["reply"]


@pytest.mark.parametrize("name", PROVIDERS)
async def test_tool_call_results_and_final_answer_streamed_and_not(chat, fakes, name):
    servers, _ = fakes
    for stream in (False, True):
        agent_id = agent(f"{name}-tools")
        await chat.profile(profile(agent_id, provider=name, model=MODEL[name], tools=[WEATHER], stream=stream))
        asked = message(agent_id, content="TOOL: what is the weather in Paris?")
        await chat.message(asked)
        reply = (await chat.wait_replies([asked["messageId"]]))[asked["messageId"]][0]
        assert reply["status"] == "ok" and reply["finish_reason"] == "tool_calls", reply
        call = reply["tool_calls"][0]
        assert call["name"] == "weather" and json.loads(call["arguments"]) == {"city": "Paris"}
        results = {"messageId": f"t-{uuid.uuid4()}", "replyTo": asked["messageId"], "agentId": agent_id,
                   "roomId": "room-1", "results": [{"toolCallId": call["id"], "content": f"sunny {name}"}]}
        await chat.tool_results(results)
        final = (await chat.wait_replies([results["messageId"]]))[results["messageId"]][0]
        assert final["status"] == "ok", final
        assert final["reply_to"] == asked["messageId"] and final["content"].endswith(f"sunny {name}")
        seen = flat(request_for(servers[name], f"sunny {name}"))
        assert seen[0] == ("user", asked["content"]) and f"sunny {name}" in seen[-1][1]
        await chat.wait_for(lambda: chat.billing_of(results["messageId"]), what="billing of the tool answer")
        if stream:
            await chat.wait_for(lambda: any(c["final"] for _, c in chat.chunks_of(results["messageId"])),
                                what="the final chunk")
            finished = next(c["stream_id"] for _, c in chat.chunks_of(results["messageId"]) if c["final"])
            deltas = [c["delta"] for _, c in chat.chunks_of(results["messageId"]) if c["stream_id"] == finished]
            assert "".join(deltas) == final["content"]
        again = {**results, "messageId": f"t-{uuid.uuid4()}"}
        await chat.tool_results(again)
        refused = (await chat.wait_replies([again["messageId"]]))[again["messageId"]][0]
        assert refused["status"] == "error" and refused["error"]["code"] == "tool_call_answered"
        await chat.wait_for(lambda: chat.dlq_of(again["messageId"]), what="the DLQ record")


async def test_results_for_an_unknown_tool_call_get_an_error_and_a_dead_letter(chat):
    agent_id = agent("unknown-tool")
    await chat.profile(profile(agent_id, provider="openai", model=MODEL["openai"], tools=[WEATHER]))
    results = {"messageId": f"t-{uuid.uuid4()}", "replyTo": "never-sent", "agentId": agent_id, "roomId": "room-1",
               "results": [{"toolCallId": "call_nope", "content": "x"}]}
    await chat.tool_results(results)
    reply = (await chat.wait_replies([results["messageId"]]))[results["messageId"]][0]
    assert reply["status"] == "error" and reply["error"]["code"] == "unknown_tool_call"
    await chat.wait_for(lambda: chat.dlq_of(results["messageId"]), what="the DLQ record")
    assert chat.dlq_of(results["messageId"])[0]["error_code"] == "unknown_tool_call"


SCHEMA = {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "integer"}}}


@pytest.mark.parametrize("name", ["openai", "anthropic", "cohere"])
async def test_json_replies_valid_repaired_and_failed(chat, fakes, name):
    servers, _ = fakes
    agent_id = agent(f"{name}-json")
    await chat.profile(profile(agent_id, provider=name, model=MODEL[name],
                               responseFormat={"type": "json", "schema": SCHEMA}))
    valid = message(agent_id, content='REPLY:{"answer": 1}')
    repaired = message(agent_id, content='REPLY:{"answer": "one"}||{"answer": 2}')
    failed = message(agent_id, content="REPLY:no json here||still none")
    for msg in (valid, repaired, failed):
        await chat.message(msg)
    replies = await chat.wait_replies([m["messageId"] for m in (valid, repaired, failed)])
    ok = replies[valid["messageId"]][0]
    assert ok["status"] == "ok" and json.loads(ok["content"]) == {"answer": 1} and ok["attempts"] == 1
    fixed = replies[repaired["messageId"]][0]
    assert fixed["status"] == "ok" and json.loads(fixed["content"]) == {"answer": 2}, fixed
    assert [s["action"] for s in fixed["stages"]] == ["regenerate"] and fixed["attempts"] == 2
    bad = replies[failed["messageId"]][0]
    assert bad["status"] == "error" and bad["error"]["code"] == "invalid_response_format"
    await chat.wait_for(lambda: chat.dlq_of(failed["messageId"]) and len(chat.billing_of(repaired["messageId"])) == 2
                        and len(chat.billing_of(failed["messageId"])) == 2, what="DLQ record and billing")
    first = request_for(servers[name], repaired["content"])
    if name == "openai":  # the native JSON mode, with the schema
        assert first["response_format"]["json_schema"]["schema"] == SCHEMA
    if name == "cohere":
        assert first["response_format"]["type"] == "json_object"


async def test_a_repeated_request_is_answered_from_the_cache_and_billed_zero(chat, fakes, gateway):
    servers, _ = fakes
    agent_id = agent("cache")
    await chat.profile(profile(agent_id, provider="openai", model=MODEL["openai"], cache={"ttlSeconds": 300}))
    content = f"what is a cache? {uuid.uuid4().hex[:6]}"
    first = message(agent_id, content=content)
    await chat.message(first)
    await chat.wait_replies([first["messageId"]])
    second = message(agent_id, content=content)
    await chat.message(second)
    replies = await chat.wait_replies([second["messageId"]])
    hit, miss = replies[second["messageId"]][0], replies[first["messageId"]][0]
    assert hit["cache_hit"] and not miss["cache_hit"] and hit["content"] == miss["content"]
    assert hit["attempts"] == 0 and hit["provider"] == "openai"
    assert sum(1 for body in servers["openai"].requests if content in json.dumps(body)) == 1
    await chat.wait_for(lambda: chat.billing_of(second["messageId"]), what="the hit's billing")
    bill, paid = chat.billing_of(second["messageId"])[0], chat.billing_of(first["messageId"])[0]
    assert bill["cache_hit"] and bill["cost_usd"] == "0" and bill["input_tokens"] == 0
    assert bill["saved_input_tokens"] == paid["input_tokens"] and bill["saved_cost_usd"] == paid["cost_usd"]
    status, usage = gateway.workers[0].get(f"/agents/{agent_id}/usage")
    assert status == 200 and usage["cache"]["hits"] == 1 and usage["cache"]["lookups"] == 2
    status, health = gateway.workers[0].get("/health")
    assert health["cache"]["hits"] >= 1 and "cache" in health["stages"]


async def test_markdown_is_normalised_and_long_replies_are_cut_at_a_sentence(chat):
    markdown, short = agent("markdown"), agent("short")
    await chat.profile(profile(markdown, responseFormat="markdown"))  # echo answers with the message
    await chat.profile(profile(short, maxReplyChars=40))
    fence = message(markdown, content="Here is code:\n\n```python\nprint('hi')")
    long = message(short, content="The first sentence is short. The second one runs well past the limit.")
    for msg in (fence, long):
        await chat.message(msg)
    replies = await chat.wait_replies([fence["messageId"], long["messageId"]])
    closed = replies[fence["messageId"]][0]
    assert closed["status"] == "ok" and closed["content"].rstrip().endswith("```")
    assert closed["content"].count("```") == 2 and "print('hi')" in closed["content"]
    cut = replies[long["messageId"]][0]
    assert cut["content"] == "The first sentence is short." and cut["truncated"] is True


@pytest.mark.parametrize("name", PROVIDERS)
async def test_ranked_answers_publish_the_best_candidate_and_bill_every_one(chat, fakes, name):
    servers, _ = fakes
    agent_id = agent(f"rank-{name}")
    await chat.profile(profile(agent_id, provider=name, model=MODEL[name], ranking={"candidates": 3}))
    clean = f"Your order {uuid.uuid4().hex[:6]} ships today."
    ask = message(agent_id, content=f"CHOICES:I'm sorry, but I can't help with that.##What a shit idea.##{clean}")
    await chat.message(ask)
    reply = (await chat.wait_replies([ask["messageId"]]))[ask["messageId"]][0]
    assert reply["status"] == "ok" and reply["content"] == clean, reply
    ranked = reply["ranking"]
    assert ranked["candidates"] == 3 and ranked["failed"][ranked["chosen"]] == []
    assert sorted(map(tuple, ranked["failed"])) == [(), ("refusal",), ("wordlist",)]
    calls = [b for b in servers[name].requests if clean in json.dumps(b)]
    one_call = name in ("openai", "azure", "local")  # Chat Completions' own `n`; the others: parallel calls
    assert len(calls) == (1 if one_call else 3) and (calls[0].get("n") == 3) == one_call
    await chat.wait_for(lambda: len(chat.billing_of(ask["messageId"])) == len(calls), what="one bill per call")


async def test_turns_out_of_the_context_budget_are_summarized_in_their_place(chat, fakes):
    from gateway_app.pipeline import summaries

    server = fakes[0]["openai"]
    agent_id = agent("summary")
    await chat.profile(profile(agent_id, provider="openai", model=MODEL["openai"], context={"maxTurns": 2},
                               postProcessing=["summarize"]))
    said = [f"my name is Ada {agent_id}", "I ordered a blue kettle", "it has not arrived", "what did I order?",
            "and what is my name?"]
    asks = []
    for text in said:  # one at a time: each prompt is built from the turns before it
        ask = message(agent_id, room_id=f"room-{agent_id}", content=text)
        await chat.message(ask)
        assert (await chat.wait_replies([ask["messageId"]]))[ask["messageId"]][0]["status"] == "ok"
        asks.append(ask)
    folds = [b for b in server.requests if b["messages"][0]["content"] == summaries.INSTRUCTION
             and agent_id in json.dumps(b)]
    # The 4th message left out the 1st turn: one summary call; the 5th left out the 2nd too: one more,
    # which folds the 2nd turn into the summary so far (the fake's summary quotes what it was given).
    assert len(folds) == 2, [flat(b) for b in folds]
    assert "Summary so far:" not in folds[0]["messages"][1]["content"]
    assert "Summary so far:" in folds[1]["messages"][1]["content"] and "blue kettle" in folds[1]["messages"][1]["content"]
    last = request_for(server, "and what is my name?")
    system = last["messages"][0]["content"]
    assert system.startswith(summaries.PROMPT_HEADER) and "my name is Ada" in system and "blue kettle" in system
    assert [text for role, text in flat(last) if role == "user"] == ["it has not arrived", "what did I order?",
                                                                     "and what is my name?"]
    await chat.wait_for(lambda: len(chat.billing_of(asks[4]["messageId"])) == 2, what="the answer's and the summary's bills")
    assert len({b["event_id"] for b in chat.billing_of(asks[4]["messageId"])}) == 2


async def test_a_judge_picks_among_candidates_the_checks_cannot_tell_apart(chat, fakes):
    from gateway_app.pipeline.ranking import JUDGE_INSTRUCTION

    server = fakes[0]["openai"]
    agent_id = agent("judged")
    await chat.profile(profile(agent_id, provider="openai", model=MODEL["openai"], ranking={
        "candidates": 3, "judge": {"provider": "openai", "model": "gpt-4o-mini"}}))
    marker = uuid.uuid4().hex[:6]
    ask = message(agent_id, content=f"CHOICES:It ships today ({marker}).##Shipping today ({marker}).##Today ({marker}).")
    await chat.message(ask)
    reply = (await chat.wait_replies([ask["messageId"]]))[ask["messageId"]][0]
    judged = [b for b in server.requests if b["messages"][0]["content"] == JUDGE_INSTRUCTION and marker in json.dumps(b)]
    assert len(judged) == 1 and all(f"Candidate {n}:" in judged[0]["messages"][1]["content"] for n in (1, 2, 3))
    # The fake judge echoes what it was shown, so the first number it says is 1: the first candidate.
    assert reply["ranking"]["reason"].startswith("the judge (openai/gpt-4o-mini) chose candidate 0")
    assert reply["content"] == judged[0]["messages"][1]["content"].split("\n")[1]
    await chat.wait_for(lambda: len(chat.billing_of(ask["messageId"])) == 2, what="the answers' and the judge's bills")
