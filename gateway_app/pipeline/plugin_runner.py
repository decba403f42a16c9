"""Runs one stage plugin for one message: within its time limit, its verdict checked, its failure
handled by its declared mode. Nothing a plugin does (raise, hang, return garbage) escapes as anything
but a `StageFailed` (closed) or a skipped stage (open)."""

from __future__ import annotations

import asyncio
import logging

from gateway_app.contract.events import AgentProfile, StageNote
from gateway_app.errors import StageFailed
from gateway_app.pipeline.context import MessageContext
from gateway_app.plugins.api import ALLOWED, Answer, Modify, Pass, Position, Replace, StageInput, StageSpec, Verdict
from gateway_app.plugins.discovery import Plugins

log = logging.getLogger(__name__)
REASON_CHARS = 500  # a stage's reason is kept this long in the reply


def stages_at(plugins: Plugins, profile: AgentProfile, position: Position) -> list[tuple[StageSpec, dict]]:
    """The profile's stages at one position, in the profile's order. A name no plugin provides (the
    plugin was removed since the profile was accepted) fails the message rather than skipping a check."""
    chosen = []
    for ref in profile.stages:
        spec = plugins.stage(ref.name)
        if spec is None:
            raise StageFailed(ref.name, "no installed plugin provides this stage")
        if spec.position == position:
            chosen.append((spec, ref.options))
    return chosen


async def run_plugin(spec: StageSpec, stage_input: StageInput, ctx: MessageContext,
                     counters: dict[str, int]) -> Verdict:
    """The stage's verdict; `Pass` when an `open` stage failed (and was noted as skipped)."""
    failure = await _verdict_or_failure(spec, stage_input)
    if not isinstance(failure, str):
        return failure
    if spec.failure_mode == "closed":
        raise StageFailed(spec.name, failure)
    log.warning("stage.failed_open stage=%s message=%s reason=%s", spec.name, ctx.message.message_id, failure)
    counters["stages_failed_open"] += 1
    ctx.notes.append(StageNote(stage=spec.name, action="skipped"))
    return Pass()


async def _verdict_or_failure(spec: StageSpec, stage_input: StageInput) -> Verdict | str:
    try:
        # Its own task, abandoned (cancelled, not awaited) at the limit: a plugin that swallows the
        # cancellation and keeps going still cannot hold the message past its time limit.
        task = asyncio.ensure_future(spec.plugin.run(stage_input))
    except Exception as exc:  # `run` raised before its first await, or returned no awaitable
        return f"raised {type(exc).__name__}: {exc}"[:300]
    try:
        done, _ = await asyncio.wait({task}, timeout=spec.time_limit_seconds)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        task.add_done_callback(_consume)
        return f"no verdict within its time limit of {spec.time_limit_seconds}s"
    if task.cancelled():  # cancelled from inside (we were not): a failure of the stage, not a rebalance
        return "its task was cancelled before it gave a verdict"
    if task.exception() is not None:
        exc = task.exception()
        return f"raised {type(exc).__name__}: {exc}"[:300]
    return _checked(spec.position, task.result())


def _consume(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log "exception was never retrieved"


def _checked(position: Position, verdict: object) -> Verdict | str:
    verdict = Pass() if verdict is None else verdict
    if not isinstance(verdict, ALLOWED[position]):
        allowed = ", ".join(kind.__name__ for kind in ALLOWED[position])
        return f"returned {type(verdict).__name__}, not one of {allowed} at {position}"[:300]
    if isinstance(verdict, (Answer, Modify, Replace)) and not isinstance(verdict.content, str):
        return f"returned {type(verdict).__name__} whose content is {type(verdict.content).__name__}, not text"
    if not isinstance(getattr(verdict, "reason", ""), str):
        return f"returned {type(verdict).__name__} whose reason is not text"
    return verdict


def note(ctx: MessageContext, spec: StageSpec, action: str, reason: str) -> None:
    ctx.notes.append(StageNote(stage=spec.name, action=action, reason=reason[:REASON_CHARS] or None))
