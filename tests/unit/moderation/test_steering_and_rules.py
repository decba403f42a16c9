"""What signals do (steering), which rules a reply is checked under, and how a held stream releases."""

from __future__ import annotations

import asyncio
import json

from agents_tables.moderation import ActiveSignal, ModerationStore
from gateway_app.contract.events import AgentProfile, ModerationSignal, Severity, SignalKind
from gateway_app.moderation import steering
from gateway_app.moderation.gate import HeldPipe, split_released
from gateway_app.moderation.rules import output_rules, strongest

PROFILE = AgentProfile(agent_id="a", version=1, provider="openai", model="m", temperature=1.9, max_tokens=100)


def active(kind: str, severity: str, applied: int = 0, signal_id: str = "s1") -> ActiveSignal:
    return ActiveSignal(signal_id, SignalKind(kind), Severity(severity), None, (), applied, 10_000)


def test_the_strongest_signal_of_each_kind_steers_within_the_providers_range():
    steer = steering.steer((active("boring", "low", 1, "s1"), active("boring", "high", 2, "s2"),
                            active("engagement", "low", 3, "s3")), PROFILE)
    assert steer.temperature_delta == 0.3 and steer.max_tokens_factor == 0.5
    assert steering.LIVELY in steer.instructions and steering.SHORT in steer.instructions
    assert steering.temperature("openai", 1.9, 0.3) == 2.0 and steering.temperature("anthropic", 0.9, 0.3) == 1.0
    assert steering.penalty_for("anthropic", 0.6) is None and steering.penalty_for("cohere", 0.6) == 0.6


def test_a_profile_overrides_what_a_signal_does():
    profile = AgentProfile.model_validate({**PROFILE.model_dump(), "moderation": {
        "onSignal": {"inappropriate": {"high": {"mute": False, "instruction": "Be careful."}}}}})
    steer = steering.steer((active("inappropriate", "high"),), profile)
    assert steer.mute is None and steer.instructions == ("Be careful.",)
    assert steering.steer((active("inappropriate", "high"),), PROFILE).mute is not None


def test_signals_change_the_rules_a_reply_is_checked_under():
    plain = output_rules(PROFILE, steering.NOTHING)
    assert {name: rule.action for name, rule in plain.items()} == {
        "wordlist": "flag", "pii": "flag", "empty": "flag", "refusal": "flag", "truncated": "flag"}
    strict = output_rules(PROFILE, steering.steer((active("inappropriate", "low"),), PROFILE))
    assert strict["wordlist"].action == strict["pii"].action == "block"
    replacing = output_rules(PROFILE, steering.steer((active("inappropriate", "medium"),), PROFILE))
    assert {rule.action for rule in replacing.values()} == {"replace"}
    repeating = output_rules(PROFILE, steering.steer((active("repetitive", "low"),), PROFILE))
    assert (repeating["repetition"].action, repeating["repetition"].then) == ("regenerate", "flag")
    assert strongest(["flag", "mask", "regenerate"]) == "regenerate" and strongest([]) == "pass"


def test_a_signal_applies_once_and_expires_with_a_tombstone():
    table: dict = {}
    store = ModerationStore(table)
    signal = ModerationSignal(signal_id="s1", signal="boring", room_id="r", agent_id="a", ttl_seconds=5)
    assert store.apply(signal, "a", now_ms=1_000) is not None
    assert store.apply(signal, "a", now_ms=2_000) is None  # the same signal again
    assert [s.signal_id for s in store.active("a", "r", now_ms=5_999)] == ["s1"]
    assert store.active("a", "r", now_ms=6_000) == ()  # exactly at its ttl it no longer acts
    assert list(store.rooms_to_sweep(now_ms=6_000)) == [("a", "r")]
    assert [s.signal_id for s in store.expire("a", "r", now_ms=6_000)] == ["s1"] and table == {}


def test_sentences_are_released_whole():
    assert split_released("Hello there. How are") == ("Hello there. ", "How are")
    assert split_released("no end yet") == ("", "no end yet")
    assert split_released("Line one\nLine two") == ("Line one\n", "Line two")


class Sent:
    def __init__(self) -> None:
        self.chunks = []

    async def reply_chunk(self, chunk, headers=None) -> None:
        self.chunks.append(chunk)


async def test_a_held_stream_stops_at_a_failed_sentence_and_ends_blocked():
    from gateway_app.contract.events import MessageCreated

    sent = Sent()
    message = MessageCreated(message_id="m", agent_id="a", room_id="r", content="hi")
    pipe = HeldPipe(sent, message, lambda text: None if "bad" in text else text.replace("secret", "[x]"))
    for piece in ("Fine and ", "secret. ", "Now bad ", "words. ", "Rest."):
        pipe.put(1, 0, piece, False)
    pipe.put(1, 5, "", True)
    await asyncio.sleep(0)
    assert [c.delta for c in sent.chunks] == ["Fine and [x]. "]  # the final chunk waits for the whole-text checks
    await pipe.finish(blocked=False)
    final = sent.chunks[-1]
    assert final.final and final.blocked and [c.seq for c in sent.chunks] == [0, 1]
    assert json.loads(final.model_dump_json())["blocked"] is True
