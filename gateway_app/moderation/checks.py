"""The local moderation checks of a reply: the interface and the registry.

A check is a pure function `(CheckInput, CheckSettings) -> CheckResult`: no I/O (the lists and the language
model ship in packages), no state, microseconds to a few milliseconds on a 1 KB reply, and it does not
raise on any text (a bad setting raises `ValueError` when the `CheckSettings` is built, not on a reply).
A result says whether the reply passed; what follows when it did not (block, mask, flag, retry) and what
to do when a check cannot run are the caller's decisions.

| check | fires when |
| --- | --- |
| `wordlist` | an entry of `words` (whole words, case-insensitive) or a regex of `patterns` occurs |
| `pii` | an e-mail address, a phone number or a card number (Luhn-valid) occurs; `masked` hides them |
| `repetition` | the reply is at least `repetition_threshold` similar to one of the agent's last replies |
| `empty` | the reply is empty or blank (whitespace, zero-width characters) |
| `refusal` | the provider's own refusal field said so, or the reply opens with a refusal phrasing |
| `truncated` | the provider stopped at the token limit (`finish_reason` "length" or "max_tokens") |
| `language` | the reply is, with confidence, in another language than the expected one |
| `too_long` | the reply has more than `max_chars` characters |

Usage:

    settings = CheckSettings.from_config(global_moderation, profile_moderation)
    results = run_local(["pii", "refusal", "language"], CheckInput(text=reply, expected_language="fr"), settings)
    failed = [r for r in results if not r.passed]

A little over 300 lines on purpose: the check interface, its settings and the registry of local checks
read in one file; the checks' own logic lives in pii, quality, language, repetition and wordlists.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from typing import Any

from gateway_app.moderation import language, pii, quality, repetition, wordlists
from gateway_app.moderation.wordlists import DEFAULT_WORDS

__all__ = [
    "CHECK_NAMES", "DEFAULT_WORDS", "LOCAL_CHECKS", "CheckInput", "CheckResult", "CheckSettings",
    "mask_text", "run_local", "warm_up",
]


@dataclass(frozen=True)
class CheckInput:
    """One reply and what the checks need to know around it."""

    text: str
    finish_reason: str | None = None       # the provider's, as it gave it ("stop", "length", "max_tokens", ...)
    refused: bool = False                  # the provider's own refusal field said so
    expected_language: str | None = None   # ISO 639-1 from the profile ("en", "pt-BR" is read as "pt"), else None
    user_message: str | None = None        # to infer the expected language when the profile has none
    previous_replies: tuple[str, ...] = ()  # the agent's earlier replies in the room, oldest first
    max_chars: int | None = None           # overrides `CheckSettings.max_chars` for this reply


@dataclass(frozen=True)
class CheckResult:
    check: str                             # a name of LOCAL_CHECKS
    passed: bool
    categories: tuple[str, ...] = ()       # pii: kinds found ("email", "phone", "card"); wordlist: lists matched
                                           # ("default", "custom", "patterns"); refusal: "provider" or "text";
                                           # language: the identified language
    scores: dict[str, float] = field(default_factory=dict)  # e.g. {"similarity": 0.93}
    detail: str = ""                       # short, human-readable; never the matched text itself
    masked: str | None = None              # pii, wordlist when they fired: the text with the spans masked

    @property
    def fired(self) -> bool:
        return not self.passed


@dataclass(frozen=True)
class CheckSettings:
    """The knobs of the local checks, per profile or global (`from_config` layers them). Immutable and
    hashable: lists given as lists are stored as tuples."""

    # wordlist: whole-word, case-insensitive entries (a phrase, or a prefix ending with *); the default is
    # the shipped list (gateway_app/moderation/data/default_wordlist.txt); () turns word matching off.
    words: tuple[str, ...] = DEFAULT_WORDS
    # wordlist: extra regular expressions, matched case-insensitively.
    patterns: tuple[str, ...] = ()
    # pii: the kinds detected, of "email", "phone", "card".
    pii: tuple[str, ...] = pii.KINDS
    # pii: regions (ISO 3166-1 alpha-2) whose national numbers (no +country) count as phone numbers;
    # numbers written with +country are found whatever the regions.
    phone_regions: tuple[str, ...] = ("US", "GB", "DE", "FR")
    # repetition: fires at this similarity (0-1, rapidfuzz's normalised Indel ratio) or above.
    repetition_threshold: float = 0.9
    # repetition: how many of the most recent previous replies are compared.
    repetition_window: int = 5
    # repetition: replies shorter than this (after collapsing whitespace) are not compared ("OK!", "Thanks!").
    repetition_min_chars: int = 20
    # language: texts with fewer letters than this (code, URLs and addresses aside) are not judged; the same
    # for the user's message when it is what gives the expected language.
    language_min_chars: int = 40
    # language: fires only when the identified language has at least this probability and the expected
    # language at most `LANGUAGE_EXPECTED_MAX` (0.05), so a split between close relatives never fires.
    language_confidence: float = 0.7
    # too_long: the limit in characters when the input gives none; None: never too long.
    max_chars: int | None = 4000
    # refusal: regexes matched at the start of a reply (case-insensitive); the default is conservative.
    refusal_patterns: tuple[str, ...] = quality.DEFAULT_REFUSAL_PATTERNS

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (list, set, frozenset)):
                object.__setattr__(self, f.name, tuple(value))
            elif isinstance(value, str) and f.name in _TUPLE_FIELDS:
                raise ValueError(f"moderation setting {f.name} must be a list, not a string")
        unknown = set(self.pii) - set(pii.KINDS)
        if unknown:
            raise ValueError(f"unknown pii kinds {sorted(unknown)} (known: {', '.join(pii.KINDS)})")
        regions = [r for r in self.phone_regions if not pii.known_region(r)]
        if regions:
            raise ValueError(f"unknown phone regions {regions} (ISO 3166-1 alpha-2 codes, upper case)")
        for name in ("repetition_threshold", "language_confidence"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"moderation setting {name} must be a number between 0 and 1")
        for name in ("repetition_window", "repetition_min_chars", "language_min_chars", "max_chars"):
            value = getattr(self, name)
            if name == "max_chars" and value is None:
                continue
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"moderation setting {name} must be a whole number, not negative")
        try:
            wordlists.matcher(self.words, self.patterns)
            _refusal_regex(self.refusal_patterns)
        except re.error as exc:
            raise ValueError(f"invalid moderation pattern: {exc}") from exc

    @classmethod
    def from_config(cls, *layers: Mapping[str, Any] | None) -> CheckSettings:
        """Settings from config mappings, later layers over earlier ones (global, then profile).

        Keys are the field names; `extra_words` and `extra_patterns` add to the list as it stands so far
        (a profile extends the default list with `extra_words`, replaces it with `words`). A value is taken
        as given: `max_chars: None` in a later layer removes the limit.
        """
        settings = cls()
        for layer in layers:
            if not layer:
                continue
            known = {f.name for f in fields(cls)}
            unknown = set(layer) - known - {"extra_words", "extra_patterns"}
            if unknown:
                raise ValueError(f"unknown moderation settings: {', '.join(sorted(unknown))}")
            changes: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                                       for k, v in layer.items() if k in known}
            if "extra_words" in layer:
                changes["words"] = (*changes.get("words", settings.words), *layer["extra_words"])
            if "extra_patterns" in layer:
                changes["patterns"] = (*changes.get("patterns", settings.patterns), *layer["extra_patterns"])
            settings = replace(settings, **changes)
        return settings


_TUPLE_FIELDS = frozenset({"words", "patterns", "pii", "phone_regions", "refusal_patterns"})
LANGUAGE_EXPECTED_MAX = 0.05


@lru_cache(maxsize=32)
def _refusal_regex(patterns: tuple[str, ...]) -> re.Pattern[str]:
    return quality.compile_refusal(patterns) if patterns else re.compile(r"(?!)")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "es" if noun.endswith("ch") else "s")


def check_wordlist(data: CheckInput, settings: CheckSettings) -> CheckResult:
    matches = wordlists.matcher(settings.words, settings.patterns).find(data.text)
    if not matches:
        return CheckResult("wordlist", True)
    sources = tuple(s for s in ("default", "custom", "patterns") if any(m.source == s for m in matches))
    return CheckResult("wordlist", False, sources, {"matches": float(len(matches))},
                       _plural(len(matches), "match"), wordlists.mask(data.text, matches))


def check_pii(data: CheckInput, settings: CheckSettings) -> CheckResult:
    spans = pii.find(data.text, settings.pii, settings.phone_regions)
    if not spans:
        return CheckResult("pii", True)
    counts = {kind: sum(1 for s in spans if s.kind == kind) for kind in pii.KINDS}
    counts = {kind: n for kind, n in counts.items() if n}
    return CheckResult("pii", False, tuple(counts), {k: float(n) for k, n in counts.items()},
                       ", ".join(f"{n} {kind}" for kind, n in counts.items()), pii.mask(data.text, spans))


def check_repetition(data: CheckInput, settings: CheckSettings) -> CheckResult:
    window = settings.repetition_window
    previous = tuple(data.previous_replies[-window:]) if window else ()
    if not previous:
        return CheckResult("repetition", True, detail="no previous replies")
    if len(repetition.normalise(data.text)) < settings.repetition_min_chars:
        return CheckResult("repetition", True, detail="too short to compare")
    similarity, index = repetition.most_similar(data.text, previous)
    scores = {"similarity": round(similarity, 4)}
    if similarity < settings.repetition_threshold:
        return CheckResult("repetition", True, scores=scores)
    back = len(previous) - index
    return CheckResult("repetition", False, scores=scores,
                       detail=f"{similarity:.2f} similar to the reply {back} back")


def check_empty(data: CheckInput, settings: CheckSettings) -> CheckResult:
    if quality.is_blank(data.text):
        return CheckResult("empty", False, detail="empty" if not data.text else "blank")
    return CheckResult("empty", True)


def check_refusal(data: CheckInput, settings: CheckSettings) -> CheckResult:
    if data.refused:
        return CheckResult("refusal", False, ("provider",), detail="the provider reported a refusal")
    if quality.opens_with_refusal(data.text, _refusal_regex(settings.refusal_patterns)):
        return CheckResult("refusal", False, ("text",), detail="the reply opens with a refusal")
    return CheckResult("refusal", True)


def check_truncated(data: CheckInput, settings: CheckSettings) -> CheckResult:
    if quality.is_truncated(data.finish_reason):
        return CheckResult("truncated", False, detail=f"finish reason {data.finish_reason.strip().lower()}")
    return CheckResult("truncated", True)


def check_too_long(data: CheckInput, settings: CheckSettings) -> CheckResult:
    limit = data.max_chars if data.max_chars is not None else settings.max_chars
    scores = {"chars": float(len(data.text))}
    if limit is None or len(data.text) <= limit:
        return CheckResult("too_long", True, scores=scores)
    return CheckResult("too_long", False, scores=scores, detail=f"{len(data.text)} characters, limit {limit}")


def check_language(data: CheckInput, settings: CheckSettings) -> CheckResult:
    expected = language.normalise_code(data.expected_language)
    source = "the profile"
    text = language.prose(data.text)
    if language.letter_count(text) < max(settings.language_min_chars, 1):
        return CheckResult("language", True, detail="too short to judge")
    if expected is None and data.user_message:
        user = language.prose(data.user_message)
        if language.letter_count(user) >= max(settings.language_min_chars, 1):
            probabilities = language.identify(user)
            code, confidence = max(probabilities.items(), key=lambda kv: kv[1])
            if confidence >= settings.language_confidence and code != language.NO_LANGUAGE:
                expected, source = code, "the user's message"
    if expected is None:
        return CheckResult("language", True, detail="no expected language")
    if not language.supported(expected):
        return CheckResult("language", True, detail=f"language {expected[:8]!r} is not identified")
    probabilities = language.identify(text)
    identified, confidence = max(probabilities.items(), key=lambda kv: kv[1])
    expected_probability = language.group_probability(probabilities, expected)
    scores = {"language_confidence": round(confidence, 4), "expected_probability": round(expected_probability, 4)}
    fired = (identified != language.NO_LANGUAGE and not language.same_language(identified, expected)
             and confidence >= settings.language_confidence and expected_probability <= LANGUAGE_EXPECTED_MAX)
    detail = f"identified {identified}, expected {expected} (from {source})"
    return CheckResult("language", not fired, (identified,), scores, detail)


LOCAL_CHECKS: dict[str, Callable[[CheckInput, CheckSettings], CheckResult]] = {
    "wordlist": check_wordlist,
    "pii": check_pii,
    "repetition": check_repetition,
    "empty": check_empty,
    "refusal": check_refusal,
    "truncated": check_truncated,
    "language": check_language,
    "too_long": check_too_long,
}
CHECK_NAMES: tuple[str, ...] = tuple(LOCAL_CHECKS)


def run_local(names: Iterable[str], data: CheckInput, settings: CheckSettings | None = None) -> list[CheckResult]:
    """Run the named checks, in the given order. Unknown names raise `ValueError` (a configuration error,
    raised before any check runs); a check itself does not raise on any text."""
    names = list(names)
    unknown = [name for name in names if name not in LOCAL_CHECKS]
    if unknown:
        raise ValueError(f"unknown moderation checks {unknown} (known: {', '.join(CHECK_NAMES)})")
    settings = settings or CheckSettings()
    return [LOCAL_CHECKS[name](data, settings) for name in names]


def warm_up(settings: CheckSettings | None = None, *, with_language: bool = True) -> None:
    """Do ahead what the first reply would otherwise wait for: compile the settings' lists and (unless
    told not to) load the language model (under a second, about 90 MB: a worker loads it only once a
    profile uses the `language` check)."""
    settings = settings or CheckSettings()
    if with_language:
        language.warm_up()
    wordlists.matcher(settings.words, settings.patterns)
    _refusal_regex(settings.refusal_patterns)


def mask_text(text: str, settings: CheckSettings | None = None, checks: Iterable[str] = ("pii", "wordlist")) -> str:
    """`text` with what the maskable checks find masked, one after the other (PII first, so a list entry
    never splits an address)."""
    settings = settings or CheckSettings()
    for name in checks:
        if name not in ("pii", "wordlist"):
            raise ValueError(f"{name} is not a maskable check (pii, wordlist)")
        result = LOCAL_CHECKS[name](CheckInput(text=text), settings)
        if result.masked is not None:
            text = result.masked
    return text
