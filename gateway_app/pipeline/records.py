"""Build the output events (reply, chunk, billing, dead letter) from what the pipeline knows. Pure."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from agents_tables.response_cache import CachedAnswer
from gateway_app.contract import ids
from gateway_app.contract.events import (
    AgentProfile,
    AudioChunk,
    BillingEvent,
    CollaborationInfo,
    DeadLetter,
    ErrorCode,
    ErrorInfo,
    MessageCreated,
    MessageReply,
    ModerationInfo,
    ReplyChunk,
    RankingInfo,
    ReplyStatus,
    SentimentInfo,
    StageNote,
    ToolCallOut,
    Usage,
)
from gateway_app.contract.internal import Origin
from gateway_app.pipeline.caller import Answer
from gateway_app.pricing.prices import PriceTable
from gateway_app.providers.base import ChatResult, TokenUsage


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def usage_of(tokens: TokenUsage) -> Usage:
    return Usage(input_tokens=tokens.input_tokens, output_tokens=tokens.output_tokens,
                 cached_input_tokens=tokens.cached_input_tokens, reasoning_tokens=tokens.reasoning_tokens)


def _reply(message: MessageCreated, profile: AgentProfile | None, *, content: str, status: ReplyStatus,
           error: ErrorInfo | None, usage: Usage, latency_ms: int, **answered: Any) -> MessageReply:
    return MessageReply(
        reply_id=ids.reply_id(message.message_id),
        message_id=message.message_id,
        agent_id=message.agent_id,
        room_id=message.room_id,
        user_id=message.user_id,
        content=content,
        status=status,
        error=error,
        provider=answered.pop("provider", profile.provider if profile else None),
        model=answered.pop("model", profile.model if profile else None),
        profile_version=profile.version if profile else None,
        usage=usage,
        latency_ms=latency_ms,
        created_at=now_utc(),
        **answered,
    )


def ok_reply(message: MessageCreated, profile: AgentProfile, result: ChatResult, answer: Answer | None,
             notes: list[StageNote], latency_ms: int, attempts: int, *, reply_to: str | None = None,
             cached: CachedAnswer | None = None, truncated: bool = False,
             moderation: ModerationInfo | None = None, language: str | None = None,
             sentiment: SentimentInfo | None = None, ranking: RankingInfo | None = None,
             collaboration: CollaborationInfo | None = None, **voice: Any) -> MessageReply:
    """`answer` is the provider answer the result came from; None when a stage answered (a cache hit
    names the provider and model whose answer it kept). `voice`: the reply's transcript and audio fields."""
    target = answer.target if answer else None
    provider = target.provider if target else (cached.provider if cached else None)
    model = target.model if target else (cached.model if cached else None)
    return _reply(message, profile, content=result.text, status=ReplyStatus.OK, error=None,
                  usage=usage_of(result.usage), latency_ms=latency_ms, provider=provider, model=model,
                  fallback_index=target.fallback_index if target else None, attempts=attempts,
                  finish_reason=result.finish_reason, provider_request_id=result.request_id,
                  tool_calls=[ToolCallOut(id=c.id, name=c.name, arguments=c.arguments) for c in result.tool_calls],
                  stages=list(notes), reply_to=reply_to, cache_hit=cached is not None, truncated=truncated,
                  moderation=moderation, language=language, sentiment=sentiment, ranking=ranking,
                  collaboration=collaboration, **voice)


def failed_reply(message: MessageCreated, profile: AgentProfile | None, *, status: ReplyStatus, code: ErrorCode,
                 reason: str, latency_ms: int = 0, attempts: int = 0,
                 notes: list[StageNote] | None = None, reply_to: str | None = None,
                 moderation: ModerationInfo | None = None, transcript: str | None = None,
                 collaboration: CollaborationInfo | None = None) -> MessageReply:
    return _reply(message, profile, content="", status=status, error=ErrorInfo(code=code, message=reason),
                  usage=Usage(), latency_ms=latency_ms, attempts=attempts, stages=list(notes or ()),
                  reply_to=reply_to, moderation=moderation, transcript=transcript, collaboration=collaboration)


def rejected_input_reply(*, message_id: str, agent_id: str, room_id: str, user_id: str | None, code: ErrorCode,
                         reason: str) -> MessageReply:
    """An input the intake could not read as a message: the room is still told."""
    return MessageReply(reply_id=ids.reply_id(message_id), message_id=message_id, agent_id=agent_id,
                        room_id=room_id, user_id=user_id, content="", status=ReplyStatus.ERROR,
                        error=ErrorInfo(code=code, message=reason), provider=None, model=None,
                        profile_version=None, usage=Usage(), latency_ms=0, created_at=now_utc())


