"""The pipeline with conversation memory, tool rounds and the response cache, over in-memory tables and a
recording provider: what each request carries, what each reply says, what the tables keep."""

from __future__ import annotations

import asyncio
import json
import random
from typing import AsyncIterator

from gateway_app.app import COUNTERS
from gateway_app.contract.events import AgentProfile, ConversationCleared, MessageCreated, ToolResults
from gateway_app.contract.internal import ConversationClearedRecord, MessageRecord, Origin, ToolResultsRecord
from gateway_app.pipeline.acker import AckSlot
from gateway_app.pipeline.caller import Caller
from gateway_app.pipeline.context import MessageContext
from gateway_app.pipeline.forgetting import Forgetting
from gateway_app.pipeline.pipeline import Pipeline
from gateway_app.pipeline.stage import Services
from gateway_app.pipeline.turns import Turns
from gateway_app.plugins.discovery import Plugins
from gateway_app.pricing.prices import current_table
from gateway_app.providers.base import ChatRequest, ChatResult, TokenUsage, ToolCall
from gateway_app.resilience.endpoints import Endpoints
from tests.unit.pipeline.conftest import TEST_SETTINGS, memory_stores
from tests.unit.pipeline.test_dispatcher import FakePublisher
from gateway_app.settings import Settings


class Recording:
    """Answers `said: <last message>`; asks for a tool when the last message starts with TOOL."""

    name = "recording"

    def __init__(self) -> None:
        self.requests: list[ChatRequest] = []

    def endpoint(self, request: ChatRequest) -> str:
        return "http://recording"

    async def complete(self, request: ChatRequest) -> ChatResult:
        self.requests.append(request)
        last = request.messages[-1].content
        calls = (ToolCall(f"call_{len(self.requests)}", "weather", "{}"),) if last.startswith("TOOL") else ()
        return ChatResult("" if calls else f"said: {last}", "tool_calls" if calls else "stop",
                          TokenUsage(40, 7), request_id=f"req-{len(self.requests)}", tool_calls=calls)

    async def stream(self, request: ChatRequest) -> AsyncIterator:
        yield await self.complete(request)

    async def aclose(self) -> None:
        pass


class OnePool:
    def __init__(self, provider) -> None:
        self.provider = provider

    def get(self, name: str):
        return self.provider

    async def load(self, name: str):
        return self.provider


def world(**profile_fields):
    settings = Settings(**TEST_SETTINGS)
    stores, tables = memory_stores(settings)
    provider, publisher = Recording(), FakePublisher()
    caller = Caller(settings, OnePool(provider), Endpoints(settings.breaker_policy(), settings.provider_caps()),
                    asyncio.Semaphore(4), random.Random(1))
    services = Services(settings, stores, Turns(), caller, publisher, current_table(), Plugins(),
                        dict.fromkeys(COUNTERS, 0))
    profile = AgentProfile(agent_id="a", version=1, provider="openai", model="gpt-4o-mini", system_prompt="be brief",
                           **profile_fields)
    return Pipeline(services), provider, publisher, tables, profile


ORIGIN = Origin(topic="in", partition=0, offset=1, received_at_ms=1_000)


async def say(pipeline: Pipeline, profile: AgentProfile, message_id: str, content: str, room: str = "r") -> dict:
    record = MessageRecord(agent_id="a", origin=ORIGIN, payload=MessageCreated(
        message_id=message_id, agent_id="a", room_id=room, content=content))
    return await run(pipeline, profile, record)


async def run(pipeline: Pipeline, profile: AgentProfile, record) -> dict:
    ctx = MessageContext(record, 0, AckSlot(None), profile=profile)
    ctx.agent_turn = pipeline.services.turns.agents.get("a").take()
    await pipeline.run(ctx)
    sent = pipeline.services.publisher.sent
    return json.loads(next(value for kind, value in reversed(sent) if kind == "reply"))


def tool_results(message_id: str, reply_to: str, *ids: str) -> ToolResultsRecord:
    return ToolResultsRecord(agent_id="a", origin=ORIGIN, payload=ToolResults(
        message_id=message_id, reply_to=reply_to, agent_id="a", room_id="r",
        results=[{"tool_call_id": i, "content": f"sunny {i}"} for i in ids]))


async def test_three_turns_the_third_request_carries_the_first_two():
    pipeline, provider, _, _, profile = world(context={"max_turns": 10})
    for index, text in enumerate(("one", "two", "three")):
        reply = await say(pipeline, profile, f"m{index}", text)
        assert reply["status"] == "ok"
    contents = [(m.role, m.content) for m in provider.requests[2].messages]
    assert contents == [("user", "one"), ("assistant", "said: one"), ("user", "two"), ("assistant", "said: two"),
                        ("user", "three")]
    turns = pipeline.services.stores.conversations.get("a", "r").turns
    assert [t.id for t in turns] == ["m0", "m1", "m2"] and all(t.tokens > 7 for t in turns)


