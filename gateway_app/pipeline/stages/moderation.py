"""Moderation, before and after the provider call.

`moderation_in` (after the prompt): an agent muted in the room by a signal is refused at once (status
blocked, `agent_muted`: no provider call, no billing), then the profile's input checks run on the
message, so a blocked input costs nothing.

`moderation_out` (after the reply format): every reply goes through the output checks (the profile's,
with the active signals' effects on top: `moderation.rules`) and, when the profile asks, the provider's
moderation endpoint. A check that does not pass is recorded (reply `moderation.verdicts`, an event on
`ai-moderation-events`) and its action applied; when several fail, the strongest action wins:
flag < mask < regenerate (once; then the rule's `then`) < replace (the fallback reply, or block without
one) < block. A check that errors follows its `fail_mode`: open records `error` and publishes, closed
blocks (`moderation_check_failed`).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from gateway_app.contract.events import AgentProfile, ErrorCode
from gateway_app.contract.moderation import CheckRule, Verdict
from gateway_app.errors import ModerationBlocked
from gateway_app.moderation import language
from gateway_app.moderation import records as moderation_records
from gateway_app.moderation.checks import CheckInput, CheckResult, mask_text, run_local
from gateway_app.moderation.rules import CODES, SettingsCache, input_rules, output_rules, strongest
from gateway_app.moderation.steering import NO_REPEAT, penalty_for
from gateway_app.moderation.gate import SENTENCE_CHECKS, STRONG, HeldPipe, needs_holding
from gateway_app.pipeline.chunks import ChunkPipe
from gateway_app.pipeline.context import MessageContext, StageAnswer
from gateway_app.pipeline.stage import Services
from gateway_app.providers.base import ChatResult, TokenUsage

REDO = "Your previous reply was not acceptable ({reason}). Write a new reply."


class Checking:
    """What both stages share: running the checks and recording what did not pass."""

    def __init__(self, services: Services) -> None:
        self.services = services
        settings = services.settings
        self.check_settings = SettingsCache(settings.moderation_words, settings.moderation_patterns)
        self.include_content = settings.moderation_include_content

    async def run(self, ctx: MessageContext, stage: str, rules: dict[str, CheckRule], data: CheckInput
                  ) -> list[tuple[CheckRule, CheckResult]]:
        """The checks that did not pass, with their rules; errors handled by each rule's fail mode."""
        profile = ctx.require_profile()
        failed: list[tuple[CheckRule, CheckResult]] = []
        started = time.monotonic()
        if "language" in rules and not language.loaded():
            await asyncio.to_thread(language.warm_up)  # once per worker, off the event loop (under a second)
        try:
            results = run_local(list(rules), data, self.check_settings.for_profile(profile)) if rules else []
        except Exception as exc:  # a configuration error (e.g. a pattern) is the checks' failure
            results = []
            for name, rule in rules.items():
                self.errored(ctx, stage, name, rule, exc)
        failed += [(rules[r.check], r) for r in results if not r.passed and rules[r.check].action != "pass"]
        spec = profile.moderation.provider
        if spec is not None and stage in spec.on:
            rule = CheckRule(action=spec.action, fail_mode=spec.fail_mode, then=spec.action)
            verdict = await self.provider(ctx, spec, data.text, rule, stage)
            if verdict is not None:
                failed.append((rule, verdict))
        ctx.timings[f"{stage}_checks"] = (time.monotonic() - started) * 1000
        return failed

    async def provider(self, ctx: MessageContext, spec, text: str, rule: CheckRule, stage: str) -> CheckResult | None:
        moderation = self.services.provider_moderation
        try:
            if moderation is None:
                raise RuntimeError("provider moderation is not available in this worker")
            verdict = await moderation.moderate(text, model=spec.model, thresholds=spec.thresholds,
                                                timeout=spec.timeout_seconds)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.errored(ctx, stage, "provider", rule, exc)
            return None
        prices = self.services.prices
        cost = prices.cost("openai", verdict.model, 0, 0)
        ctx.extra_billing.append(moderation_records.moderation_billing(
            ctx.message, verdict.model, cost, prices.version, len(ctx.extra_billing), verdict.request_id))
        if not verdict.flagged:
            return None
        return CheckResult("provider", False, tuple(verdict.categories), dict(verdict.scores),
                           f"flagged by {verdict.model}")

    def errored(self, ctx: MessageContext, stage: str, check: str, rule: CheckRule, exc: Exception) -> None:
        if rule.fail_mode == "closed":
            raise ModerationBlocked(ErrorCode.MODERATION_CHECK_FAILED, f"check {check!r} failed ({type(exc).__name__})")
        self.record(ctx, Verdict(stage=stage, check=check, verdict="error", action="flag"))

    def record(self, ctx: MessageContext, verdict: Verdict, result: CheckResult | None = None,
               text: str | None = None, signal=None) -> None:
        ctx.verdicts.append(verdict)
        self.services.counters["moderation_flagged"] += 1
        self.services.metrics.moderation(verdict.stage, verdict.check, verdict.verdict, verdict.action)
        signal = signal or caused_by(ctx, verdict)
        took = ctx.timings.get(f"{verdict.stage}_checks", 0.0)  # the stage's checks, all of them, in ms
        ctx.moderation_events.append(moderation_records.check_event(
            ctx.message, verdict, len(ctx.moderation_events), scores=result.scores if result else None,
            duration_ms=round(took),
            signal_id=signal.signal_id if signal else None,
            content=text if self.include_content else None))

    def note_all(self, ctx: MessageContext, stage: str, failed, action: str, text: str) -> None:
        for rule, result in failed:
            self.record(ctx, Verdict(stage=stage, check=result.check, verdict="flagged", action=action,
                                     categories=list(result.categories)), result, text)


