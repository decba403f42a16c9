"""Which messages are answered: the rule `reprocess` and `dlq replay` use to send a message again or not.

A message counts as answered once any of its replies has a final status:

- `ok`: the answer;
- `blocked`: a check refused the input or the answer; that is the answer (the pipeline records it so);
- `rate_limited`: the gateway decided, by the agent's own limits (`exceeds_tpm` can never fit,
  `budget_exceeded` is the agent's spending limit, `backlog_full` sheds load), and told the room. Sending
  it again would spend what the limit refused, or fail the same way, long after the conversation moved on;
- `agent_unavailable`: no profile, or a disabled agent, and the room was told so; running it again could
  answer for an agent someone switched off.

So only messages with no reply at all, or with nothing but `error` replies (provider failures, timeouts,
internal errors: what an outage or a bug leaves behind), go again. The last two kinds can still be sent
again on purpose, by their code: `gateway dlq replay --code backlog_full ...`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any, Iterable

ANSWERED_STATUSES = frozenset({"ok", "blocked", "rate_limited", "agent_unavailable"})


def is_answered(statuses: Iterable[str]) -> bool:
    return bool(ANSWERED_STATUSES.intersection(statuses))


class ReplyIndex:
    """The statuses of each message id's replies, from raw reply records."""

    def __init__(self) -> None:
        self.statuses: dict[str, set[str]] = defaultdict(set)
        self.unreadable = 0

    def add(self, value: bytes | None) -> None:
        try:
            reply = json.loads(value or b"")
            self.statuses[str(reply["message_id"])].add(str(reply["status"]))
        except (ValueError, KeyError, TypeError):
            self.unreadable += 1

    def add_all(self, values: Iterable[bytes | None]) -> "ReplyIndex":
        for value in values:
            self.add(value)
        return self

    def answered(self, message_id: str) -> bool:
        return is_answered(self.statuses.get(message_id, ()))

    def seen(self, message_id: str) -> bool:
        return message_id in self.statuses


def ids_of(value: bytes | None) -> tuple[str, str] | None:
    """(message id, agent id) of an input record (either case of field names), or None when the record
    is not a JSON object carrying both (it cannot be matched to its replies)."""
    try:
        data: Any = json.loads(value or b"")
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    message_id = data.get("messageId", data.get("message_id"))
    agent_id = data.get("agentId", data.get("agent_id"))
    if not isinstance(message_id, str) or not isinstance(agent_id, str) or not message_id or not agent_id:
        return None
    return message_id, agent_id
