"""The check stages apply plugin verdicts: what each verdict does to the message, in the profile's order."""

from __future__ import annotations

import pytest

from gateway_app.contract.events import AgentProfile, MessageCreated, StageRef
from gateway_app.contract.internal import MessageRecord, Origin
from gateway_app.errors import Blocked
from gateway_app.pipeline.acker import AckSlot
from gateway_app.pipeline.caller import Answer, CallLog, Target
from gateway_app.pipeline.context import MessageContext
from gateway_app.pipeline.stages.checks import PostCallChecks, PreCallChecks
from gateway_app.pipeline.stages.prompt import build_request
from gateway_app.providers.base import ChatMessage
from gateway_app.plugins.api import Answer as AnswerVerdict
from gateway_app.plugins.api import Block, Modify, Pass, Regenerate, Replace, StageSpec
from gateway_app.plugins.discovery import Plugins
from gateway_app.providers.base import ChatResult, TokenUsage, ToolCall


class Scripted:
    """A stage plugin returning its verdicts in turn; remembers what it saw."""

    def __init__(self, name: str, position: str, *verdicts) -> None:
        self.name, self.position, self.verdicts, self.seen = name, position, list(verdicts), []
        self.time_limit_seconds, self.failure_mode = 1.0, "closed"

    async def run(self, stage_input):
        self.seen.append(stage_input)
        return self.verdicts.pop(0) if self.verdicts else Pass()


class FakeCall:
    """Stands in for the provider call stage: each call appends the next scripted answer."""

    def __init__(self, *texts: str) -> None:
        self.texts, self.calls = list(texts), 0

    async def call(self, ctx: MessageContext) -> None:
        self.calls += 1
        result = ChatResult(self.texts.pop(0), "stop", TokenUsage(2, 3))
        ctx.calls = ctx.calls or CallLog(0.0)
        ctx.calls.attempts += 1
        ctx.answers.append(Answer(result, Target("echo", "echo-1", {}, 0), 5, ctx.calls))
        ctx.result = result


def services(*stages: Scripted):
    plugins = Plugins(stages={s.name: StageSpec(s.name, s.position, 1.0, "closed", s) for s in stages})
    return type("S", (), {"plugins": plugins, "counters": {"stages_failed_open": 0}})()


def context(*names: str) -> MessageContext:
    profile = AgentProfile(agent_id="a", version=1, provider="echo", model="echo-1",
                           stages=[StageRef(name=n, options={"n": n}) for n in names])
    message = MessageCreated(message_id="m", agent_id="a", room_id="r", content="hi")
    origin = Origin(topic="t", partition=0, offset=0, received_at_ms=0)
    ctx = MessageContext(MessageRecord(agent_id="a", payload=message, origin=origin), 0, AckSlot(None),
                         profile=profile)
    ctx.request = build_request(profile, (ChatMessage("user", message.content),))
    return ctx


async def answered(ctx: MessageContext, call: FakeCall) -> MessageContext:
    await call.call(ctx)
    return ctx


async def test_pre_call_answer_skips_later_stages_and_records_a_note():
    first, second = Scripted("cache", "pre_call", AnswerVerdict("cached", "hit")), Scripted("later", "pre_call")
    ctx = context("cache", "later")
    await PreCallChecks(services(first, second)).run(ctx)
    assert ctx.stage_answer.stage == "cache" and ctx.result.text == "cached" and ctx.result.usage == TokenUsage(0, 0)
    assert second.seen == [] and [(n.stage, n.action, n.reason) for n in ctx.notes] == [("cache", "answer", "hit")]
    assert first.seen[0].options == {"n": "cache"} and first.seen[0].result is None


async def test_pre_call_block_is_a_blocked_error_naming_the_stage():
    ctx = context("guard")
    with pytest.raises(Blocked, match="blocked by stage 'guard': off topic"):
        await PreCallChecks(services(Scripted("guard", "pre_call", Block("off topic")))).run(ctx)


async def test_post_call_stages_see_the_answer_as_earlier_stages_left_it():
    redact = Scripted("redact", "post_call", Modify("a [email]", "1 address"))
    audit = Scripted("audit", "post_call")
    call = FakeCall("a x@y.z")
    ctx = await answered(context("redact", "audit"), call)
    ctx.result = ChatResult("a x@y.z", "tool_calls", TokenUsage(2, 3), tool_calls=(ToolCall("1", "f", "{}"),))
    await PostCallChecks(services(redact, audit), call).run(ctx)
    assert ctx.result.text == "a [email]" and ctx.result.tool_calls and ctx.result.finish_reason == "tool_calls"
    assert audit.seen[0].result.text == "a [email]"


async def test_replace_drops_tool_calls_and_says_content_filter():
    call = FakeCall("bad")
    ctx = await answered(context("swap"), call)
    await PostCallChecks(services(Scripted("swap", "post_call", Replace("sorry"))), call).run(ctx)
    assert (ctx.result.text, ctx.result.finish_reason, ctx.result.tool_calls) == ("sorry", "content_filter", ())


async def test_regenerate_asks_once_and_the_stages_run_again_on_the_new_answer():
    judge = Scripted("judge", "post_call", Regenerate("too short"), Pass())
    call = FakeCall("no", "a longer answer")
    ctx = await answered(context("judge"), call)
    await PostCallChecks(services(judge), call).run(ctx)
    assert call.calls == 2 and ctx.result.text == "a longer answer" and len(ctx.answers) == 2
    assert [s.regenerated for s in judge.seen] == [False, True]
    assert [(n.action, n.reason) for n in ctx.notes] == [("regenerate", "too short")]


async def test_a_second_regenerate_blocks():
    judge = Scripted("judge", "post_call", Regenerate("no"), Regenerate("still no"))
    call = FakeCall("one", "two")
    ctx = await answered(context("judge"), call)
    with pytest.raises(Blocked, match="already regenerated once"):
        await PostCallChecks(services(judge), call).run(ctx)
    assert call.calls == 2 and len(ctx.answers) == 2  # both answers stay on the context: both are billed


async def test_post_call_stages_do_not_check_an_answer_a_pre_call_stage_gave():
    judge, cache = Scripted("judge", "post_call", Block("never")), Scripted("cache", "pre_call", AnswerVerdict("x"))
    ctx = context("cache", "judge")
    await PreCallChecks(services(cache, judge)).run(ctx)
    await PostCallChecks(services(cache, judge), FakeCall()).run(ctx)
    assert judge.seen == []
