"""The reply format stage: Markdown normalised, JSON checked and repaired once, replies cut."""

from __future__ import annotations

import pytest

from gateway_app.contract.events import AgentProfile, ErrorCode, MessageCreated
from gateway_app.contract.internal import MessageRecord, Origin
from gateway_app.errors import GatewayError
from gateway_app.pipeline.acker import AckSlot
from gateway_app.pipeline.caller import Answer, CallLog, Target
from gateway_app.pipeline.context import MessageContext, StageAnswer
from gateway_app.pipeline.formats import repair_instruction
from gateway_app.pipeline.stages.prompt import build_request
from gateway_app.pipeline.stages.reply_format import ReplyFormat
from gateway_app.providers.base import ChatMessage, ChatResult, TokenUsage, ToolCall

SCHEMA = {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "string"}}}


class FakeCall:
    """Stands in for the provider call stage: each call appends the next scripted answer and remembers
    the request it was asked with."""

    def __init__(self, *texts: str) -> None:
        self.texts, self.requests = list(texts), []

    async def call(self, ctx: MessageContext) -> None:
        self.requests.append(ctx.require_request())
        result = ChatResult(self.texts.pop(0), "stop", TokenUsage(2, 3))
        ctx.calls = ctx.calls or CallLog(0.0)
        ctx.calls.attempts += 1
        ctx.answers.append(Answer(result, Target("echo", "echo-1", {}, 0), 5, ctx.calls))
        ctx.result = result


def context(**profile_fields) -> MessageContext:
    profile = AgentProfile(agent_id="a", version=1, provider="echo", model="echo-1", **profile_fields)
    message = MessageCreated(message_id="m", agent_id="a", room_id="r", content="hi")
    origin = Origin(topic="t", partition=0, offset=0, received_at_ms=0)
    ctx = MessageContext(MessageRecord(agent_id="a", payload=message, origin=origin), 0, AckSlot(None),
                         profile=profile)
    ctx.request = build_request(profile, (ChatMessage("user", message.content),))
    return ctx


async def answered(call: FakeCall, **profile_fields) -> MessageContext:
    ctx = context(**profile_fields)
    await call.call(ctx)
    return ctx


async def test_valid_json_passes_without_a_second_call():
    call = FakeCall('{"answer": "42"}')
    ctx = await answered(call, response_format={"type": "json", "schema": SCHEMA})
    await ReplyFormat(None, call).run(ctx)
    assert ctx.result.text == '{"answer": "42"}' and len(call.requests) == 1 and ctx.notes == []


async def test_a_fenced_json_answer_is_published_without_its_fence():
    call = FakeCall('```json\n{"answer": "42"}\n```')
    ctx = await answered(call, response_format="json")
    await ReplyFormat(None, call).run(ctx)
    assert ctx.result.text == '{"answer": "42"}'


async def test_invalid_json_is_repaired_once():
    call = FakeCall("The answer is 42.", '{"answer": "42"}')
    ctx = await answered(call, response_format={"type": "json", "schema": SCHEMA})
    await ReplyFormat(None, call).run(ctx)
    assert ctx.result.text == '{"answer": "42"}' and len(ctx.answers) == 2  # both answers are billed
    first, repair = call.requests
    reason = ctx.notes[0].reason
    assert repair.messages == first.messages + (ChatMessage("assistant", "The answer is 42."),
                                                ChatMessage("user", repair_instruction(reason)))
    assert [(n.stage, n.action) for n in ctx.notes] == [("reply_format", "regenerate")]
    assert reason.startswith("not valid JSON")


async def test_a_schema_violation_is_repaired_with_its_path_as_the_reason():
    call = FakeCall('{"answer": 42}', '{"answer": "42"}')
    ctx = await answered(call, response_format={"type": "json", "schema": SCHEMA})
    await ReplyFormat(None, call).run(ctx)
    assert ctx.notes[0].reason == "at $.answer: 42 is not of type 'string'" and ctx.result.text == '{"answer": "42"}'


async def test_invalid_twice_fails_with_invalid_response_format():
    call = FakeCall('{"answer": 42}', '{"answer": 43}')
    ctx = await answered(call, response_format={"type": "json", "schema": SCHEMA})
    with pytest.raises(GatewayError) as failed:
        await ReplyFormat(None, call).run(ctx)
    assert failed.value.code == ErrorCode.INVALID_RESPONSE_FORMAT and "$.answer" in failed.value.reason
    assert len(call.requests) == 2 and len(ctx.answers) == 2  # no third call; both answers stay to be billed


async def test_an_invalid_stage_answer_fails_without_a_call():
    call = FakeCall()
    ctx = context(response_format="json")
    ctx.result = ChatResult("cached prose", "stop", TokenUsage(0, 0))
    ctx.stage_answer = StageAnswer("cache", ctx.result)
    with pytest.raises(GatewayError) as failed:
        await ReplyFormat(None, call).run(ctx)
    assert failed.value.code == ErrorCode.INVALID_RESPONSE_FORMAT and call.requests == [] and ctx.notes == []


async def test_a_tool_call_answer_is_not_checked():
    call = FakeCall("")
    ctx = await answered(call, response_format="json")
    ctx.result = ChatResult("", "tool_calls", TokenUsage(2, 3), tool_calls=(ToolCall("1", "f", "{}"),))
    await ReplyFormat(None, call).run(ctx)
    assert ctx.result.tool_calls and len(call.requests) == 1


async def test_json_is_never_truncated():
    call = FakeCall('{"answer": "a long enough answer"}')
    ctx = await answered(call, response_format="json", max_reply_chars=5)
    await ReplyFormat(None, call).run(ctx)
    assert ctx.result.text == '{"answer": "a long enough answer"}' and not ctx.truncated


async def test_markdown_is_normalised():
    call = FakeCall("Run:\n\n```sh\nmake test")
    ctx = await answered(call, response_format="markdown")
    await ReplyFormat(None, call).run(ctx)
    assert ctx.result.text == "Run:\n\n```sh\nmake test\n```" and not ctx.truncated


async def test_text_is_left_as_the_model_wrote_it():
    call = FakeCall("* not   normalised ")
    ctx = await answered(call)
    await ReplyFormat(None, call).run(ctx)
    assert ctx.result.text == "* not   normalised " and not ctx.truncated


async def test_a_long_reply_is_cut_at_a_sentence_and_says_so():
    call = FakeCall("First sentence. Second sentence is longer.")
    ctx = await answered(call, max_reply_chars=30)
    await ReplyFormat(None, call).run(ctx)
    assert ctx.result.text == "First sentence." and ctx.truncated


async def test_a_reply_within_the_limit_is_not_marked_truncated():
    call = FakeCall("Short.")
    ctx = await answered(call, response_format="markdown", max_reply_chars=6)
    await ReplyFormat(None, call).run(ctx)
    assert ctx.result.text == "Short." and not ctx.truncated


async def test_nothing_to_do_without_a_result():
    ctx = context(response_format="json")
    await ReplyFormat(None, FakeCall()).run(ctx)
    assert ctx.result is None and ctx.notes == []
