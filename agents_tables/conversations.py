"""Conversation rows: one per agent + room, the turns the model may see again.

A turn is one input and the agent's answer to it, stored only once the answer was published as `ok`
(a failed, blocked or rate-limited message adds nothing, so the model never reads an error as its own
words). Its id is the input's message id: a redelivered message cannot append twice. Two kinds:

- `message`: a user message and the agent's reply (text and/or tool calls);
- `tool_results`: the platform's results for the tool calls of an earlier turn (`reply_to`), and the
  agent's reply to them. It belongs to the *exchange* of the message that started the tool calls.

An exchange (a message and its tool rounds) is kept or dropped whole: a tool call is never separated from
its results, which every provider refuses.

Bytes: a header line `<last_at_ms> <ttl_ms> <total_tokens>` (the sweep and the admission's token
reservation read only that), then the row as compact JSON.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Iterator, Literal

from gateway_app.providers.base import ToolCall

log = logging.getLogger(__name__)
SEPARATOR = "\x1f"  # between agent id and room id in the key (neither may contain it: ids are printable)


def key_of(agent_id: str, room_id: str) -> str:
    return f"{agent_id}{SEPARATOR}{room_id}"


def split_key(key: str) -> tuple[str, str]:
    agent_id, _, room_id = key.partition(SEPARATOR)
    return agent_id, room_id


@dataclass(frozen=True)
class ToolOutput:
    tool_call_id: str
    content: str
    is_error: bool = False


@dataclass(frozen=True)
class Turn:
    id: str
    kind: Literal["message", "tool_results"]
    at_ms: int
    tokens: int                                   # input (estimated, corrected) + output (as reported)
    user: str = ""                                # kind message: what the user said
    results: tuple[ToolOutput, ...] = ()          # kind tool_results: every call of `reply_to` answered
    reply_to: str | None = None                   # kind tool_results: the turn whose tool calls these answer
    reply: str = ""                               # the agent's text
    tool_calls: tuple[ToolCall, ...] = ()         # the functions the agent asked for

    def size(self) -> int:
        return len(self.user) + len(self.reply) + sum(len(r.content) for r in self.results) + \
            sum(len(c.arguments) + len(c.name) for c in self.tool_calls)


@dataclass(frozen=True)
class Conversation:
    turns: tuple[Turn, ...] = ()
    last_at_ms: int = 0
    ttl_ms: int = 0
    # Reported input tokens / estimated input tokens of the last call: corrects the next estimates.
    ratio: float = 1.0
    ids: frozenset[str] = field(default=frozenset(), compare=False)
    # Profile `post_processing: ["summarize"]`: a summary of the turns that fell out of the context budget,
    # and the id of the newest turn it covers.
    summary: str = ""
    summary_through: str | None = None

    def has(self, turn_id: str) -> bool:
        return turn_id in self.ids

    def find(self, turn_id: str) -> Turn | None:
        return next((t for t in self.turns if t.id == turn_id), None)

    def answered_calls(self) -> set[str]:
        return {r.tool_call_id for t in self.turns for r in t.results}


def conversation(turns: Iterable[Turn], last_at_ms: int, ttl_ms: int, ratio: float, summary: str = "",
                 summary_through: str | None = None) -> Conversation:
    turns = tuple(turns)
    return Conversation(turns, last_at_ms, ttl_ms, ratio, frozenset(t.id for t in turns), summary,
                        summary_through if summary else None)


def exchanges(turns: Iterable[Turn]) -> list[list[Turn]]:
    """Turns grouped by the message that started them, in the order those messages came; within an
    exchange, in the order they were appended. A tool-results turn whose chain leads nowhere known (its
    root was trimmed) is dropped: it could only be rendered as an orphan."""
    groups: dict[str, list[Turn]] = {}
    root_of: dict[str, str] = {}
    for turn in turns:
        if turn.kind == "message":
            root_of[turn.id] = turn.id
            groups[turn.id] = [turn]
        elif turn.reply_to in root_of:
            root = root_of[turn.reply_to]
            root_of[turn.id] = root
            groups[root].append(turn)
    return list(groups.values())


def root_id(turns: Iterable[Turn], turn_id: str) -> str | None:
    """The id of the message that started `turn_id`'s exchange."""
    for group in exchanges(turns):
        if any(t.id == turn_id for t in group):
            return group[0].id
    return None


