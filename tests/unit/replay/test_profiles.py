"""Profiles as of a message's time: the highest version among the events at or before it."""

from __future__ import annotations

import json

from gateway_app.replay.profiles import ProfileHistory


def event(version: int, **extra) -> bytes:
    return json.dumps({"agentId": "bot", "version": version, "provider": "openai", "model": f"m{version}",
                       **extra}).encode()


def history() -> ProfileHistory:
    profiles = ProfileHistory()
    profiles.add_record(event(1), 1000, deleted=False)
    profiles.add_record(event(3), 2000, deleted=False)
    profiles.add_record(event(2), 3000, deleted=False)  # late and stale: the gateway ignores it
    profiles.add_record(json.dumps({"agentId": "bot", "version": 4}).encode(), 4000, deleted=True)
    profiles.add_record(event(5, maxTokens=99), 5000, deleted=False)
    return profiles


def test_the_profile_in_force_is_the_highest_version_at_or_before_the_time():
    profiles = history()
    assert profiles.as_of("bot", 999) is None  # before its first profile
    assert profiles.as_of("bot", 1000).version == 1  # at the record's own timestamp
    assert profiles.as_of("bot", 2500).version == 3
    assert profiles.as_of("bot", 3500).version == 3  # version 2 arrived later but is older
    assert profiles.as_of("bot", 4500) is None  # deleted
    assert profiles.as_of("bot", 6000).max_tokens == 99
    assert profiles.latest("bot").version == 5 and profiles.latest("other") is None


def test_a_version_sent_twice_keeps_the_first_copy_as_the_gateway_does():
    profiles = ProfileHistory()
    profiles.add_record(event(1, systemPrompt="first"), 1000, deleted=False)
    profiles.add_record(event(1, systemPrompt="second"), 2000, deleted=False)
    assert profiles.as_of("bot", 3000).system_prompt == "first"


def test_events_the_intake_would_refuse_are_left_out():
    profiles = ProfileHistory()
    for bad in (b"{", b'{"agentId": "bot"}', json.dumps({"agentId": "bot", "version": -1}).encode()):
        profiles.add_record(bad, 1000, deleted=False)
    profiles.add_record(b'{"agentId": "bot"}', 1000, deleted=True)
    assert profiles.invalid == 4 and profiles.as_of("bot", 2000) is None
