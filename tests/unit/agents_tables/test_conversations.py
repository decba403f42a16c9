"""Conversation rows: appends are idempotent and ordered, caps drop whole exchanges, clears and
expiry delete with tombstones, bytes round-trip."""

from __future__ import annotations

from agents_tables import conversations as c
from agents_tables.conversations import Caps, ConversationStore, ToolOutput, Turn
from gateway_app.providers.base import ToolCall

CAPS = Caps(max_turns=100, max_bytes=100_000)


def msg(turn_id: str, at: int = 0, text: str = "hi", reply: str = "hello", calls=()) -> Turn:
    return Turn(turn_id, "message", at, 5, user=text, reply=reply, tool_calls=tuple(calls))


def results(turn_id: str, reply_to: str, ids: list[str], at: int = 0, reply: str = "done", calls=()) -> Turn:
    return Turn(turn_id, "tool_results", at, 3, results=tuple(ToolOutput(i, f"out {i}") for i in ids),
                reply_to=reply_to, reply=reply, tool_calls=tuple(calls))


def store(caps: Caps = CAPS) -> tuple[ConversationStore, dict]:
    table: dict = {}
    return ConversationStore(table, caps), table


def test_bytes_round_trip_every_field():
    call = ToolCall("call_1", "weather", '{"city": "Paris"}')
    conv = c.conversation([msg("m1", 10, calls=[call]), results("t1", "m1", ["call_1"], 20)], 20, 60_000, 1.3)
    again = c.decode(c.encode(conv))
    assert again == conv and again.has("t1") and again.turns[1].results[0].content == "out call_1"
    assert c.idle_since(c.encode(conv)) == (20, 60_000) and c.header(c.encode(conv)) == (20, 60_000, 8)


def test_an_append_is_idempotent_by_turn_id_and_keeps_order():
    conversations, table = store()
    assert conversations.append("a", "r", msg("m1", 1), 60_000, 1.0)
    assert conversations.append("a", "r", msg("m2", 2), 60_000, 1.0)
    assert not conversations.append("a", "r", msg("m1", 3), 60_000, 1.0)  # a redelivery adds nothing
    assert [t.id for t in conversations.get("a", "r").turns] == ["m1", "m2"]
    assert list(table) == [c.key_of("a", "r")]


def test_the_turn_cap_drops_the_oldest_whole_exchange_never_half():
    conversations, _ = store(Caps(max_turns=3, max_bytes=100_000))
    call = ToolCall("call_1", "f", "{}")
    conversations.append("a", "r", msg("m1", 1, calls=[call]), 60_000, 1.0)
    conversations.append("a", "r", results("t1", "m1", ["call_1"], 2), 60_000, 1.0)
    conversations.append("a", "r", msg("m2", 3), 60_000, 1.0)
    assert [t.id for t in conversations.get("a", "r").turns] == ["m1", "t1", "m2"]
    conversations.append("a", "r", msg("m3", 4), 60_000, 1.0)  # 4 turns: the m1 exchange (2 turns) goes
    assert [t.id for t in conversations.get("a", "r").turns] == ["m2", "m3"]


def test_the_byte_cap_keeps_at_least_the_newest_exchange():
    conversations, _ = store(Caps(max_turns=100, max_bytes=1024))
    conversations.append("a", "r", msg("m1", 1, text="x" * 600), 60_000, 1.0)
    conversations.append("a", "r", msg("m2", 2, text="y" * 2000), 60_000, 1.0)
    assert [t.id for t in conversations.get("a", "r").turns] == ["m2"]


def test_exchanges_group_tool_rounds_with_their_message_even_when_others_came_between():
    turns = [msg("m1", calls=[ToolCall("c1", "f", "{}")]), msg("m2"), results("t1", "m1", ["c1"]),
             results("t2", "t1", [])]
    assert [[t.id for t in g] for g in c.exchanges(turns)] == [["m1", "t1", "t2"], ["m2"]]
    assert c.root_id(turns, "t2") == "m1"


def test_clear_deletes_the_row_and_before_keeps_later_exchanges():
    conversations, table = store()
    for index, at in enumerate((100, 200, 300)):
        conversations.append("a", "r", msg(f"m{index}", at), 60_000, 1.0)
    assert conversations.clear("a", "r", before_ms=250) == 2
    assert [t.id for t in conversations.get("a", "r").turns] == ["m2"]
    assert conversations.clear("a", "r") == 1
    assert table == {} and conversations.get("a", "r") is None
    assert conversations.clear("a", "r") == 0  # nothing there: nothing to do


def test_an_undecodable_row_reads_as_empty_and_clear_removes_it():
    conversations, table = store()
    table[c.key_of("a", "r")] = b"garbage"
    assert conversations.get("a", "r") is None
    conversations.clear("a", "r")
    assert table == {}


def test_idle_rooms_and_expiry_are_checked_against_the_header():
    conversations, table = store()
    conversations.append("a", "old", msg("m1", 1_000), 60_000, 1.0)
    conversations.append("a", "new", msg("m2", 100_000), 60_000, 1.0)
    assert list(conversations.idle_rooms(now_ms=100_000)) == [("a", "old")]
    assert not conversations.expire_if_idle("a", "new", now_ms=100_000)  # spoke since: kept
    assert conversations.expire_if_idle("a", "old", now_ms=100_000)
    assert list(table) == [c.key_of("a", "new")]
