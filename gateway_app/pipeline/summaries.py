"""Rolling conversation summaries (profile `post_processing: ["summarize"]`): what the model is told of the
turns that fell out of the context budget. Pure: which turns are new to the summary, the request that
folds them into it, and where the summary goes in the system prompt.
"""

from __future__ import annotations

from typing import Sequence

from agents_tables.conversations import Conversation, Turn
from gateway_app.contract.events import AgentProfile
from gateway_app.providers.base import ChatMessage, ChatRequest

MAX_TOKENS = 300  # of a summary (the instruction asks for at most 150 words)
MAX_TRANSCRIPT_CHARS = 24_000  # of the turns folded in by one call (the oldest are cut first)
INSTRUCTION = ("You keep a running summary of a conversation between a user and an assistant. Fold the new "
               "part into the summary so far. Keep facts, names, numbers, decisions and open questions; "
               "drop greetings and small talk. At most 150 words. Write only the summary.")
PROMPT_HEADER = "Summary of the earlier conversation (older turns are not shown):"


def unsummarized(conv: Conversation | None, dropped: Sequence[Turn]) -> list[Turn]:
    """The dropped turns newer than what the summary covers (all of them when the turn it names is no
    longer stored: it was older than every stored turn)."""
    if conv is None or not dropped:
        return []
    order = {turn.id: index for index, turn in enumerate(conv.turns)}
    through = order.get(conv.summary_through, -1) if conv.summary_through else -1
    return [turn for turn in dropped if order.get(turn.id, -1) > through]


def transcript(turns: Sequence[Turn]) -> str:
    lines = []
    for turn in turns:
        if turn.user:
            lines.append(f"User: {turn.user}")
        for result in turn.results:
            lines.append(f"Tool result: {result.content}")
        for call in turn.tool_calls:
            lines.append(f"Assistant called {call.name}({call.arguments})")
        if turn.reply:
            lines.append(f"Assistant: {turn.reply}")
    return "\n".join(lines)[-MAX_TRANSCRIPT_CHARS:]


def request(profile: AgentProfile, summary: str, turns: Sequence[Turn]) -> ChatRequest:
    so_far = f"Summary so far:\n{summary}\n\n" if summary else ""
    content = f"{so_far}New part of the conversation:\n{transcript(turns)}"
    return ChatRequest(model=profile.model, system_prompt=INSTRUCTION, messages=(ChatMessage("user", content),),
                       temperature=0.0, max_tokens=MAX_TOKENS, options=profile.options)


def with_summary(system_prompt: str, summary: str) -> str:
    return "\n\n".join(part for part in (system_prompt, f"{PROMPT_HEADER}\n{summary}") if part)