# ---- bytes ---------------------------------------------------------------------------------------

def _turn_json(turn: Turn) -> dict[str, Any]:
    row: dict[str, Any] = {"id": turn.id, "k": turn.kind[0], "at": turn.at_ms, "t": turn.tokens}
    if turn.user:
        row["u"] = turn.user
    if turn.results:
        row["r"] = [[r.tool_call_id, r.content, 1 if r.is_error else 0] for r in turn.results]
    if turn.reply_to is not None:
        row["to"] = turn.reply_to
    if turn.reply:
        row["a"] = turn.reply
    if turn.tool_calls:
        row["c"] = [[c.id, c.name, c.arguments] for c in turn.tool_calls]
    return row


def _turn_of(row: dict[str, Any]) -> Turn:
    return Turn(
        id=row["id"], kind="message" if row["k"] == "m" else "tool_results", at_ms=int(row["at"]),
        tokens=int(row["t"]), user=row.get("u", ""),
        results=tuple(ToolOutput(i, c, bool(e)) for i, c, e in row.get("r", ())),
        reply_to=row.get("to"), reply=row.get("a", ""),
        tool_calls=tuple(ToolCall(i, n, a) for i, n, a in row.get("c", ())),
    )


def encode(conv: Conversation) -> bytes:
    body: dict[str, Any] = {"v": 1, "ratio": round(conv.ratio, 4), "turns": [_turn_json(t) for t in conv.turns]}
    if conv.summary:
        body["s"], body["st"] = conv.summary, conv.summary_through
    head = f"{conv.last_at_ms} {conv.ttl_ms} {sum(t.tokens for t in conv.turns)}\n".encode()
    return head + json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def decode(row: bytes) -> Conversation:
    head, _, body = row.partition(b"\n")
    last_at_ms, ttl_ms = (int(part) for part in head.split()[:2])
    data = json.loads(body)
    return conversation((_turn_of(t) for t in data["turns"]), last_at_ms, ttl_ms, float(data.get("ratio", 1.0)),
                        data.get("s", ""), data.get("st"))


def idle_since(row: bytes) -> tuple[int, int]:
    """(last_at_ms, ttl_ms) from the header alone: the sweep reads every row and decodes none."""
    last_at_ms, ttl_ms, _ = header(row)
    return last_at_ms, ttl_ms


def header(row: bytes) -> tuple[int, int, int]:
    """(last_at_ms, ttl_ms, total_tokens), without decoding the turns."""
    last_at_ms, ttl_ms, total_tokens = (int(part) for part in row[: row.index(b"\n")].split())
    return last_at_ms, ttl_ms, total_tokens


# ---- rules ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Caps:
    max_turns: int
    max_bytes: int


def appended(conv: Conversation | None, turn: Turn, ttl_ms: int, ratio: float, caps: Caps,
             summary: tuple[str, str] | None = None) -> Conversation | None:
    """The conversation with `turn` at its end, trimmed to the caps (oldest whole exchanges first; the
    newest exchange is always kept), with `summary` (text, id of the newest turn it covers) in place of
    the one it had, if given. None if the turn is already there (a redelivery)."""
    conv = conv or Conversation()
    if conv.has(turn.id):
        return None
    turns = list(conv.turns) + [turn]
    groups = exchanges(turns)
    while len(groups) > 1 and (sum(map(len, groups)) > caps.max_turns or
                               sum(t.size() for g in groups for t in g) > caps.max_bytes):
        groups.pop(0)
    kept = {t.id for g in groups for t in g}
    text, through = summary if summary is not None else (conv.summary, conv.summary_through)
    return conversation((t for t in turns if t.id in kept), max(conv.last_at_ms, turn.at_ms), ttl_ms, ratio,
                        text, through)


