"""Stages for the gateway's tests only (names start with `test-`): each fails or decides in one
known way, so tests can see what the pipeline makes of it."""

from __future__ import annotations

import asyncio

from gateway_app.plugins import Block, Pass, Regenerate, StageInput

HANG_MARK = "[hang]"  # test-hang hangs only on messages containing this; others pass


class FailClosed:
    name = "test-fail-closed"
    position = "pre_call"
    time_limit_seconds = 1.0
    failure_mode = "closed"

    async def run(self, stage_input: StageInput) -> None:
        raise RuntimeError("test-fail-closed fails on purpose")


class FailOpen:
    name = "test-fail-open"
    position = "pre_call"
    time_limit_seconds = 1.0
    failure_mode = "open"

    async def run(self, stage_input: StageInput) -> None:
        raise RuntimeError("test-fail-open fails on purpose")


class Hang:
    """Sleeps for an hour on a message containing `[hang]`: only its time limit ends it."""

    name = "test-hang"
    position = "pre_call"
    time_limit_seconds = 0.5
    failure_mode = "closed"

    async def run(self, stage_input: StageInput) -> Pass:
        if HANG_MARK in stage_input.message.content:
            await asyncio.sleep(3600)
        return Pass()


class Garbage:
    """Returns a string, which is not a verdict."""

    name = "test-garbage"
    position = "post_call"
    time_limit_seconds = 1.0
    failure_mode = "closed"

    async def run(self, stage_input: StageInput) -> str:
        return "looks fine to me"


class BlockAll:
    name = "test-block"
    position = "pre_call"
    time_limit_seconds = 1.0
    failure_mode = "closed"

    async def run(self, stage_input: StageInput) -> Block:
        return Block("test-block refuses every input")


class RegenerateOnce:
    """Asks for a new answer unless this one is already the regenerated one."""

    name = "test-regenerate"
    position = "post_call"
    time_limit_seconds = 1.0
    failure_mode = "closed"

    async def run(self, stage_input: StageInput) -> Regenerate | Pass:
        return Pass() if stage_input.regenerated else Regenerate("test-regenerate wants a second answer")
