"""The pure parts of the modes: a shadow's target, reply and billing event; which dead letters go back;
the command lines."""

from __future__ import annotations

import base64
import json
from decimal import Decimal

import pytest

from gateway_app.contract.events import AgentProfile, ErrorCode, MessageCreated
from gateway_app.contract.ids import billing_event_id, reply_id
from gateway_app.pricing.prices import PriceTable
from gateway_app.providers.base import ChatResult, ProviderError, TokenUsage
from gateway_app.replay.answered import ReplyIndex
from gateway_app.replay.command import parse
from gateway_app.replay.costs import TokenEstimate
from gateway_app.replay.dlq import matching, verdict
from gateway_app.replay.ranges import OffsetBound, TimeBound
from gateway_app.replay.shadow import Called, Item, bill_of, reply_of, retargeted

PROFILE = AgentProfile(agent_id="bot", version=7, provider="local", model="llama", options={"base_url": "http://x"},
                       fallbacks=[{"provider": "openai", "model": "gpt-4o-mini"}], stream=True)
MESSAGE = MessageCreated(message_id="m1", agent_id="bot", room_id="r1", user_id="u", content="hello there")


def test_a_shadow_target_keeps_the_profile_but_its_provider_model_and_foreign_options():
    target = retargeted(PROFILE, "echo", "echo-2")
    assert (target.provider, target.model, target.options, target.fallbacks, target.stream) == \
        ("echo", "echo-2", {}, [], False)
    assert (target.version, target.max_tokens) == (7, PROFILE.max_tokens)
    assert retargeted(PROFILE, "local", "other").options == {"base_url": "http://x"}  # its own provider's


def test_a_shadow_reply_and_billing_event_carry_the_live_ids():
    item = Item(None, MESSAGE, retargeted(PROFILE, "openai", "gpt-4o-mini"), TokenEstimate(3, 512), None)
    result = ChatResult("hi", "stop", TokenUsage(10, 2, cached_input_tokens=4), request_id="req-1")
    reply = reply_of(item, Called(result, 2, 150))
    assert (reply.reply_id, reply.status, reply.content, reply.attempts, reply.latency_ms) == \
        (reply_id("m1"), "ok", "hi", 2, 150)
    assert (reply.provider, reply.model, reply.profile_version, reply.usage.cached_input_tokens) == \
        ("openai", "gpt-4o-mini", 7, 4)
    table = PriceTable("v", {"openai": {"gpt-4o-mini": {"input": "1", "cached_input": "0.5", "output": "2"}}})
    bill = bill_of(item, result, table)
    assert (bill.event_id, bill.price_version, Decimal(bill.cost_usd)) == \
        (billing_event_id("m1"), "v", Decimal("0.00001200"))  # 6 x 1 + 4 x 0.5 + 2 x 2 per million
    failed = reply_of(item, Called(ProviderError(ErrorCode.PROVIDER_UNAVAILABLE, "503", retriable=True), 3, 900))
    assert (failed.status, failed.error.code, failed.content, failed.usage.input_tokens) == \
        ("error", "provider_unavailable", "", 0)


def dead(code: str = "provider_unavailable", agent: str = "bot", message_id: str | None = "m1",
         value: bytes | None = b'{"messageId": "m1"}') -> bytes:
    return json.dumps({"error_code": code, "agent_id": agent, "message_id": message_id, "source_topic": "in",
                       "source_partition": 2, "source_offset": 41, "key_b64": base64.b64encode(b"r1").decode(),
                       "value_b64": None if value is None else base64.b64encode(value).decode()}).encode()


def test_dead_letters_are_picked_by_code_and_agent_and_carry_the_original_record():
    found = matching(dead(), "provider_unavailable", "bot")
    assert (found.key, found.value, found.source, found.identity) == (b"r1", b'{"messageId": "m1"}', "in/2/41", "m1")
    assert matching(dead(code="invalid_json"), "provider_unavailable", None) is None
    assert matching(dead(agent="other"), "provider_unavailable", "bot") is None
    assert matching(b"{", "provider_unavailable", None) is None
    assert matching(dead(message_id=None), "provider_unavailable", None).identity == "in/2/41"


def test_a_dead_letter_goes_back_once_unless_answered_meanwhile_or_without_its_record():
    replies = ReplyIndex().add_all([json.dumps({"message_id": "m2", "status": "ok"}).encode()])
    taken: set[str] = set()
    assert verdict(matching(dead(), "provider_unavailable", None), replies, taken) == "send"
    taken.add("m1")
    assert verdict(matching(dead(), "provider_unavailable", None), replies, taken) == "duplicate"
    answered_meanwhile = matching(dead(message_id="m2"), "provider_unavailable", None)
    assert verdict(answered_meanwhile, replies, set()) == "answered meanwhile"
    assert verdict(matching(dead(value=None), "provider_unavailable", None), replies, set()) == "no original record"


def test_the_command_lines():
    args = parse(["replay", "shadow", "--from", "0:5", "--to", "2026-11-26T10:00:00Z", "--provider", "echo",
                  "--model", "echo-2", "--max-cost-usd", "2.50"])
    assert (args.mode, args.start, args.stop.__class__, args.max_cost_usd, args.concurrency, args.execute) == \
        ("shadow", OffsetBound(per_partition={0: 5}), TimeBound, Decimal("2.50"), 4, False)
    assert parse(["replay", "reprocess", "--from", "10"]).stop is None
    assert parse(["dlq", "replay", "--code", "c", "--since", "2026-11-26"]).since_bound == TimeBound(1795651200000)
    assert parse(["replay", "compare", "run-1", "--format", "json"]).run_name == "run-1"
    with pytest.raises(ValueError):
        parse(["replay", "reprocess", "--from", "not a time"])
    with pytest.raises(SystemExit):
        parse(["replay", "shadow", "--from", "1", "--provider", "echo", "--model", "m", "--max-cost-usd", "-1"])
