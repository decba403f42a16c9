"""The fault suite's verifier: given the messages a run sent and everything the gateway wrote, count what
was lost, duplicated, misbilled, reordered or dead-lettered without what a replay needs. Pure: it works
on plain dicts, so its own rules are unit-tested (tests/unit/testing_tools/test_verifier.py)."""

from __future__ import annotations

import base64
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable

from gateway_app.contract import ids


@dataclass(frozen=True)
class Sent:
    message_id: str
    agent_id: str
    room_id: str


@dataclass(frozen=True)
class Poison:
    """A bad input record and the DLQ code it must end with (None: it must be answered, not dead-lettered)."""

    kind: str
    topic: str
    key: bytes | None
    value: bytes | None
    code: str | None


@dataclass
class Report:
    sent: int = 0
    answered: int = 0
    lost: list[str] = field(default_factory=list)
    raw_replies: int = 0
    distinct_reply_ids: int = 0
    raw_duplicates: int = 0
    # Duplicates by what they are: the same bytes sent again (a remembered outcome re-published) or a
    # second answer (the message was processed twice: its first run was cut after its reply went out).
    republished: int = 0
    reanswered: int = 0
    statuses: Counter = field(default_factory=Counter)
    billing_raw: int = 0
    billing_distinct: int = 0
    billed_tokens: tuple[int, int] = (0, 0)
    replied_tokens: tuple[int, int] = (0, 0)
    order_violations: list[str] = field(default_factory=list)
    dlq_records: int = 0
    poison_checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        return [
            f"sent {self.sent}, answered {self.answered}, lost {len(self.lost)}",
            f"replies {self.raw_replies} raw, {self.distinct_reply_ids} distinct reply ids, "
            f"{self.raw_duplicates} raw duplicates ({self.republished} re-published outcomes, {self.reanswered} "
            f"answered again); statuses {dict(self.statuses)}",
            f"billing {self.billing_raw} raw, {self.billing_distinct} distinct event ids; tokens billed "
            f"{self.billed_tokens} vs replied {self.replied_tokens} (input, output)",
            f"per-conversation order violations {len(self.order_violations)}",
            f"DLQ records {self.dlq_records}; poison pills checked {self.poison_checked}",
            *(f"PROBLEM: {p}" for p in self.problems[:20]),
        ]


def verify(sent: list[Sent], replies: list[dict[str, Any]], billing: list[dict[str, Any]],
           dlq: list[dict[str, Any]], *, poison: Iterable[Poison] = (), max_duplicates: int | None = None) -> Report:
    """`replies`, `billing`, `dlq`: every record read from the output topics, in arrival order."""
    report = Report(sent=len(sent), raw_replies=len(replies), billing_raw=len(billing), dlq_records=len(dlq))
    first = _first_replies(sent, replies, report)
    _check_duplicates(report, max_duplicates)
    _check_billing(first, billing, report)
    _check_order(sent, replies, report)
    _check_dead_letters(first, dlq, report)
    _check_poison(list(poison), replies, dlq, report)
    return report


def _first_replies(sent: list[Sent], replies: list[dict[str, Any]], report: Report) -> dict[str, dict[str, Any]]:
    """Each sent message's first reply; lost and inconsistent ones go into the report."""
    wanted = {m.message_id for m in sent}
    first: dict[str, dict[str, Any]] = {}
    reply_ids: set[str] = set()
    for reply in replies:
        mid = reply["message_id"]
        if mid not in wanted:
            continue
        reply_ids.add(reply["reply_id"])
        if reply["reply_id"] != ids.reply_id(mid):
            report.problems.append(f"reply {reply['reply_id']} of {mid} does not carry the message's reply id")
        first.setdefault(mid, reply)
    report.answered = len(first)
    report.lost = sorted(wanted - set(first))
    report.distinct_reply_ids = len(reply_ids)
    report.raw_duplicates = sum(1 for r in replies if r["message_id"] in wanted) - len(first)
    copies = [r for r in replies if r["message_id"] in first and r is not first[r["message_id"]]]
    report.republished = sum(1 for r in copies if r == first[r["message_id"]])
    report.reanswered = len(copies) - report.republished
    report.statuses = Counter(r["status"] for r in first.values())
    if report.lost:
        report.problems.append(f"{len(report.lost)} messages got no reply, e.g. {report.lost[:3]}")
    if report.distinct_reply_ids != report.answered:
        report.problems.append(f"{report.distinct_reply_ids} distinct reply ids for {report.answered} messages")
    return first


def _check_duplicates(report: Report, max_duplicates: int | None) -> None:
    if max_duplicates is not None and report.raw_duplicates > max_duplicates:
        report.problems.append(f"{report.raw_duplicates} raw duplicate replies; at most {max_duplicates} "
                               "messages were in flight (uncommitted) at the crashes")


