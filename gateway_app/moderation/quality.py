"""Quality checks of a reply's text: blank, refusal phrasing, truncation, length."""

from __future__ import annotations

import re
import unicodedata

# finish reasons that mean "cut at the token limit": OpenAI/Cohere-style and Anthropic's stop_reason.
TRUNCATED_FINISH_REASONS = frozenset({"length", "max_tokens"})

# Refusal phrasings, matched at the start of a reply only (after any leading whitespace, quotes or markdown
# emphasis), case-insensitively, with typographic apostrophes read as plain ones. Kept conservative: a
# reply that opens with "I'm sorry to hear that" or "I can't wait" is not a refusal.
_CANNOT = (r"(?:can(?:no|')?t|can not|won't|will not|am unable to|'m unable to|am not able to|'m not able to"
           r"|must decline to|am not allowed to|'m not allowed to|am not permitted to|'m not permitted to)")
_ACTS = (r"(?:help|assist|comply|provide|fulfil|fulfill|share|create|generate|write|produce"
         r"|answer|respond|engage|do that|do this|continue|discuss)")
_TARGET = r"(?:that|this|it|your request|the request|such requests?|with that|with this|with your request)"
DEFAULT_REFUSAL_PATTERNS: tuple[str, ...] = (
    # "I'm sorry, but I can't help with that." / "Sorry, I cannot provide ..." / "I'm afraid I can't do that."
    rf"(?:i'?m (?:very |really |so )?sorry|i am sorry|sorry|i apologi[sz]e|apologies|unfortunately"
    rf"|i'?m afraid|i am afraid)[,.!]?\s*"
    rf"(?:but\s+|however,?\s+)?i\s*{_CANNOT}\s+{_ACTS}\b",
    # "I can't help with that." / "I cannot assist with this request."
    rf"i\s*{_CANNOT}\s+(?:help|assist)\s+(?:you\s+)?with\s+{_TARGET}",
    rf"i\s*{_CANNOT}\s+comply\b",
    # "As an AI, I am unable to ..." / "As an AI language model, I cannot ..."
    rf"as an ai(?: language model| model| assistant)?,?\s+"
    rf"i\s*(?:{_CANNOT}|don't have the ability|do not have the ability)",
    # "I must decline." / "I have to decline this request."
    r"i (?:must|have to|need to|will have to|'ll have to) (?:respectfully |politely )?decline\b",
)
_LEADING_NOISE = re.compile(r"^[\s\"'*_>#`\-\u201c\u2018]*")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\uff07": "'"})
REFUSAL_WINDOW = 200  # characters read from the start of the reply


def compile_refusal(patterns: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)


_DEFAULT_REFUSAL = compile_refusal(DEFAULT_REFUSAL_PATTERNS)


def is_blank(text: str) -> bool:
    """Nothing but whitespace and invisible format characters (zero-width spaces, BOM, joiners)."""
    return all(char.isspace() or unicodedata.category(char) in ("Cf", "Cc", "Zs", "Zl", "Zp") for char in text)


def opens_with_refusal(text: str, regex: re.Pattern[str] = _DEFAULT_REFUSAL) -> bool:
    head = _LEADING_NOISE.sub("", text[:REFUSAL_WINDOW]).translate(_APOSTROPHES)
    return regex.match(head) is not None


def is_truncated(finish_reason: str | None) -> bool:
    return (finish_reason or "").strip().lower() in TRUNCATED_FINISH_REASONS
