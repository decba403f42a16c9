"""One vocabulary for why an answer ended, whatever the provider called it."""

from __future__ import annotations

FINISH_REASONS = {
    # Anthropic Messages
    "end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
    "refusal": "content_filter", "pause_turn": "stop",
    # Cohere Chat v2
    "COMPLETE": "stop", "STOP_SEQUENCE": "stop", "MAX_TOKENS": "length", "TOOL_CALL": "tool_calls",
}


def normalize(reason: str | None) -> str:
    """OpenAI's names (stop, length, tool_calls, content_filter) are the normal form; others map onto them."""
    if not reason:
        return "stop"
    return FINISH_REASONS.get(reason, reason)
