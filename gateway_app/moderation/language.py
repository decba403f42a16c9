"""Language identification (`py3langid`: a naive Bayes model of byte n-grams over 140 languages, shipped in
its wheel, about 5 MB; nothing is downloaded).

The model loads on first use (under a second; `warm_up()` loads it ahead). Before identification a text is
stripped of what is not prose: fenced and inline code, URLs, e-mail addresses, @mentions. Only its first
`MAX_JUDGED_CHARS` characters are read.

`identify` returns the probabilities of every language; py3langid normalises them with a temperature of
sqrt(bytes), which keeps them comparable across lengths. On 40-300 character chat replies in en, fr, de,
es, it, pt and nl it picked the right language every time; its confidence was above 0.9 for most, and as
low as 0.54 where a close relative shares the words (Spanish vs Aragonese, Portuguese vs Galician).
"""

from __future__ import annotations

import re
import threading

MAX_JUDGED_CHARS = 3000
NO_LANGUAGE = "zxx"  # the model's label for text without linguistic content

# Codes that name the same language (or one the model cannot tell apart in writing): a reply identified as
# any member of the expected language's group is in the expected language.
_ALIASES = {"nb": "no", "iw": "he", "in": "id", "ji": "yi", "fil": "tl", "jw": "jv", "mo": "ro"}
_GROUPS = (frozenset({"no", "nn"}), frozenset({"bs", "hr", "sr"}), frozenset({"zh", "wuu", "yue"}))

_NOT_PROSE = re.compile(
    r"```.*?(?:```|$)"              # fenced code (an unclosed fence runs to the end)
    r"|`[^`\n]*`"                   # inline code
    r"|\b(?:https?|ftp)://\S+|\bwww\.\S+"  # URLs
    r"|\S+@\S+"                     # e-mail addresses, user@host
    r"|(?<!\w)@\w+",                # @mentions
    re.DOTALL)

_lock = threading.Lock()
_identifier = None


def _get_identifier():
    global _identifier
    if _identifier is None:
        with _lock:
            if _identifier is None:
                from py3langid.langid import MODEL_FILE, LanguageIdentifier

                _identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    return _identifier


def warm_up() -> None:
    """Load the model now, not inside a check (it takes under a second and about 90 MB of memory)."""
    _get_identifier()


def loaded() -> bool:
    return _identifier is not None


def prose(text: str) -> str:
    """The part of `text` that is judged: code, URLs, e-mail addresses and mentions removed."""
    return _NOT_PROSE.sub(" ", text[:MAX_JUDGED_CHARS])


def letter_count(text: str) -> int:
    return sum(1 for char in text if char.isalpha())


def normalise_code(code: str | None) -> str | None:
    """ISO 639-1 code of a profile setting ("en-US", "pt_BR", "EN" -> "en", "pt", "en"); None if blank."""
    if not code:
        return None
    base = code.strip().replace("_", "-").split("-")[0].lower()
    return _ALIASES.get(base, base) or None


def same_language(a: str, b: str) -> bool:
    return a == b or any(a in group and b in group for group in _GROUPS)


def supported(code: str) -> bool:
    return code in _get_identifier().labels


def identify(text: str) -> dict[str, float]:
    """The probability of each language the model knows for `text` (already reduced by `prose`)."""
    return dict(_get_identifier().rank(text))


def group_probability(probabilities: dict[str, float], code: str) -> float:
    """The probability of `code` and of the codes the model cannot tell apart from it."""
    return sum(p for lang, p in probabilities.items() if same_language(lang, code))
