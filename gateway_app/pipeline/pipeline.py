"""The message pipeline: the ordered list of stages every admitted message goes through.

    admission -> transcribe -> conversation turn -> dedupe -> collaboration in -> prompt -> summarize
              -> moderation in -> pre-call checks -> cache -> draft -> provider call -> ranking -> collaborate
              -> post-call checks -> reply format -> moderation out -> sentiment -> speak -> settle usage
              -> outputs
              (then the dispatcher acks, in offset order)

Each stage is a module under `pipeline/stages/` behind the `Stage` interface, working on one
`MessageContext`. A stage that raises a `GatewayError` ends the message: `FailureOutputs` sends its
reply (and DLQ record); a stage that raises `Finished` ends it quietly (a copy was already answered).
A new capability is a new stage in `build_stages` or a plugin stage at one of the check positions, not
more lines in an existing one.
"""

from __future__ import annotations

import logging
import time
from typing import Sequence

from gateway_app.contract.events import ErrorCode
from gateway_app.errors import GatewayError
from gateway_app.moderation.gate import HeldPipe
from gateway_app.observability import tracing
from gateway_app.pipeline.context import MessageContext
from gateway_app.pipeline.stage import Finished, Services, Stage
from gateway_app.pipeline.stages.admission import Admission, ConversationTurn, SettleUsage
from gateway_app.pipeline.stages.cache import ResponseCache
from gateway_app.pipeline.stages.checks import PostCallChecks, PreCallChecks
from gateway_app.pipeline.stages.collaborate import Collaborate, CollaborationIn, Delegation, Draft
from gateway_app.pipeline.stages.dedupe import Dedupe
from gateway_app.pipeline.stages.moderation import Checking, ModerationIn, ModerationOut, StreamGate
from gateway_app.pipeline.stages.outputs import FailureOutputs, Outputs
from gateway_app.pipeline.stages.prompt import Prompt
from gateway_app.pipeline.stages.provider_call import ProviderCall
from gateway_app.pipeline.stages.ranking import Ranking
from gateway_app.pipeline.stages.reply_format import ReplyFormat
from gateway_app.pipeline.stages.sentiment import Sentiment
from gateway_app.pipeline.stages.speak import Speak
from gateway_app.pipeline.stages.summary import Summarize
from gateway_app.pipeline.stages.transcribe import Transcribe

log = logging.getLogger(__name__)


def build_stages(services: Services) -> tuple[list[Stage], FailureOutputs]:
    checking = Checking(services)
    call, outputs = ProviderCall(services, StreamGate(services, checking).pipe_for), Outputs(services)
    delegation = Delegation(services, outputs)
    stages: list[Stage] = [
        Admission(services),
        Transcribe(services, call),
        ConversationTurn(services),
        Dedupe(services),
        CollaborationIn(services),
        Prompt(services),
        Summarize(services, call),
        ModerationIn(services, checking),
        PreCallChecks(services),
        ResponseCache(services),
        Draft(services, delegation),
        call,
        Ranking(services, checking, call),
        Collaborate(services, delegation),
        PostCallChecks(services, call),
        ReplyFormat(services, call),
        ModerationOut(services, checking, call),
        Sentiment(services),
        Speak(services, call),
        SettleUsage(services),
        outputs,
    ]
    return stages, FailureOutputs(services, outputs)


class Pipeline:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.stages: Sequence[Stage]
        self.stages, self.failures = build_stages(services)

    @property
    def stage_names(self) -> list[str]:
        return [stage.name for stage in self.stages]

    async def run(self, ctx: MessageContext) -> None:
        """Every stage in order, or the failure outputs; a cancellation (rebalance) passes through."""
        try:
            for stage in self.stages:
                started, ctx.stage = time.monotonic(), stage.name
                try:
                    with tracing.stage(stage.name, Finished):  # `Finished` ends the message on purpose: no error
                        await stage.run(ctx)
                finally:  # also a stage that ended the message: its time (a wait, say) is accounted for
                    ctx.timings[stage.name] = (time.monotonic() - started) * 1000
        except Finished:
            pass
        except GatewayError as error:
            await self.failures.publish(ctx, error)
        except Exception as exc:  # a bug must not lose the message: answer with an error and dead-letter it
            log.exception("flow.internal_error message=%s", ctx.message.message_id)
            await self.failures.publish(ctx, GatewayError(ErrorCode.INTERNAL_ERROR, f"internal error: {exc!r}"))
        finally:
            if isinstance(ctx.stream_pipe, HeldPipe) and not ctx.stream_pipe.closed:
                ctx.stream_pipe.cancel()  # cancelled before its end (a rebalance): nothing more goes out
            if ctx.conversation_turn is not None:
                self.services.turns.conversations.release(ctx.conversation, ctx.conversation_turn)
            self.services.budgets.release(ctx.budget_hold)  # its usage rows are written (or it ended without)
