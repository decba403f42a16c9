"""Deterministic output ids: a redelivered message yields the same ids, so consumers can drop duplicates."""

from __future__ import annotations

import uuid

_NAMESPACE = uuid.UUID("6f1c1f7e-6d1c-4a8e-9a0e-3b7f1e2a9c11")


def reply_id(message_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"reply:{message_id}"))


def billing_event_id(message_id: str, call_index: int = 0, generation: int = 0) -> str:
    """One id per billed answer of a message: the call index counts fallbacks, the generation counts
    regenerations a post-call stage asked for (0, the first answer, keeps the ids of contract v1)."""
    suffix = f":gen{generation}" if generation else ""
    return str(uuid.uuid5(_NAMESPACE, f"billing:{message_id}:{call_index}{suffix}"))


def rerun_billing_id(event_id: str, origin: str) -> str:
    """A billing event of a message run again after it had failed (a replay, at a new input offset):
    its calls are new ones, so their ids must differ from the failed run's (same message id, same call
    index), and stay the same for every redelivery of this run (the origin is its input record)."""
    return str(uuid.uuid5(_NAMESPACE, f"{event_id}:run:{origin}"))


def chunk_id(message_id: str, stream_id: str, seq: int) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"chunk:{message_id}:{stream_id}:{seq}"))


def dlq_id(topic: str, partition: int, offset: int, code: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"dlq:{topic}:{partition}:{offset}:{code}"))


def source_message_id(topic: str, partition: int, offset: int) -> str:
    """Stands in for a missing `message_id` so that an error reply still gets a stable id."""
    return f"{topic}/{partition}/{offset}"


def moderation_event_id(subject: str, stage: str, check: str, index: int) -> str:
    """`subject`: the message id (checks) or the signal id (signals); `index` counts events of one kind."""
    return str(uuid.uuid5(_NAMESPACE, f"moderation:{subject}:{stage}:{check}:{index}"))


def judge_billing_id(message_id: str) -> str:
    """The billing event of a message's ranking judge call (at most one per message)."""
    return str(uuid.uuid5(_NAMESPACE, f"billing:{message_id}:judge"))


def summary_billing_id(message_id: str) -> str:
    """The billing event of a message's conversation-summary call (at most one per message)."""
    return str(uuid.uuid5(_NAMESPACE, f"billing:{message_id}:summary"))


def moderation_billing_id(message_id: str, index: int) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"billing:{message_id}:moderation:{index}"))


def consultation_id(asking_turn: str, tool_call_id: str) -> str:
    """A collaborator's message id for one consult call of an agent's turn: the same on every redelivery,
    so the collaborator answers it once."""
    return str(uuid.uuid5(_NAMESPACE, f"consultation:{asking_turn}:{tool_call_id}"))


def consulted_id(asking_turn: str) -> str:
    """The id of the results of a turn's consultations (the asker's turn for them)."""
    return str(uuid.uuid5(_NAMESPACE, f"consulted:{asking_turn}"))


def transcription_billing_id(message_id: str) -> str:
    """The billing event of a message's transcription (audio messages: one per message)."""
    return str(uuid.uuid5(_NAMESPACE, f"billing:{message_id}:transcription"))


def speech_billing_id(message_id: str) -> str:
    """The billing event of a message's spoken reply (profile `voice`: one per message)."""
    return str(uuid.uuid5(_NAMESPACE, f"billing:{message_id}:speech"))


def audio_id(message_id: str) -> str:
    """The spoken reply's id in `ai-message-audio` (the same on every run of the message)."""
    return str(uuid.uuid5(_NAMESPACE, f"audio:{message_id}"))