def reply_chunk(message: MessageCreated, stream_id: str, attempt: int, seq: int, delta: str,
                final: bool, blocked: bool = False) -> ReplyChunk:
    return ReplyChunk(
        chunk_id=ids.chunk_id(message.message_id, stream_id, seq), message_id=message.message_id,
        reply_id=ids.reply_id(message.message_id), agent_id=message.agent_id, room_id=message.room_id,
        stream_id=stream_id, attempt=attempt, seq=seq, delta=delta, final=final, created_at=now_utc(),
        blocked=blocked,
    )


def billing(message: MessageCreated, answer: Answer, prices: PriceTable, generation: int = 0) -> BillingEvent:
    """Billed to the provider and model that answered (a fallback's, if one did)."""
    provider, model, usage = answer.target.provider, answer.target.model, answer.result.usage
    return BillingEvent(
        event_id=ids.billing_event_id(message.message_id, answer.target.fallback_index, generation),
        message_id=message.message_id,
        agent_id=message.agent_id,
        user_id=message.user_id,
        room_id=message.room_id,
        provider=provider,
        model=model,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cost_usd=f"{prices.cost(provider, model, usage.input_tokens, usage.output_tokens, usage.cached_input_tokens):f}",
        price_version=prices.version,
        created_at=now_utc(),
        cached_input_tokens=usage.cached_input_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        fallback_index=answer.target.fallback_index,
        provider_request_id=answer.result.request_id,
    )


def cache_billing(message: MessageCreated, cached: CachedAnswer, prices: PriceTable) -> BillingEvent:
    """A cache hit: nothing used, cost 0; the tokens and cost of the call it saved."""
    return BillingEvent(
        event_id=ids.billing_event_id(message.message_id), message_id=message.message_id,
        agent_id=message.agent_id, user_id=message.user_id, room_id=message.room_id,
        provider=cached.provider, model=cached.model, input_tokens=0, output_tokens=0, cost_usd="0",
        price_version=prices.version, created_at=now_utc(), cache_hit=True,
        saved_input_tokens=cached.input_tokens, saved_output_tokens=cached.output_tokens,
        saved_cost_usd=cached.cost_usd,
    )


def unit_billing(message: MessageCreated, event_id: str, provider: str, model: str, units: str, quantity: int,
                 prices: PriceTable, request_id: str | None = None) -> BillingEvent:
    """A call priced per unit (a transcription's seconds, a speech's characters), not per token."""
    return BillingEvent(
        event_id=event_id, message_id=message.message_id, agent_id=message.agent_id, user_id=message.user_id,
        room_id=message.room_id, provider=provider, model=model, input_tokens=0, output_tokens=0,
        cost_usd=f"{prices.unit_cost(provider, model, units, quantity):f}", price_version=prices.version,
        created_at=now_utc(), provider_request_id=request_id, units=units, quantity=quantity,
    )


def audio_chunk(message: MessageCreated, audio_id: str, seq: int, final: bool, audio_format: str,
                data_b64: str) -> AudioChunk:
    return AudioChunk(audio_id=audio_id, reply_id=ids.reply_id(message.message_id), message_id=message.message_id,
                      agent_id=message.agent_id, room_id=message.room_id, seq=seq, final=final, format=audio_format,
                      data_b64=data_b64, created_at=now_utc())


def billable(answers: list[Answer], message: MessageCreated, prices: PriceTable) -> list[BillingEvent]:
    """One billing event per provider answer that used tokens."""
    return [billing(message, answer, prices, generation) for generation, answer in enumerate(answers)
            if answer.result.usage.input_tokens or answer.result.usage.output_tokens]


def dead_letter(origin: Origin, code: ErrorCode, reason: str, *, attempts: int = 0, message_id: str | None = None,
                agent_id: str | None = None, history: list[dict[str, Any]] | None = None) -> DeadLetter:
    return DeadLetter(
        dlq_id=ids.dlq_id(origin.topic, origin.partition, origin.offset, code),
        source_topic=origin.topic,
        source_partition=origin.partition,
        source_offset=origin.offset,
        key_b64=origin.key_b64,
        value_b64=origin.value_b64,
        error_code=code,
        reason=reason,
        attempts=attempts,
        message_id=message_id,
        agent_id=agent_id,
        failed_at=now_utc(),
        attempt_history=history or [],
    )