def cleared(conv: Conversation, before_ms: int | None) -> Conversation | None:
    """Without `before`: nothing is left (None: delete the row). With it: the exchanges started before
    it are dropped whole (a tool round is never left without the message that asked for it), and the
    summary with them (it tells of turns before `before`)."""
    if before_ms is None:
        return None
    groups = [g for g in exchanges(conv.turns) if g[0].at_ms >= before_ms]
    kept = {t.id for g in groups for t in g}
    if not kept:
        return None
    return conversation((t for t in conv.turns if t.id in kept), conv.last_at_ms, conv.ttl_ms, conv.ratio)


class ConversationStore:
    """The `agent-conversations` table, typed. Writes must run inside the agent's own event's task
    (faust writes the changelog to the partition of the event being processed)."""

    def __init__(self, table: Any, caps: Caps) -> None:
        self.table = table
        self.caps = caps

    def get(self, agent_id: str, room_id: str) -> Conversation | None:
        row = self.table.get(key_of(agent_id, room_id))
        if row is None:
            return None
        try:
            return decode(row)
        except (ValueError, KeyError, TypeError) as exc:
            log.error("conversations.undecodable_row agent=%s error=%r (read as empty)", agent_id, exc)
            return None

    def total_tokens(self, agent_id: str, room_id: str) -> int:
        """The stored turns' tokens (from the row's header: no decoding)."""
        row = self.table.get(key_of(agent_id, room_id))
        if row is None:
            return 0
        try:
            return header(row)[2]
        except ValueError:
            return 0

    def append(self, agent_id: str, room_id: str, turn: Turn, ttl_ms: int, ratio: float,
               current: Conversation | None | bool = False, summary: tuple[str, str] | None = None) -> bool:
        """`current`: the row as the caller already read it (None: there was none), when nothing can have
        changed it since (the caller holds the room's turn); False: read it here. `summary`: a new summary
        of the turns before the context window (text, id of the newest turn it covers)."""
        known = self.get(agent_id, room_id) if current is False else current
        new = appended(known, turn, ttl_ms, ratio, self.caps, summary)
        if new is None:
            return False
        self.table[key_of(agent_id, room_id)] = encode(new)
        return True

    def clear(self, agent_id: str, room_id: str, before_ms: int | None = None) -> int:
        """Delete the turns (a changelog tombstone when none is left); returns how many went."""
        key = key_of(agent_id, room_id)
        conv = self.get(agent_id, room_id)
        if conv is None:
            if key in self.table:
                del self.table[key]  # an undecodable row goes too
            return 0
        left = cleared(conv, before_ms)
        if left is None:
            del self.table[key]
            return len(conv.turns)
        if len(left.turns) != len(conv.turns):
            self.table[key] = encode(left)
        return len(conv.turns) - len(left.turns)

    def expire_if_idle(self, agent_id: str, room_id: str, now_ms: int) -> bool:
        """The sweep's request, checked again by the owner: the room may have spoken since."""
        row = self.table.get(key_of(agent_id, room_id))
        if row is None:
            return False
        last_at_ms, ttl_ms = idle_since(row)
        if last_at_ms + ttl_ms > now_ms:
            return False
        del self.table[key_of(agent_id, room_id)]
        return True

    def idle_rooms(self, now_ms: int) -> Iterator[tuple[str, str]]:
        """(agent id, room id) of every local row idle past its ttl."""
        for key, row in self.table.items():
            try:
                last_at_ms, ttl_ms = idle_since(row)
            except ValueError:
                continue
            if last_at_ms + ttl_ms <= now_ms:
                yield split_key(key)


def with_reply(turn: Turn, reply: str, tool_calls: tuple[ToolCall, ...], tokens: int) -> Turn:
    return replace(turn, reply=reply, tool_calls=tool_calls, tokens=tokens)
