"""Sentiment post-processing: VADER's label by its own thresholds, nothing for blank text, the stage on
the reply and the moderation events, and a failure that never blocks."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from gateway_app.contract.events import AgentProfile, SentimentInfo
from gateway_app.pipeline import sentiment
from gateway_app.pipeline.stages import sentiment as stage


def test_labels_follow_the_compound_score():
    assert sentiment.score("Great, thanks so much, that helped a lot!").label == "positive"
    assert sentiment.score("This is useless and I hate it.").label == "negative"
    assert sentiment.score("Your order ships on Thursday.").label == "neutral"
    assert sentiment.score("   ") is None and sentiment.score("") is None
    assert [sentiment.label_of(x) for x in (0.05, 0.0499, -0.05, -0.0499)] == ["positive", "neutral", "negative",
                                                                                 "neutral"]


def ctx_for(post_processing: list[str], reply: str = "Glad I could help!", user: str = "This is awful."):
    profile = AgentProfile(agent_id="a", version=1, provider="echo", model="echo-1", post_processing=post_processing)
    event = SimpleNamespace(model_copy=lambda update: {"event": "flagged", **update})
    return SimpleNamespace(require_profile=lambda: profile, result=SimpleNamespace(text=reply),
                           message=SimpleNamespace(content=user, message_id="m1"), sentiment=None,
                           moderation_events=[event])


async def test_the_stage_scores_reply_and_user_and_marks_the_moderation_events():
    ctx = ctx_for(["sentiment"])
    await stage.Sentiment(None).run(ctx)
    assert ctx.sentiment.reply.label == "positive" and ctx.sentiment.user.label == "negative"
    assert ctx.moderation_events == [{"event": "flagged", "sentiment": ctx.sentiment}]


async def test_without_the_profile_asking_nothing_is_scored():
    ctx = ctx_for([])
    await stage.Sentiment(None).run(ctx)
    assert ctx.sentiment is None


async def test_a_failing_analysis_never_blocks(monkeypatch, caplog):
    def broken(text):
        raise RuntimeError("lexicon gone")

    monkeypatch.setattr(sentiment, "score", broken)
    ctx = ctx_for(["sentiment"])
    await stage.Sentiment(None).run(ctx)
    assert ctx.sentiment is None and "sentiment.failed" in caplog.text


def test_the_profile_accepts_only_known_analyses():
    with pytest.raises(ValueError):
        AgentProfile(agent_id="a", version=1, provider="echo", model="echo-1", post_processing=["summary"])
    assert SentimentInfo().reply is None
