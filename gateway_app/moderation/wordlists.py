"""Word and pattern lists: whole-word, case-insensitive matching and masking.

An entry is a word or a phrase (its words separated by any run of whitespace); an entry ending with `*`
matches any word starting with it. Entries match whole words only: "ass" never fires on "class".
Patterns are regular expressions, matched case-insensitively as they are. Both compile once per distinct
list (cached), so a check costs one regex scan of the reply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

WORD_MASK = "***"


def parse_wordlist(text: str) -> tuple[str, ...]:
    """The entries of a word-list file: one a line, `#` comment lines and blank lines skipped."""
    entries: list[str] = []
    for line in text.splitlines():
        entry = " ".join(line.split())
        if entry and not entry.startswith("#"):
            entries.append(entry)
    return tuple(dict.fromkeys(entries))


def load_default_words() -> tuple[str, ...]:
    """The shipped default list (`data/default_wordlist.txt`)."""
    data = resources.files(__package__).joinpath("data/default_wordlist.txt")
    return parse_wordlist(data.read_text(encoding="utf-8"))


DEFAULT_WORDS: tuple[str, ...] = load_default_words()


def entry_regex(entry: str) -> str:
    """The regex source of one entry (without the word boundaries)."""
    prefix = entry.endswith("*")
    words = entry.rstrip("*").split()
    if not words:
        return ""
    source = r"\s+".join(re.escape(word) for word in words)
    return source + (r"\w*" if prefix else "")


@dataclass(frozen=True)
class Match:
    start: int
    end: int
    source: str  # "default" (an entry of the shipped list), "custom" (any other entry) or "patterns"


class Matcher:
    """Finds the entries of a word list and the patterns in a text. Build it with `matcher()`."""

    def __init__(self, words: tuple[str, ...], patterns: tuple[str, ...]):
        default = set(DEFAULT_WORDS)
        default_alts = [entry_regex(w) for w in words if w in default]
        custom_alts = [entry_regex(w) for w in words if w not in default]
        self._regexes: list[tuple[str, re.Pattern[str]]] = []
        for source, alts in (("default", default_alts), ("custom", custom_alts)):
            alts = sorted({a for a in alts if a}, key=len, reverse=True)  # the longest phrase wins
            if alts:
                self._regexes.append(
                    (source, re.compile(r"(?<!\w)(?:" + "|".join(alts) + r")(?!\w)", re.IGNORECASE)))
        for pattern in patterns:
            self._regexes.append(("patterns", re.compile(pattern, re.IGNORECASE)))

    def find(self, text: str) -> list[Match]:
        """Non-overlapping matches, in text order (an earlier start wins, then the longer one)."""
        found = [Match(m.start(), m.end(), source)
                 for source, regex in self._regexes for m in regex.finditer(text) if m.end() > m.start()]
        return drop_overlaps(found)


def drop_overlaps(matches: list[Match]) -> list[Match]:
    kept: list[Match] = []
    for match in sorted(matches, key=lambda m: (m.start, -(m.end - m.start))):
        if not kept or match.start >= kept[-1].end:
            kept.append(match)
    return kept


@lru_cache(maxsize=64)
def matcher(words: tuple[str, ...], patterns: tuple[str, ...]) -> Matcher:
    """The compiled matcher of a list (cached: settings are immutable, so lists repeat)."""
    return Matcher(words, patterns)


def mask(text: str, matches: list[Match], replacement: str = WORD_MASK) -> str:
    out: list[str] = []
    position = 0
    for match in matches:
        out.append(text[position:match.start])
        out.append(replacement)
        position = match.end
    out.append(text[position:])
    return "".join(out)
