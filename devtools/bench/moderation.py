"""The moderation measures: the gateway with every local output check on against the same gateway with
none, and with the default checks, on one broker; and the checks' own cost in this process.

- `drain` and `latency`: throughput draining a backlog and end-to-end latency at an open-loop rate, one
  fresh worker per run, the profiles interleaved round by round by the caller.
- `cost`: microseconds per reply of the checks (`run_local`, with the settings a worker builds for the
  profile) on the benchmark's reply and on longer replies, all the checks together and each alone.

The benchmark's messages are all the same short English sentence and the echo provider replies with it,
so every reply is that sentence: no check but `repetition` (from a room's second reply on) finds
anything in it, and PII and language run on 64 characters. `cost` shows what longer replies cost.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

from devtools.bench import load
from devtools.bench.measures import AGENTS, WARMUP_SECONDS, Gateway, wait_health
from devtools.kafka_local import KafkaBroker

ROOMS = 1000
ALL_ON = {
    "moderation": {"outputChecks": {name: {"action": "flag"} for name in (
        "wordlist", "pii", "repetition", "empty", "refusal", "truncated", "language", "too_long")},
        "maxChars": 4000},
    "language": "en",
}
OFF = {"moderation": {"outputChecks": {}}}
DEFAULT: dict = {}  # no `moderation`: the default output checks
PROFILES = {"all on": ALL_ON, "default": DEFAULT, "off": OFF}  # the table's columns, in this order

PROSE = (
    "Thanks for your order! Parcels to Lisbon usually arrive within three to five business days once they "
    "leave our warehouse, and orders placed before two in the afternoon are packed and handed to the courier "
    "the same day. As soon as the courier scans your parcel you will receive an e-mail with a tracking link, "
    "so you can follow it all the way to your door. If nobody is home when the driver arrives, they will "
    "leave a card and try again the next working day; after a second attempt the parcel waits at the nearest "
    "pick-up point for a week. Standard delivery is free for orders above fifty euros, and express delivery, "
    "which usually takes one to two business days, can still be chosen from your account page until the "
    "parcel has been dispatched. Please note that public holidays in Portugal can add a day to these "
    "estimates. If anything is missing or damaged when your order arrives, just reply to this message with a "
    "photo and we will send a replacement or refund you right away."
)
NUMBERS = {"your order!": "your order 48213!", "three to five": "3 to 5", "two in the afternoon": "2 pm",
           "fifty euros": "50 EUR", "one to two": "1 to 2"}


def _with_numbers(text: str) -> str:
    for words, figures in NUMBERS.items():
        text = text.replace(words, figures)
    return text


def _digit_groups(size: int = 1024) -> str:
    """`size` characters of groups of 3-4 digits separated by spaces (fixed seed): phone-number-like."""
    rng = random.Random(7)
    groups: list[str] = []
    while sum(len(g) + 1 for g in groups) < size:
        groups.append("".join(str(rng.randrange(10)) for _ in range(rng.choice((3, 4)))))
    return " ".join(groups)[:size]


def _rotations(text: str, count: int) -> tuple[str, ...]:
    """`count` earlier replies of the same length and words, sentences in another order (repetition's
    comparisons do real work on them)."""
    sentences = [s.strip() + "." for s in text.split(". ") if s.strip()]
    return tuple(" ".join(sentences[i + 1:] + sentences[:i + 1]) for i in range(count))


# (label, reply, earlier replies in the room): the benchmark's reply with the room's earlier replies as the
# gateway has them in a drain (the same sentence), then 1 KB replies with five different earlier ones.
TEXTS = (
    ("the benchmark's reply (64 chars, English)", load.CONTENT, (load.CONTENT,) * 5),
    ("1 KB English reply, no digits", PROSE, _rotations(PROSE, 5)),
    (f"1 KB English reply, a few numbers ({sum(c.isdigit() for c in _with_numbers(PROSE))} digits)",
     _with_numbers(PROSE), _rotations(_with_numbers(PROSE), 5)),
    ("1 KB of digit groups (phone-like)", _digit_groups(), _rotations(PROSE, 5)),
)


@dataclass(frozen=True)
class Drain:
    rate: float  # replies/s, first to last reply
    flagged: int  # the worker's `moderation_flagged` counter after the drain (verdicts recorded)


async def drain(broker: KafkaBroker, tmp: Path, count: int, extra: dict) -> Drain:
    """Replies/s draining a pre-produced backlog of `count` messages over `ROOMS` rooms of `AGENTS` agents."""
    gw = await Gateway.start(broker, tmp, extra=extra)
    try:
        async with load.Collector(broker.bootstrap, gw.d.topic("replies")) as replies:
            await load.produce(broker.bootstrap, gw.d.topic("messages"),
                               [load.encode(m) for m in load.messages(count, AGENTS, ROOMS)])
            await replies.wait_for(count, 900)
            rate = replies.rate()
        counters = (await wait_health(gw.worker, lambda h: True, 30))["counters"]
    finally:
        gw.stop()
    return Drain(rate, counters.get("moderation_flagged", 0))


async def latency(broker: KafkaBroker, tmp: Path, rate: float, seconds: float, extra: dict) -> list[float]:
    """End-to-end seconds per message at `rate` (open loop), after a warm-up at the same rate."""
    gw = await Gateway.start(broker, tmp, extra=extra)
    try:
        async with load.Collector(broker.bootstrap, gw.d.topic("replies")) as replies:
            warm = await load.open_loop(broker.bootstrap, gw.d.topic("messages"),
                                        load.messages(int(rate * WARMUP_SECONDS), AGENTS, ROOMS), rate)
            await replies.wait_for(len(warm), 120)
            sent = await load.open_loop(broker.bootstrap, gw.d.topic("messages"),
                                        load.messages(int(rate * seconds), AGENTS, ROOMS), rate)
            await replies.wait_for(len(warm) + len(sent), 300)
            return [replies.arrivals[m] - t for m, t in sent.items()]
    finally:
        gw.stop()


def _per_call_us(fn, budget: float = 0.1, batches: int = 7) -> float:
    """The mean microseconds of one call in the fastest of `batches` batches of about `budget` seconds each
    (the least disturbed by whatever else runs on the machine, as `timeit` advises)."""
    started = time.perf_counter()
    fn()
    once = time.perf_counter() - started
    n = max(1, int(budget / max(once, 1e-7)))
    means = []
    for _ in range(batches):
        started = time.perf_counter()
        for _ in range(n):
            fn()
        means.append((time.perf_counter() - started) / n * 1e6)
    return min(means)


def cost() -> dict:
    """Microseconds per reply of the output checks in this process, as the worker runs them: the rules and
    settings built from the profile (`output_rules`, `SettingsCache`), the reply as `moderation_out` gives
    it (finish reason `stop`, the profile's language and `maxChars`, the room's earlier replies)."""
    from gateway_app.contract.events import AgentProfile
    from gateway_app.moderation.checks import CheckInput, run_local, warm_up
    from gateway_app.moderation.rules import SettingsCache, output_rules
    from gateway_app.moderation.steering import NOTHING

    warm_up()
    cache = SettingsCache()
    setups = {}
    for label, extra in PROFILES.items():
        profile = AgentProfile.model_validate({"agentId": "agent-0", "version": 1, "provider": "echo",
                                               "model": "echo-1", "maxTokens": 64, **extra})
        setups[label] = (profile, list(output_rules(profile, NOTHING)), cache.for_profile(profile))
    all_profile, all_names, all_settings = setups["all on"]
    totals: dict[str, dict[str, float]] = {}
    checks: dict[str, dict[str, float]] = {}
    for label, text, previous in TEXTS:
        totals[label], checks[label] = {}, {}
        for name, (profile, names, settings) in setups.items():
            data = CheckInput(text=text, finish_reason="stop", expected_language=profile.language,
                              user_message=load.CONTENT, previous_replies=previous,
                              max_chars=profile.moderation.max_chars)
            totals[label][name] = _per_call_us(lambda: run_local(names, data, settings)) if names else 0.0
        data = CheckInput(text=text, finish_reason="stop", expected_language=all_profile.language,
                          user_message=load.CONTENT, previous_replies=previous,
                          max_chars=all_profile.moderation.max_chars)
        fired = {r.check for r in run_local(all_names, data, all_settings) if not r.passed}
        for check in all_names:
            checks[label][check] = _per_call_us(lambda: run_local([check], data, all_settings))
        checks[label]["fired"] = ", ".join(sorted(fired)) or "none"  # type: ignore[assignment]
    return {"totals": totals, "checks": checks, "names": all_names,
            "sizes": {label: len(text) for label, text, _ in TEXTS}}
