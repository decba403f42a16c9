"""The moderation outputs a message or a signal produces: events for `ai-moderation-events`, the reply's
`moderation` section, the billing of a provider moderation call. Pure."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Iterable

from agents_tables.moderation import ActiveSignal
from gateway_app.contract import ids
from gateway_app.contract.events import BillingEvent, MessageCreated, ModerationEvent, ModerationInfo
from gateway_app.contract.moderation import SignalRef, Verdict


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def check_event(message: MessageCreated, verdict: Verdict, index: int, *, scores: dict[str, float] | None = None,
                duration_ms: int = 0, signal_id: str | None = None, content: str | None = None) -> ModerationEvent:
    return ModerationEvent(
        event_id=ids.moderation_event_id(message.message_id, verdict.stage, verdict.check, index),
        message_id=message.message_id, agent_id=message.agent_id, room_id=message.room_id,
        user_id=message.user_id, stage=verdict.stage, check=verdict.check, verdict=verdict.verdict,
        action=verdict.action, categories=list(verdict.categories), scores=scores or {}, signal_id=signal_id,
        duration_ms=duration_ms, created_at=now_utc(), content=content)


def signal_event(agent_id: str, room_id: str, signal: ActiveSignal, verdict: str, action: str,
                 user_id: str | None = None) -> ModerationEvent:
    """A signal applied at its place in the agent's stream, or expired at the end of its ttl."""
    return ModerationEvent(
        event_id=ids.moderation_event_id(f"{signal.signal_id}:{agent_id}", "signal", verdict, 0),
        message_id=None, agent_id=agent_id, room_id=room_id, user_id=user_id, stage="signal",
        check=signal.kind.value, verdict=verdict, action=action, categories=list(signal.categories),
        scores={"score": signal.score} if signal.score is not None else {}, signal_id=signal.signal_id,
        created_at=now_utc())


def info(signals: Iterable[ActiveSignal], verdicts: list[Verdict]) -> ModerationInfo | None:
    refs = [SignalRef(signal_id=s.signal_id, signal=s.kind, severity=s.severity) for s in signals]
    return ModerationInfo(signals=refs, verdicts=list(verdicts)) if refs or verdicts else None


def moderation_billing(message: MessageCreated, model: str, cost: Decimal, price_version: str, index: int,
                       request_id: str | None) -> BillingEvent:
    """A provider moderation call, billed like any provider call (OpenAI charges nothing for it: 0)."""
    return BillingEvent(
        event_id=ids.moderation_billing_id(message.message_id, index), message_id=message.message_id,
        agent_id=message.agent_id, user_id=message.user_id, room_id=message.room_id, provider="openai",
        model=model, input_tokens=0, output_tokens=0, cost_usd=f"{cost:f}", price_version=price_version,
        created_at=now_utc(), provider_request_id=request_id)