async def test_a_failed_reply_adds_nothing_and_other_rooms_stay_apart():
    pipeline, provider, _, _, profile = world(context={"max_turns": 10})
    await say(pipeline, profile, "m1", "hello")
    await say(pipeline, profile, "x1", "elsewhere", room="other")
    broken = AgentProfile.model_validate({**profile.model_dump(), "response_format": {"type": "json"}})
    reply = await say(pipeline, broken, "m2", "not json")  # said: ... is not JSON, twice: error reply
    assert reply["status"] == "error" and reply["error"]["code"] == "invalid_response_format"
    await say(pipeline, profile, "m3", "again")
    assert [t.id for t in pipeline.services.stores.conversations.get("a", "r").turns] == ["m1", "m3"]
    assert [m.content for m in provider.requests[-1].messages] == ["hello", "said: hello", "again"]


async def test_tool_call_then_results_then_the_answer():
    pipeline, provider, _, _, profile = world()  # no context: the tool exchange is kept all the same
    reply = await say(pipeline, profile, "m1", "TOOL please")
    assert reply["tool_calls"][0]["id"] == "call_1" and reply["finish_reason"] == "tool_calls"
    answer = await run(pipeline, profile, tool_results("t1", "m1", "call_1"))
    assert answer["status"] == "ok" and answer["reply_to"] == "m1" and answer["message_id"] == "t1"
    sent = provider.requests[-1].messages
    assert [m.role for m in sent] == ["user", "assistant", "tool"] and sent[1].tool_calls[0].id == "call_1"
    again = await run(pipeline, profile, tool_results("t2", "m1", "call_1"))
    assert again["status"] == "error" and again["error"]["code"] == "tool_call_answered"
    unknown = await run(pipeline, profile, tool_results("t3", "nope", "call_9"))
    assert unknown["error"]["code"] == "unknown_tool_call"
    assert len(provider.requests) == 2  # refused results never reach the provider


async def test_a_cache_hit_answers_without_a_call_and_bills_zero_with_the_savings():
    pipeline, provider, publisher, _, profile = world(cache={"ttl_seconds": 60})
    first = await say(pipeline, profile, "m1", "hello")
    second = await say(pipeline, profile, "m2", "hello")
    assert len(provider.requests) == 1 and second["cache_hit"] and not first["cache_hit"]
    assert second["content"] == first["content"] and second["provider"] == "openai"
    bills = [json.loads(v) for kind, v in publisher.sent if kind == "billing"]
    assert [b["cache_hit"] for b in bills] == [False, True]
    assert bills[1]["cost_usd"] == "0" and bills[1]["saved_input_tokens"] == 40
    assert bills[1]["saved_cost_usd"] == bills[0]["cost_usd"] != "0"
    stats = pipeline.services.stores.cache.stats("a")
    assert (stats.lookups, stats.hits) == (2, 1)
    await say(pipeline, profile, "m3", "something else")
    assert len(provider.requests) == 2


async def test_a_clear_waits_for_the_room_and_forgets_everything_before_it():
    pipeline, provider, _, tables, profile = world(context={"max_turns": 10})
    await say(pipeline, profile, "m1", "remember me")
    services = pipeline.services
    forgetting, acked = Forgetting(services), []
    clear = ConversationClearedRecord(agent_id="a", origin=ORIGIN,
                                      payload=ConversationCleared(agent_id="a", room_id="r"))
    forgetting.clear(clear, lambda: acked.append(True))
    await asyncio.gather(*forgetting.chores)
    assert acked == [True] and tables.conversations == {}
    await say(pipeline, profile, "m2", "who am I?")
    assert [m.content for m in provider.requests[-1].messages] == ["who am I?"]


async def test_a_cache_hit_counts_against_rpm_but_gives_its_tokens_back():
    pipeline, provider, _, tables, profile = world(cache={"ttl_seconds": 60}, rate_limits={"rpm": 10, "tpm": 100_000})
    await say(pipeline, profile, "m1", "hello")
    after_call = pipeline.services.stores.windows.get("a")
    await say(pipeline, profile, "m2", "hello")
    after_hit = pipeline.services.stores.windows.get("a")
    assert len(provider.requests) == 1
    assert (after_call.requests, after_hit.requests) == (1, 2)  # the hit is a request
    assert after_hit.tokens == after_call.tokens == 47  # and used no tokens (reservation given back)


async def test_a_cached_answer_that_had_been_cut_is_still_marked_truncated():
    pipeline, provider, _, _, profile = world(cache={"ttl_seconds": 60}, max_reply_chars=12)
    first = await say(pipeline, profile, "m1", "Short one. And a much longer second sentence.")
    second = await say(pipeline, profile, "m2", "Short one. And a much longer second sentence.")
    assert first["truncated"] and second["truncated"] and second["cache_hit"]
    assert second["content"] == first["content"] == "said: Short" and len(provider.requests) == 1