def caused_by(ctx: MessageContext, verdict: Verdict):
    """The signal whose effect made this verdict what it is, if any (for the event's `signal_id`)."""
    steering = ctx.steering
    if verdict.check == "repetition" and steering.repetition is not None:
        return steering.repetition
    if verdict.action == "replace" and steering.replace_failed is not None:
        return steering.replace_failed
    if verdict.action == "block" and steering.strict is not None:
        return steering.strict
    return None


def blocked(check: str, detail: str) -> ModerationBlocked:
    return ModerationBlocked(CODES.get(check, ErrorCode.MODERATION_CHECK_FAILED), f"{check}: {detail}"[:300])


class ModerationIn:
    name = "moderation_in"

    def __init__(self, services: Services, checking: Checking) -> None:
        self.checking = checking

    async def run(self, ctx: MessageContext) -> None:
        profile = ctx.require_profile()
        mute = ctx.steering.mute
        if mute is not None:
            until = datetime.fromtimestamp(mute.expires_ms / 1000, timezone.utc).isoformat(timespec="seconds")
            self.checking.record(ctx, Verdict(stage="input", check="mute", verdict="flagged", action="block",
                                              categories=list(mute.categories)), signal=mute)
            raise ModerationBlocked(ErrorCode.AGENT_MUTED, f"the agent is muted in this room until {until} "
                                                           f"(signal {mute.signal_id})")
        rules = input_rules(profile)
        spec = profile.moderation.provider
        if not rules and not (spec and "input" in spec.on):
            return
        text = ctx.message.content
        failed = await self.checking.run(ctx, "input", rules, CheckInput(text=text, expected_language=ctx.reply_language))
        if not failed:
            return
        action = strongest(rule.action if rule.action != "regenerate" else rule.then for rule, _ in failed)
        self.checking.note_all(ctx, "input", failed, action, text)
        if action == "block" or (action == "replace" and not profile.moderation.fallback_reply):
            raise blocked(failed[0][1].check, failed[0][1].detail or "the input did not pass")
        if action == "replace":
            result = ChatResult(profile.moderation.fallback_reply, "content_filter", TokenUsage(0, 0))
            ctx.stage_answer, ctx.result = StageAnswer(self.name, result), result
        elif action == "mask":
            self._mask_input(ctx, [r.check for rule, r in failed if rule.action == "mask"])

    def _mask_input(self, ctx: MessageContext, checks: list[str]) -> None:
        request = ctx.require_request()
        settings = self.checking.check_settings.for_profile(ctx.require_profile())
        last = request.messages[-1]
        masked = replace(last, content=mask_text(last.content, settings, [c for c in checks if c in ("pii", "wordlist")]))
        ctx.request = replace(request, messages=request.messages[:-1] + (masked,))