def _check_billing(first: dict[str, dict[str, Any]], billing: list[dict[str, Any]], report: Report) -> None:
    events: dict[str, dict[str, Any]] = {}
    for event in billing:
        if event["message_id"] in first:
            events.setdefault(event["event_id"], event)
    report.billing_distinct = len(events)
    per_message = Counter(e["message_id"] for e in events.values())
    billed = (sum(e["input_tokens"] for e in events.values()), sum(e["output_tokens"] for e in events.values()))
    used = [r for r in first.values() if r["status"] == "ok"
            and (r["usage"]["input_tokens"] or r["usage"]["output_tokens"])]
    report.billed_tokens = billed
    report.replied_tokens = (sum(r["usage"]["input_tokens"] for r in used),
                             sum(r["usage"]["output_tokens"] for r in used))
    unbilled = [r["message_id"] for r in used if per_message[r["message_id"]] == 0]
    not_ok = [m for m in per_message if first[m]["status"] != "ok"]
    twice = [m for m, n in per_message.items() if n > 1]
    if unbilled:
        report.problems.append(f"{len(unbilled)} answered messages without a billing event, e.g. {unbilled[:3]}")
    if not_ok:
        report.problems.append(f"{len(not_ok)} messages billed without an ok reply, e.g. {not_ok[:3]}")
    if twice:
        report.problems.append(f"{len(twice)} messages billed under more than one event id, e.g. {twice[:3]}")
    if billed != report.replied_tokens:
        report.problems.append(f"billed tokens {billed} != tokens in the replies {report.replied_tokens}")


def _check_order(sent: list[Sent], replies: list[dict[str, Any]], report: Report) -> None:
    """Per conversation (agent + room): first replies arrive in the order the messages were sent."""
    position = {m.message_id: i for i, m in enumerate(sent)}
    seen: set[str] = set()
    last: dict[tuple[str, str], int] = defaultdict(lambda: -1)
    for reply in replies:
        mid = reply["message_id"]
        if mid not in position or mid in seen:
            continue
        seen.add(mid)
        conversation = (reply["agent_id"], reply["room_id"])
        if position[mid] < last[conversation]:
            report.order_violations.append(mid)
        last[conversation] = max(last[conversation], position[mid])
    if report.order_violations:
        report.problems.append(f"{len(report.order_violations)} replies out of conversation order, "
                               f"e.g. {report.order_violations[:3]}")


def _check_dead_letters(first: dict[str, dict[str, Any]], dlq: list[dict[str, Any]], report: Report) -> None:
    """Every DLQ record says why and carries the original record; every failed message has one."""
    by_message: dict[str, dict[str, Any]] = {}
    for record in dlq:
        missing = [k for k in ("reason", "error_code", "source_topic") if not record.get(k)]
        if missing or record.get("source_offset", -1) < 0 or "value_b64" not in record:
            report.problems.append(f"DLQ record {record.get('dlq_id')} lacks {missing or 'its source position'}")
        if record.get("message_id"):
            by_message.setdefault(record["message_id"], record)
    for mid, reply in first.items():
        if reply["status"] == "ok":
            continue
        record = by_message.get(mid)
        if record is None:
            report.problems.append(f"{mid} failed ({reply['error']['code']}) without a DLQ record")
            continue
        original = _decode(record.get("value_b64"))
        if not isinstance(original, dict) or original.get("messageId", original.get("message_id")) != mid:
            report.problems.append(f"DLQ record of {mid} does not carry the original message")


def _check_poison(poison: list[Poison], replies: list[dict[str, Any]], dlq: list[dict[str, Any]],
                  report: Report) -> None:
    for pill in poison:
        report.poison_checked += 1
        matches = [d for d in dlq if d["source_topic"] == pill.topic and _raw(d.get("value_b64")) == pill.value
                   and _raw(d.get("key_b64")) == pill.key]
        if pill.code is None:
            if matches:
                report.problems.append(f"poison {pill.kind}: valid input was dead-lettered ({matches[0]['reason']})")
            continue
        if not matches:
            report.problems.append(f"poison {pill.kind}: no DLQ record carrying the original bytes")
        elif matches[0]["error_code"] != pill.code:
            report.problems.append(f"poison {pill.kind}: DLQ code {matches[0]['error_code']}, expected {pill.code}")


def _raw(b64: str | None) -> bytes | None:
    return None if b64 is None else base64.b64decode(b64)


def _decode(b64: str | None) -> Any:
    try:
        return json.loads(_raw(b64) or b"null")
    except ValueError:
        return None
