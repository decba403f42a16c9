"""Rolling summaries: which left-out turns are new to the summary, the request that folds them in, the
summary stored with the row (and dropped by a clear), and the window's left-out turns."""

from __future__ import annotations

from agents_tables import conversations
from agents_tables.conversations import Caps, Conversation, Turn, conversation
from gateway_app.contract.events import AgentProfile, ContextSpec
from gateway_app.pipeline import summaries
from gateway_app.pipeline.conversation import window
from gateway_app.providers.base import ChatMessage


def turn(n: int, user: str | None = None) -> Turn:
    return Turn(f"m{n}", "message", n, 10, user=user or f"question {n}", reply=f"answer {n}")


def test_only_turns_newer_than_the_summary_are_folded_in():
    conv = conversation([turn(n) for n in range(1, 6)], 5, 0, 1.0, "they spoke of 1 and 2", "m2")
    dropped = conv.turns[:4]
    assert [t.id for t in summaries.unsummarized(conv, dropped)] == ["m3", "m4"]
    gone = conversation(conv.turns[2:], 5, 0, 1.0, "older", "m1")  # the turn it names was trimmed away
    assert [t.id for t in summaries.unsummarized(gone, gone.turns[:2])] == ["m3", "m4"]
    assert summaries.unsummarized(None, dropped) == [] and summaries.unsummarized(conv, ()) == []


def test_the_request_carries_the_summary_so_far_and_the_new_part():
    profile = AgentProfile(agent_id="a", version=1, provider="openai", model="gpt-4o-mini")
    asked = summaries.request(profile, "they spoke of the order", [turn(3, "where is it?")])
    assert asked.system_prompt == summaries.INSTRUCTION and asked.temperature == 0 and asked.model == "gpt-4o-mini"
    assert asked.messages[0].content == ("Summary so far:\nthey spoke of the order\n\nNew part of the conversation:\n"
                                         "User: where is it?\nAssistant: answer 3")
    assert summaries.with_summary("Be brief.", "s") == f"Be brief.\n\n{summaries.PROMPT_HEADER}\ns"
    assert summaries.with_summary("", "s") == f"{summaries.PROMPT_HEADER}\ns"


def test_the_summary_is_stored_kept_replaced_and_cleared():
    caps = Caps(max_turns=100, max_bytes=1_000_000)
    conv = conversations.appended(None, turn(1), 0, 1.0, caps, ("first summary", "m1"))
    assert (conv.summary, conv.summary_through) == ("first summary", "m1")
    kept = conversations.appended(conv, turn(2), 0, 1.0, caps)
    assert (kept.summary, kept.summary_through) == ("first summary", "m1")
    again = conversations.decode(conversations.encode(kept))
    assert (again.summary, again.summary_through, [t.id for t in again.turns]) == ("first summary", "m1", ["m1", "m2"])
    assert conversations.cleared(again, before_ms=2).summary == ""  # it told of the turns the clear removed
    old_row = conversations.encode(Conversation())  # rows written before summaries decode as before
    assert conversations.decode(old_row).summary == ""


def test_the_window_says_which_stored_turns_it_left_out():
    conv = conversation([turn(n) for n in range(1, 6)], 5, 0, 1.0)
    built = window(conv, ContextSpec(max_turns=2, max_tokens=4000), "m9", [ChatMessage("user", "new")])
    assert [t.id for t in built.dropped] == ["m1", "m2", "m3"] and built.history_turns == 2
