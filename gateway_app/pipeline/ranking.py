"""Ranking candidates (profile `ranking`): each answer is scored by the checks the gateway already has and
the one that fails the fewest wins; on a tie, the first drawn (the provider's own order). Pure.

Criteria (`ranking.by`) and the checks each runs:
- quality: `empty`, `refusal`, `truncated`, `too_long` (the profile's `moderation.max_chars`);
- moderation: `wordlist` (the profile's and the worker's lists), `pii`;
- repetition: `repetition` against the agent's last replies in the room;
- format: with `response_format` `json`, the answer is one JSON value valid against the profile's schema.

With a `judge`, the candidates tied on the fewest failures are shown to the judge model, which answers
with the number of the best; an answer without a usable number leaves the first of them.
"""

from __future__ import annotations

import re
from typing import Sequence

from gateway_app.contract.events import AgentProfile, RankingInfo
from gateway_app.moderation.checks import CheckInput, CheckSettings, run_local
from gateway_app.pipeline.formats import check_json
from gateway_app.providers.base import ChatMessage, ChatRequest, ChatResult

JUDGE_INSTRUCTION = ("You compare candidate answers to a user's message and pick the best one: the most helpful, "
                     "correct and clear. Answer with the number of the best candidate and nothing else.")
MAX_JUDGED_CHARS = 4000  # of each candidate shown to the judge
CHECKS = {"quality": ("empty", "refusal", "truncated", "too_long"), "moderation": ("wordlist", "pii"),
          "repetition": ("repetition",)}


def failed_checks(result: ChatResult, profile: AgentProfile, settings: CheckSettings,
                  previous_replies: Sequence[str] = ()) -> list[str]:
    """The checks this candidate fails, in the order of `ranking.by`."""
    criteria = profile.ranking.by if profile.ranking is not None else ()
    names = [name for criterion in criteria for name in CHECKS.get(criterion, ())]
    data = CheckInput(text=result.text, finish_reason=result.finish_reason,
                      refused=result.finish_reason == "content_filter", previous_replies=tuple(previous_replies),
                      max_chars=profile.moderation.max_chars)
    failed = [r.check for r in run_local(names, data, settings) if r.fired]
    reply_format = profile.response_format
    if "format" in criteria and reply_format.type == "json" \
            and check_json(result.text, reply_format.json_schema) is not None:
        failed.append("format")
    return failed


def choose(failures: Sequence[Sequence[str]]) -> RankingInfo:
    chosen = min(range(len(failures)), key=lambda i: (len(failures[i]), i))
    worst = max(len(f) for f in failures)
    if worst == 0:
        reason = f"all {len(failures)} passed every check: the first drawn"
    elif not failures[chosen]:
        reason = f"candidate {chosen} passed every check"
    else:
        reason = f"candidate {chosen} failed the fewest checks ({', '.join(failures[chosen])})"
    return RankingInfo(candidates=len(failures), chosen=chosen, failed=[list(f) for f in failures], reason=reason)


def tied_best(failures: Sequence[Sequence[str]]) -> list[int]:
    """The candidates failing the fewest checks, in the order drawn."""
    fewest = min(len(f) for f in failures)
    return [i for i, f in enumerate(failures) if len(f) == fewest]


def judge_request(profile: AgentProfile, user_message: str, candidates: Sequence[str]) -> ChatRequest:
    judge = profile.ranking.judge if profile.ranking is not None else None
    shown = "\n\n".join(f"Candidate {n}:\n{text[:MAX_JUDGED_CHARS]}" for n, text in enumerate(candidates, start=1))
    return ChatRequest(model=judge.model if judge else profile.model, system_prompt=JUDGE_INSTRUCTION,
                       messages=(ChatMessage("user", f"{shown}\n\nThe user's message:\n{user_message}"),),
                       temperature=0.0, max_tokens=5, options=judge.options if judge else {})


def judged(answer: str, count: int) -> int | None:
    """The 0-based index the judge's answer names, or None when it names none of the `count` shown."""
    found = re.search(r"\d+", answer)
    if found is None:
        return None
    number = int(found.group())
    return number - 1 if 1 <= number <= count else None


def choose_judged(failures: Sequence[Sequence[str]], chosen: int, judge: str) -> RankingInfo:
    tied = len(tied_best(failures))
    return RankingInfo(candidates=len(failures), chosen=chosen, failed=[list(f) for f in failures],
                       reason=f"the judge ({judge}) chose candidate {chosen} of the {tied} failing the fewest checks")
