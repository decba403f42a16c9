"""Repetition: how close a reply is to the agent's previous replies (`rapidfuzz`).

Texts are compared case-folded with runs of whitespace collapsed, by `fuzz.ratio` (normalised Indel
similarity, 0-1): 1.0 is the same text, a reply that only changed a word or two in a paragraph scores
above 0.9. Only the first `MAX_COMPARED_CHARS` characters of each text are compared, which keeps a check
within milliseconds whatever the lengths.
"""

from __future__ import annotations

from rapidfuzz import fuzz

MAX_COMPARED_CHARS = 4000


def normalise(text: str) -> str:
    return " ".join(text[:MAX_COMPARED_CHARS * 2].split()).casefold()[:MAX_COMPARED_CHARS]


def most_similar(text: str, previous: tuple[str, ...]) -> tuple[float, int]:
    """(the highest similarity 0-1, its index in `previous`); (0.0, -1) when `previous` is empty."""
    reply = normalise(text)
    best, best_index = 0.0, -1
    for index, earlier in enumerate(previous):
        score = fuzz.ratio(reply, normalise(earlier), score_cutoff=best * 100) / 100
        if score > best:
            best, best_index = score, index
    return best, best_index
