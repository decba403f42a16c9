"""Ranking candidates (profile `ranking`): each answer is scored by the checks the gateway already has and
the one that fails the fewest wins; on a tie, the first drawn (the provider's own order). Pure.

Criteria (`ranking.by`) and the checks each runs:
- quality: `empty`, `refusal`, `truncated`, `too_long` (the profile's `moderation.max_chars`);
- moderation: `wordlist` (the profile's and the worker's lists), `pii`;
- repetition: `repetition` against the agent's last replies in the room;
- format: with `response_format` `json`, the answer is one JSON value valid against the profile's schema.
"""

from __future__ import annotations

from typing import Sequence

from gateway_app.contract.events import AgentProfile, RankingInfo
from gateway_app.moderation.checks import CheckInput, CheckSettings, run_local
from gateway_app.pipeline.formats import check_json
from gateway_app.providers.base import ChatResult

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
