"""Plugin discovery (entry points checked once at start) and the plugin runner (verdicts checked, time
limits kept, failures handled by the stage's declared mode), with fake entry points and stages."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from gateway_app.contract.events import AgentProfile, ErrorCode, MessageCreated, StageRef
from gateway_app.contract.internal import MessageRecord, Origin
from gateway_app.errors import StageFailed
from gateway_app.pipeline.acker import AckSlot
from gateway_app.pipeline.context import MessageContext
from gateway_app.pipeline.plugin_runner import _checked, _verdict_or_failure, run_plugin, stages_at
from gateway_app.plugins.api import (
    Answer,
    Block,
    Modify,
    Pass,
    Regenerate,
    Replace,
    StageInput,
    StageSpec,
)
from gateway_app.plugins.discovery import PROVIDER_GROUP, STAGE_GROUP, check_stage, discover
from gateway_app.providers import registry
from gateway_app.providers.base import ChatMessage, ChatRequest, ChatResult, TokenUsage


class FakeDist:
    name, version = "fake-plugins", "1.2.3"


class FakePoint:
    """What `importlib.metadata.entry_points` gives: a name, a target, `load()` and its distribution."""

    def __init__(self, group: str, name: str, value: str, load: Any) -> None:
        self.group, self.name, self.value, self._load = group, name, value, load
        self.dist = FakeDist()

    def load(self) -> Any:
        if isinstance(self._load, BaseException):
            raise self._load
        return self._load


def points(*found: FakePoint):
    def points_of(group: str) -> list[FakePoint]:
        return [point for point in found if point.group == group]
    return points_of


def stage_class(name: str = "good", position: Any = "post_call", limit: Any = 1.0, mode: Any = "closed",
                verdict: Any = None, validate=None) -> type:
    class Stage:
        time_limit_seconds = limit
        failure_mode = mode

        async def run(self, stage_input: StageInput) -> Any:
            return verdict

    Stage.name, Stage.position = name, position
    if validate is not None:
        Stage.validate_options = lambda self, options: validate(options)
    return Stage


def stage_point(name: str, load: Any) -> FakePoint:
    return FakePoint(STAGE_GROUP, name, f"fake_plugins:{name}", load)


@pytest.fixture(autouse=True)
def own_registry(monkeypatch):
    """Discovery registers provider plugins in the registry: each test on its own copy."""
    monkeypatch.setattr(registry, "PROVIDERS", dict(registry.PROVIDERS))


def listed(plugins, name: str) -> dict[str, Any]:
    return next(item for item in plugins.as_list() if item["name"] == name)


# --- discovery ---------------------------------------------------------------------------------------


def test_a_good_stage_is_loaded_with_its_declarations():
    plugins = discover(points(stage_point("good", stage_class("good", "pre_call", 0.25, "open"))))
    spec = plugins.stage("good")
    assert spec is not None and plugins.is_known_stage("good")
    assert (spec.name, spec.position, spec.time_limit_seconds, spec.failure_mode) == ("good", "pre_call", 0.25, "open")
    info = listed(plugins, "good")
    assert info["loaded"] and info["error"] is None and info["distribution"] == "fake-plugins 1.2.3"
    assert (info["position"], info["time_limit_seconds"], info["failure_mode"]) == ("pre_call", 0.25, "open")
    assert plugins.check_stage("good", {}) is None


def test_an_instance_is_taken_as_it_is_and_a_class_is_instantiated():
    instance, cls = stage_class("inst")(), stage_class("cls")
    plugins = discover(points(stage_point("inst", instance), stage_point("cls", cls)))
    assert plugins.stage("inst").plugin is instance
    assert isinstance(plugins.stage("cls").plugin, cls)


def test_a_broken_import_is_listed_with_its_error_and_left_out():
    broken = stage_point("broken", ModuleNotFoundError("No module named 'missing_dependency'"))
    good = stage_point("good", stage_class("good"))
    plugins = discover(points(broken, good))  # the broken one does not stop the others
    assert not plugins.is_known_stage("broken") and plugins.is_known_stage("good")
    info = listed(plugins, "broken")
    assert not info["loaded"] and info["error"] == "ModuleNotFoundError: No module named 'missing_dependency'"


def test_a_constructor_that_raises_is_listed_and_left_out():
    class Exploding:
        def __init__(self) -> None:
            raise RuntimeError("needs a config file")

    plugins = discover(points(stage_point("boom", Exploding)))
    assert not plugins.is_known_stage("boom")
    assert listed(plugins, "boom")["error"] == "RuntimeError: needs a config file"


@pytest.mark.parametrize(("plugin", "error"), [
    (stage_class("odd", position="during_call"), "position 'during_call' is not one of pre_call, post_call, outputs"),
    (stage_class("odd", limit=0), "time_limit_seconds must be above 0 and at most 30.0, got 0"),
    (stage_class("odd", limit=31), "time_limit_seconds must be above 0 and at most 30.0, got 31"),
    (stage_class("odd", limit="1"), "time_limit_seconds must be above 0 and at most 30.0, got '1'"),
    (stage_class("odd", mode="maybe"), "failure_mode 'maybe' is not 'closed' or 'open'"),
    (stage_class("other"), "declares name 'other' under entry point 'odd'"),
    (object, "not a stage: needs name, position, time_limit_seconds, failure_mode and async run()"),
])
def test_wrong_declarations_are_refused_saying_what_is_wrong(plugin, error):
    plugins = discover(points(stage_point("odd", plugin)))
    assert not plugins.is_known_stage("odd")
    info = listed(plugins, "odd")
    assert not info["loaded"] and info["error"] == f"ValueError: {error}"
    with pytest.raises(ValueError) as caught:
        check_stage("odd", plugin if plugin is object else plugin())
    assert str(caught.value) == error


def test_check_stage_refuses_an_overlong_name():
    name = "x" * 65
    with pytest.raises(ValueError, match="name must have 1 to 64 characters"):
        check_stage(name, stage_class(name)())


def test_a_provider_plugin_joins_the_registry_unless_it_takes_a_builtin_name():
    builtin_target = registry.PROVIDERS["openai"]
    found = points(FakePoint(PROVIDER_GROUP, "parrot2", "somewhere.parrot:Parrot", None),
                   FakePoint(PROVIDER_GROUP, "openai", "evil.module:FakeOpenAI", None),
                   FakePoint(PROVIDER_GROUP, "nocolon", "just_a_module", None))
    plugins = discover(found)
    assert registry.PROVIDERS["parrot2"] == "somewhere.parrot:Parrot" and registry.is_known("parrot2")
    assert registry.PROVIDERS["openai"] == builtin_target  # not replaced
    assert listed(plugins, "parrot2")["loaded"] is True
    assert listed(plugins, "openai") == {**listed(plugins, "openai"), "loaded": False,
                                         "error": "'openai' is a built-in provider"}
    assert listed(plugins, "nocolon")["error"] == "target is not 'module:Class'" and not registry.is_known("nocolon")


def test_profile_checks_name_unknown_stages_and_refused_options():
    def validate(options: dict) -> None:
        if "mode" in options:
            raise ValueError("mode is not an option")

    plugins = discover(points(stage_point("picky", stage_class("picky", validate=validate)),
                              stage_point("easy", stage_class("easy"))))
    assert plugins.check_stage("picky", {"level": 1}) is None
    code, reason = plugins.check_stage("picky", {"mode": "x"})
    assert code == ErrorCode.INVALID_STAGE_OPTIONS
    assert reason == "stage 'picky' refused its options: mode is not an option"
    code, reason = plugins.check_stage("nope", {})
    assert code == ErrorCode.UNKNOWN_STAGE and reason == "stage 'nope' is not installed (installed: easy, picky)"
    assert discover(points()).check_stage("nope", {})[1] == "stage 'nope' is not installed (installed: none)"


def test_a_validator_that_crashes_refuses_the_options_instead_of_crashing_intake():
    plugins = discover(points(stage_point("crashy", stage_class("crashy", validate=lambda options: 1 / 0))))
    code, reason = plugins.check_stage("crashy", {})
    assert code == ErrorCode.INVALID_STAGE_OPTIONS and "division by zero" in reason


def test_the_installed_example_and_test_plugins_are_discovered():
    """`make` installs the example package and the test stages into the venv (the workers see them)."""
    plugins = discover()
    by_name = {item["name"]: item for item in plugins.as_list()}
    assert by_name["parrot"]["loaded"] and by_name["parrot"]["distribution"].startswith("gateway-plugin-example ")
    assert registry.PROVIDERS["parrot"] == "gateway_plugin_example.provider:ParrotProvider"
    spec = plugins.stage("redact-emails")
    assert (spec.position, spec.time_limit_seconds, spec.failure_mode) == ("post_call", 1.0, "closed")
    for name in ("test-fail-closed", "test-fail-open", "test-hang", "test-garbage", "test-block", "test-regenerate"):
        assert plugins.is_known_stage(name), by_name.get(name)
    assert plugins.stage("test-hang").time_limit_seconds == 0.5
    assert plugins.check_stage("redact-emails", {"replacement": 5})[0] == ErrorCode.INVALID_STAGE_OPTIONS


# --- the runner ----------------------------------------------------------------------------------------

RESULT = ChatResult(text="an answer", finish_reason="stop", usage=TokenUsage(3, 2))


def stage_input(options: dict | None = None) -> StageInput:
    message = MessageCreated(message_id="m-1", agent_id="a-1", room_id="r-1", content="hello there")
    profile = AgentProfile(agent_id="a-1", version=1, provider="echo", model="echo-1")
    request = ChatRequest(model="echo-1", system_prompt="", messages=(ChatMessage("user", "hello there"),),
                          temperature=0, max_tokens=64)
    return StageInput(message, profile, request, options or {}, result=RESULT)


def context() -> MessageContext:
    message = MessageCreated(message_id="m-1", agent_id="a-1", room_id="r-1", content="hello there")
    origin = Origin(topic="t", partition=0, offset=0, received_at_ms=0)
    return MessageContext(record=MessageRecord(agent_id="a-1", payload=message, origin=origin), partition=0,
                          slot=AckSlot(None))


@pytest.mark.parametrize("position", ["pre_call", "post_call", "outputs"])
def test_none_and_pass_are_a_pass_everywhere(position):
    assert _checked(position, None) == Pass()
    verdict = Pass()
    assert _checked(position, verdict) is verdict


@pytest.mark.parametrize(("position", "verdict"), [
    ("pre_call", Answer("cached")), ("pre_call", Block("no")),
    ("post_call", Modify("m")), ("post_call", Replace("r")), ("post_call", Regenerate("again")),
    ("post_call", Block("no")),
])
def test_allowed_verdicts_are_returned_as_they_are(position, verdict):
    assert _checked(position, verdict) is verdict


@pytest.mark.parametrize(("position", "verdict", "failure"), [
    ("pre_call", Modify("m"), "returned Modify, not one of Pass, Answer, Block at pre_call"),
    ("pre_call", Regenerate(), "returned Regenerate, not one of Pass, Answer, Block at pre_call"),
    ("post_call", Answer("a"), "returned Answer, not one of Pass, Modify, Replace, Regenerate, Block at post_call"),
    ("outputs", Block("no"), "returned Block, not one of Pass at outputs"),
    ("outputs", Modify("m"), "returned Modify, not one of Pass at outputs"),
    ("post_call", "looks fine", "returned str, not one of Pass, Modify, Replace, Regenerate, Block at post_call"),
    ("pre_call", True, "returned bool, not one of Pass, Answer, Block at pre_call"),
    ("post_call", Modify(None), "returned Modify whose content is NoneType, not text"),
    ("pre_call", Answer(42), "returned Answer whose content is int, not text"),
    ("post_call", Replace(b"bytes"), "returned Replace whose content is bytes, not text"),
    ("post_call", Block(reason=["a list"]), "returned Block whose reason is not text"),
    ("post_call", Regenerate(reason=7), "returned Regenerate whose reason is not text"),
])
def test_anything_else_is_a_failure_saying_what_came_back(position, verdict, failure):
    assert _checked(position, verdict) == failure


async def test_a_stage_is_cut_at_its_time_limit():
    class Slow:
        name, position, time_limit_seconds, failure_mode = "slow", "pre_call", 0.1, "closed"
        cancelled = False

        async def run(self, stage_input):
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                Slow.cancelled = True
                raise

    spec = check_stage("slow", Slow())
    started = time.monotonic()
    failure = await _verdict_or_failure(spec, stage_input())
    assert failure == "no verdict within its time limit of 0.1s"
    assert 0.09 <= time.monotonic() - started < 0.5
    await asyncio.sleep(0)  # the abandoned task sees its cancellation
    assert Slow.cancelled


async def test_a_stage_that_swallows_its_cancellation_still_cannot_hold_the_message():
    class Stubborn:
        name, position, time_limit_seconds, failure_mode = "stubborn", "pre_call", 0.1, "closed"

        async def run(self, stage_input):
            for _ in range(6):  # 0.3 s in all, three times its limit
                try:
                    await asyncio.sleep(0.05)
                except asyncio.CancelledError:
                    pass  # keeps going regardless
            return Pass()

    started = time.monotonic()
    failure = await _verdict_or_failure(check_stage("stubborn", Stubborn()), stage_input())
    assert failure.startswith("no verdict within its time limit") and time.monotonic() - started < 0.5


async def test_a_stage_within_its_limit_gives_its_verdict():
    class Quick:
        name, position, time_limit_seconds, failure_mode = "quick", "post_call", 1.0, "closed"

        async def run(self, stage_input):
            await asyncio.sleep(0.01)
            return Modify(stage_input.result.text.upper(), reason="louder")

    assert await _verdict_or_failure(check_stage("quick", Quick()), stage_input()) == Modify("AN ANSWER", "louder")


async def test_a_cancelled_message_cancels_its_running_stage():
    entered, cancelled = asyncio.Event(), asyncio.Event()

    class Waiting:
        name, position, time_limit_seconds, failure_mode = "waiting", "pre_call", 5.0, "closed"

        async def run(self, stage_input):
            entered.set()
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.set()
                raise

    outer = asyncio.ensure_future(_verdict_or_failure(check_stage("waiting", Waiting()), stage_input()))
    await entered.wait()
    outer.cancel()  # a rebalance cancels the message's task
    with pytest.raises(asyncio.CancelledError):
        await outer
    await asyncio.wait_for(cancelled.wait(), 1)


async def test_a_closed_failure_fails_the_message_naming_the_stage():
    spec = check_stage("strict", stage_class("strict", "post_call", mode="closed", verdict="garbage")())
    counters = {"stages_failed_open": 0}
    with pytest.raises(StageFailed) as caught:
        await run_plugin(spec, stage_input(), context(), counters)
    assert caught.value.code == ErrorCode.STAGE_FAILED and caught.value.stage == "strict"
    assert caught.value.reason.startswith("stage 'strict' failed: returned str, not one of Pass")
    assert counters["stages_failed_open"] == 0


async def test_an_open_failure_is_skipped_noted_and_counted():
    class Raising:
        name, position, time_limit_seconds, failure_mode = "lenient", "pre_call", 1.0, "open"

        async def run(self, stage_input):
            raise ConnectionError("audit service down")

    ctx, counters = context(), {"stages_failed_open": 0}
    verdict = await run_plugin(check_stage("lenient", Raising()), stage_input(), ctx, counters)
    assert verdict == Pass() and counters["stages_failed_open"] == 1
    assert [(n.stage, n.action, n.reason) for n in ctx.notes] == [("lenient", "skipped", None)]


async def test_a_closed_stage_that_raises_fails_with_the_exception_named():
    class Raising:
        name, position, time_limit_seconds, failure_mode = "raising", "pre_call", 1.0, "closed"

        async def run(self, stage_input):
            raise KeyError("user")

    with pytest.raises(StageFailed, match=r"^stage 'raising' failed: raised KeyError: 'user'$"):
        await run_plugin(check_stage("raising", Raising()), stage_input(), context(), {"stages_failed_open": 0})


def test_stages_at_keeps_the_profile_order_within_a_position_and_fails_on_a_missing_plugin():
    plugins = discover(points(stage_point("a", stage_class("a", "post_call")),
                              stage_point("b", stage_class("b", "pre_call")),
                              stage_point("c", stage_class("c", "post_call"))))
    profile = AgentProfile(agent_id="x", version=1, provider="echo", model="echo-1",
                           stages=[StageRef(name="c", options={"k": 1}), StageRef(name="b"), StageRef(name="a")])
    assert [(spec.name, options) for spec, options in stages_at(plugins, profile, "post_call")] == \
        [("c", {"k": 1}), ("a", {})]
    assert [spec.name for spec, _ in stages_at(plugins, profile, "pre_call")] == ["b"]
    assert stages_at(plugins, profile, "outputs") == []
    removed = AgentProfile(agent_id="x", version=2, provider="echo", model="echo-1", stages=[StageRef(name="gone")])
    with pytest.raises(StageFailed, match="stage 'gone' failed: no installed plugin provides this stage"):
        stages_at(plugins, removed, "pre_call")


# --- stages that are not what they declare -------------------------------------------------------------


async def test_a_stage_whose_run_is_not_async_is_refused_or_fails_by_its_mode():
    class SyncRun:
        name, position, time_limit_seconds, failure_mode = "sync", "pre_call", 1.0, "open"

        def run(self, stage_input):
            return Pass()

    # Refused at discovery; were it let through, the runner must still fail it by its mode (skip it),
    # never let the TypeError of `ensure_future(<not awaitable>)` escape as an internal error.
    with pytest.raises(ValueError, match="run must be an async function"):
        check_stage("sync", SyncRun())
    spec = StageSpec("sync", "pre_call", 1.0, "open", SyncRun())
    ctx, counters = context(), {"stages_failed_open": 0}
    assert await run_plugin(spec, stage_input(), ctx, counters) == Pass()  # an open stage is skipped
    assert counters["stages_failed_open"] == 1 and ctx.notes[0].action == "skipped"


async def test_a_stage_that_raises_cancelled_error_is_a_failure_not_a_cancellation():
    class SelfCancelling:
        name, position, time_limit_seconds, failure_mode = "selfcancel", "pre_call", 1.0, "closed"

        async def run(self, stage_input):
            raise asyncio.CancelledError()  # e.g. it awaited an inner task that something else cancelled

    # A CancelledError escaping the runner would look like a rebalance: no reply, the message never acked.
    with pytest.raises(StageFailed, match="^stage 'selfcancel' failed: "):
        spec = check_stage("selfcancel", SelfCancelling())
        await run_plugin(spec, stage_input(), context(), {"stages_failed_open": 0})
    assert asyncio.current_task().cancelling() == 0


def test_two_packages_giving_one_name_make_neither_usable():
    from importlib.metadata import EntryPoint

    from gateway_app.plugins.discovery import discover

    class Good:
        name, position, time_limit_seconds, failure_mode = "twin", "pre_call", 1.0, "open"

        async def run(self, stage_input):
            return None

    import sys
    import types
    module = types.ModuleType("twin_stage_module")
    module.Good = Good
    sys.modules["twin_stage_module"] = module
    points = {"ai_gateway.stages": [EntryPoint("twin", "twin_stage_module:Good", "ai_gateway.stages"),
                                    EntryPoint("twin", "twin_stage_module:Good2", "ai_gateway.stages")],
              "ai_gateway.providers": [EntryPoint("dup", "a.b:C", "ai_gateway.providers"),
                                       EntryPoint("dup", "x.y:Z", "ai_gateway.providers")]}
    plugins = discover(lambda group: points[group])
    assert not plugins.is_known_stage("twin")
    assert [(i.name, i.loaded) for i in plugins.listing] == [("dup", False), ("dup", False), ("twin", False),
                                                             ("twin", False)]
    assert all("neither is used" in i.error for i in plugins.listing)
    from gateway_app.providers import registry
    assert "dup" not in registry.PROVIDERS
