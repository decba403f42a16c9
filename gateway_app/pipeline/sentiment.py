"""Sentiment of a reply and of the user's message (profile `post_processing: ["sentiment"]`): VADER
(`vaderSentiment`, a lexicon and rules tuned for short social-media and chat text; offline, nothing
downloaded). English only: text in other languages mostly scores neutral.

`score` gives VADER's compound score (-1 to 1) and its label by VADER's own thresholds (>= 0.05
positive, <= -0.05 negative, else neutral). The lexicon loads on first use (about 0.1 s; `warm_up`).
"""

from __future__ import annotations

import threading

from gateway_app.contract.events import SentimentScore

POSITIVE_AT = 0.05
NEGATIVE_AT = -0.05
MAX_CHARS = 2000  # read of each text: a long reply's tone is set long before its end, and VADER is O(n)

_lock = threading.Lock()
_analyzer = None


def warm_up() -> None:
    global _analyzer
    if _analyzer is None:
        with _lock:
            if _analyzer is None:
                from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

                _analyzer = SentimentIntensityAnalyzer()


def loaded() -> bool:
    return _analyzer is not None


def label_of(compound: float) -> str:
    if compound >= POSITIVE_AT:
        return "positive"
    if compound <= NEGATIVE_AT:
        return "negative"
    return "neutral"


def score(text: str) -> SentimentScore | None:
    """None for text with nothing to judge (empty or blank)."""
    if not text.strip():
        return None
    warm_up()
    compound = round(float(_analyzer.polarity_scores(text[:MAX_CHARS])["compound"]), 4)  # type: ignore[union-attr]
    return SentimentScore(label=label_of(compound), score=compound)