class ModerationOut:
    name = "moderation_out"

    def __init__(self, services: Services, checking: Checking, call: Any) -> None:
        self.checking, self.call, self.stores = checking, call, services.stores

    async def run(self, ctx: MessageContext) -> None:
        result = ctx.result
        if result is None or (result.tool_calls and not result.text.strip()):
            return  # a tool call is not a reply to check
        profile = ctx.require_profile()
        rules = output_rules(profile, ctx.steering)
        regenerated = False
        while True:
            failed = await self.checking.run(ctx, "output", rules, self.data(ctx, profile, "repetition" in rules))
            if not failed:
                return
            actions = [rule.then if (regenerated and rule.action == "regenerate") else rule.action for rule, _ in failed]
            action = strongest(actions)
            if action == "regenerate" and ctx.stage_answer is not None:
                action = strongest(rule.then for rule, _ in failed)  # the gateway's own answer: no call to redo
            self.checking.note_all(ctx, "output", failed, action, ctx.result.text)
            if action != "regenerate":
                self.apply(ctx, profile, action, failed)
                return
            regenerated = True
            await self.regenerate(ctx, failed)

    def data(self, ctx: MessageContext, profile: AgentProfile, repetition: bool) -> CheckInput:
        previous: tuple[str, ...] = ()
        if repetition:
            row = self.stores.moderation.get(ctx.message.agent_id, ctx.message.room_id)
            previous = row.replies if row else ()
            if not previous and ctx.conversation_row is not None:
                previous = tuple(t.reply for t in ctx.conversation_row.turns if t.reply)[-profile.moderation.repetition_last_n:]
        result = ctx.result
        return CheckInput(text=result.text, finish_reason=result.finish_reason,
                          refused=result.finish_reason == "content_filter", expected_language=ctx.reply_language,
                          user_message=ctx.message.content, previous_replies=previous,
                          max_chars=profile.moderation.max_chars)

    def apply(self, ctx: MessageContext, profile: AgentProfile, action: str, failed) -> None:
        first = next(r for rule, r in failed if rule.action == action or rule.then == action)
        if action == "block" or (action == "replace" and not profile.moderation.fallback_reply):
            raise blocked(first.check, first.detail or "the reply did not pass")
        if action == "replace":
            ctx.result = replace(ctx.result, text=profile.moderation.fallback_reply, finish_reason="content_filter",
                                 tool_calls=())
        elif action == "mask":
            settings = self.checking.check_settings.for_profile(profile)
            checks = [r.check for rule, r in failed if rule.action == "mask" and r.check in ("pii", "wordlist")]
            ctx.result = replace(ctx.result, text=mask_text(ctx.result.text, settings, checks))

    async def regenerate(self, ctx: MessageContext, failed) -> None:
        """Once: the same request with an instruction (and, for repetition, the penalties)."""
        request = ctx.require_request()
        repeated = any(r.check == "repetition" for _, r in failed)
        reason = ", ".join(sorted({r.check for _, r in failed}))
        instruction = NO_REPEAT if repeated else REDO.format(reason=reason)
        penalty = penalty_for(ctx.require_profile().provider, max(ctx.steering.penalty or 0.0, 0.6)) if repeated else None
        ctx.request = replace(request, system_prompt="\n\n".join(p for p in (request.system_prompt, instruction) if p),
                              frequency_penalty=penalty if penalty is not None else request.frequency_penalty,
                              presence_penalty=penalty if penalty is not None else request.presence_penalty)
        await self.call.call(ctx)


class StreamGate:
    """The chunk pipe of a streamed call: held (`moderation.gate.HeldPipe`) when a check on the reply may
    do more than flag, else the plain one."""

    def __init__(self, services: Services, checking: Checking) -> None:
        self.publisher, self.checking = services.publisher, checking

    def pipe_for(self, ctx: MessageContext) -> ChunkPipe:
        profile = ctx.require_profile()
        rules = output_rules(profile, ctx.steering)
        spec = profile.moderation.provider
        actions = {rule.action for rule in rules.values()} | {rule.then for rule in rules.values()}
        if not needs_holding(actions, spec is not None and "output" in spec.on):
            return ChunkPipe(self.publisher, ctx.room_message)
        strong = {name: rule for name, rule in rules.items() if name in SENTENCE_CHECKS and rule.action in STRONG}
        settings = self.checking.check_settings.for_profile(profile)

        def check(sentence: str) -> str | None:
            released = sentence
            for result in run_local(list(strong), CheckInput(text=sentence), settings):
                if result.passed:
                    continue
                if strong[result.check].action != "mask":
                    return None
                released = mask_text(released, settings, [result.check])
            return released

        return HeldPipe(self.publisher, ctx.room_message, check)


async def end_stream(ctx: MessageContext, *, blocked: bool, failed: bool = False) -> None:
    """A held stream's end, before the reply: its final chunk (blocked or not); a failed message's
    stream gets none (like any stream whose answer failed)."""
    pipe = ctx.stream_pipe
    if not isinstance(pipe, HeldPipe):
        return
    if failed:
        await pipe.abandon()
    else:
        await pipe.finish(blocked=blocked)
