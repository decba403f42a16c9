"""What the model sees of a conversation, and what a new turn adds to it. Pure.

The request is the system prompt, then the newest whole exchanges that fit the profile's `context`
(at most `max_turns` turns and `max_tokens` estimated tokens; the oldest exchange goes first, never half
of one), then the new input. For tool results, the exchange they continue is always sent whole, last,
with the new results after it (every provider wants a tool call followed by its results).

Token counts are estimates (`windows.estimate_tokens`: characters / 4) multiplied by the conversation's
correction ratio, which every call resets to the provider's reported input tokens over the estimate of
what was sent. Output tokens are stored as the provider reported them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

from agents_tables import windows
from agents_tables.conversations import Conversation, ToolOutput, Turn, exchanges
from gateway_app.contract.events import ContextSpec, ErrorCode, ToolResults
from gateway_app.errors import GatewayError
from gateway_app.providers.base import ChatMessage

NO_RESULT = "no result was given for this tool call"
MIN_RATIO, MAX_RATIO = 0.25, 4.0


def raw_estimate_text(text: str) -> int:
    return windows.estimate_tokens(text)


def raw_estimate(message: ChatMessage) -> int:
    args = sum(len(c.arguments) + len(c.name) for c in message.tool_calls)
    return windows.estimate_tokens(message.content) + math.ceil(args / windows.CHARS_PER_TOKEN)


def render(group: list[Turn], continued: str | None = None) -> list[ChatMessage]:
    """One exchange in the normal form. A turn's tool calls are rendered only when the next turn of the
    exchange (or, for `continued`, the request being built) answers them; otherwise only its text."""
    messages: list[ChatMessage] = []
    for index, turn in enumerate(group):
        if turn.kind == "message":
            messages.append(ChatMessage("user", turn.user))
        else:
            messages.extend(tool_messages(turn.results))
        following = group[index + 1] if index + 1 < len(group) else None
        answered = (following is not None and following.reply_to == turn.id) or turn.id == continued
        calls = turn.tool_calls if answered else ()
        if turn.reply or calls:
            messages.append(ChatMessage("assistant", turn.reply, tool_calls=calls))
    return messages


def tool_messages(results: Iterable[ToolOutput]) -> list[ChatMessage]:
    return [ChatMessage("tool", r.content, tool_call_id=r.tool_call_id, is_error=r.is_error) for r in results]


def newest_fitting(groups: list[list[Turn]], max_turns: int, max_tokens: int) -> list[list[Turn]]:
    """The newest exchanges, whole, while they fit both budgets; stops at the first that does not."""
    kept: list[list[Turn]] = []
    turns = tokens = 0
    for group in reversed(groups):
        turns += len(group)
        tokens += sum(t.tokens for t in group)
        if turns > max_turns or tokens > max_tokens:
            break
        kept.append(group)
    return list(reversed(kept))


@dataclass(frozen=True)
class Window:
    messages: tuple[ChatMessage, ...]  # history + the new input, in order
    history_turns: int                 # earlier turns sent (the continued exchange included)
    new_input: tuple[ChatMessage, ...]  # what this request adds (its estimate becomes the turn's input)
    dropped: tuple[Turn, ...] = ()     # stored turns left out (the context budget), oldest first


def window(conv: Conversation | None, spec: ContextSpec | None, current_id: str,
           new_input: list[ChatMessage], continued: str | None = None) -> Window:
    """The messages of a request. `continued`: the turn whose tool calls `new_input` answers."""
    turns = [t for t in (conv.turns if conv else ()) if t.id != current_id]  # a redelivery is not history
    groups = exchanges(turns)
    chain = next((g for g in groups if any(t.id == continued for t in g)), []) if continued else []
    others = [g for g in groups if g is not chain]
    history = newest_fitting(others, spec.max_turns, spec.max_tokens) if spec and spec.max_turns else []
    messages = [m for g in history for m in render(g)] + render(chain, continued) + list(new_input)
    sent = {t.id for g in history for t in g}
    dropped = tuple(t for g in others for t in g if t.id not in sent)
    return Window(tuple(messages), sum(map(len, history)) + len(chain), tuple(new_input), dropped)


def checked_results(conv: Conversation | None, event: ToolResults) -> tuple[ToolOutput, ...]:
    """The results as they will be stored: every call of the turn answered, in its order (a call the
    event leaves out gets an error result, so the exchange stays valid for every provider). Raises
    `GatewayError` for results to calls the conversation does not have or that already have results."""
    asked = conv.find(event.reply_to) if conv else None
    if asked is None or not asked.tool_calls:
        raise GatewayError(ErrorCode.UNKNOWN_TOOL_CALL,
                           f"no tool calls of message {event.reply_to!r} in this room's conversation")
    ids = [c.id for c in asked.tool_calls]
    given = {}
    for result in event.results:
        if result.tool_call_id not in ids:
            raise GatewayError(ErrorCode.UNKNOWN_TOOL_CALL, f"message {event.reply_to!r} made no tool call "
                                                            f"{result.tool_call_id!r}")
        if result.tool_call_id in given:
            raise GatewayError(ErrorCode.TOOL_CALL_ANSWERED, f"tool call {result.tool_call_id!r} is answered "
                                                             "twice in this event")
        given[result.tool_call_id] = ToolOutput(result.tool_call_id, result.content, result.is_error)
    done = sorted(set(ids) & conv.answered_calls())
    if done:
        raise GatewayError(ErrorCode.TOOL_CALL_ANSWERED, f"tool calls {done} already have their results")
    return tuple(given.get(i, ToolOutput(i, NO_RESULT, True)) for i in ids)


def prompt_estimate(system_prompt: str, messages: Iterable[ChatMessage]) -> int:
    """Uncorrected estimate of what is sent (compared with the reported input tokens afterwards)."""
    return windows.estimate_tokens(system_prompt) + sum(raw_estimate(m) for m in messages)


def corrected(ratio: float, estimate: int) -> int:
    return math.ceil(estimate * ratio)


def new_ratio(reported_input: int, estimate: int, old: float) -> float:
    """The provider's count over our estimate of the same prompt; kept when the provider reported none."""
    if reported_input <= 0 or estimate <= 0:
        return old
    return min(MAX_RATIO, max(MIN_RATIO, reported_input / estimate))
