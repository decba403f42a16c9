"""Ranking: candidates scored by the gateway's checks, the fewest failures winning (the first drawn on a
tie), per the profile's criteria."""

from __future__ import annotations

import pytest

from gateway_app.contract.events import AgentProfile
from gateway_app.moderation.checks import CheckSettings
from gateway_app.pipeline import ranking
from gateway_app.providers.base import ChatResult, TokenUsage


def result(text: str, finish: str = "stop") -> ChatResult:
    return ChatResult(text=text, finish_reason=finish, usage=TokenUsage(1, 1))


def profile(**ranking_spec) -> AgentProfile:
    return AgentProfile(agent_id="a", version=1, provider="openai", model="m", ranking=ranking_spec or {"candidates": 3},
                        response_format={"type": "json", "schema": {"type": "object", "required": ["answer"]}}
                        if ranking_spec.pop("json", False) else "text")


def failures(texts, spec=None, previous=()) -> list[list[str]]:
    chosen_profile = spec or profile()
    return [ranking.failed_checks(r, chosen_profile, CheckSettings(), previous) for r in texts]


def test_each_criterion_runs_its_checks():
    got = failures([result("I'm sorry, but I can't help with that."), result("What a shit idea."),
                    result("Mail me at jane@example.com."), result(""), result("Half an ans", "length"),
                    result("Your order ships today.")])
    assert got == [["refusal"], ["wordlist"], ["pii"], ["empty"], ["truncated"], []]


def test_the_fewest_failures_win_and_a_tie_goes_to_the_first_drawn():
    info = ranking.choose([["refusal"], [], []])
    assert (info.chosen, info.candidates) == (1, 3) and info.reason == "candidate 1 passed every check"
    assert ranking.choose([[], []]).chosen == 0 and "all 2 passed" in ranking.choose([[], []]).reason
    fewest = ranking.choose([["pii", "wordlist"], ["refusal"]])
    assert fewest.chosen == 1 and fewest.reason == "candidate 1 failed the fewest checks (refusal)"


def test_only_the_criteria_asked_for_count():
    only_quality = profile(candidates=2, by=["quality"])
    assert failures([result("What a shit idea."), result("I'm sorry, but I can't do that.")], only_quality) == [[],
                                                                                                            ["refusal"]]


def test_format_prefers_valid_json_and_repetition_a_new_answer():
    json_profile = profile(candidates=2, by=["format"], json=True)
    assert failures([result('{"nope": 1}'), result('{"answer": "yes"}')], json_profile) == [["format"], []]
    repeat_profile = profile(candidates=2, by=["repetition"])
    said = "Your order ships on Thursday morning from our Lisbon warehouse."
    assert failures([result(said), result("It left Lisbon today; expect it Thursday.")], repeat_profile,
                    previous=(said,)) == [["repetition"], []]


def test_ranking_is_refused_with_stream_and_bounded():
    with pytest.raises(ValueError, match="stream"):
        AgentProfile(agent_id="a", version=1, provider="openai", model="m", stream=True, ranking={"candidates": 2})
    with pytest.raises(ValueError):
        AgentProfile(agent_id="a", version=1, provider="openai", model="m", ranking={"candidates": 9})


def test_the_judge_sees_the_tied_candidates_and_its_number_is_read():
    judged_profile = AgentProfile(agent_id="a", version=1, provider="anthropic", model="claude",
                                  ranking={"candidates": 3, "judge": {"provider": "openai", "model": "gpt-4o-mini"}})
    assert ranking.tied_best([["pii"], [], [], ["refusal"]]) == [1, 2]
    asked = ranking.judge_request(judged_profile, "where is my order?", ["It ships today.", "Today."])
    assert asked.model == "gpt-4o-mini" and asked.system_prompt == ranking.JUDGE_INSTRUCTION and asked.max_tokens == 5
    assert asked.messages[0].content == ("Candidate 1:\nIt ships today.\n\nCandidate 2:\nToday.\n\n"
                                         "The user's message:\nwhere is my order?")
    assert [ranking.judged(a, 2) for a in ("2", "Candidate 1 is best.", "3", "none", "0")] == [1, 0, None, None, None]
    info = ranking.choose_judged([["pii"], [], []], 2, "openai/gpt-4o-mini")
    assert info.chosen == 2 and info.reason == ("the judge (openai/gpt-4o-mini) chose candidate 2 of the 2 failing "
                                                "the fewest checks")
