"""The language an agent answers in (`language` in the profile): a fixed BCP 47 tag, or `auto` (the
language of the user's message, identified offline by the moderation's identifier, py3langid).

The prompt stage adds one instruction to the system prompt and the reply says which language was asked
for (`language`). Without `language` in the profile nothing is added (the model answers as it will, and
the moderation `language` check compares with the user's message). Pure, apart from the identifier's
model, loaded on first use.
"""

from __future__ import annotations

from functools import lru_cache

import langcodes

from gateway_app.contract.profile import AUTO_LANGUAGE
from gateway_app.moderation import language as identifier

# `auto` judges only messages with this many letters (code, URLs and addresses aside): shorter ones ("ok",
# "thanks!") say too little about their language, and the model then answers as it will.
AUTO_MIN_LETTERS = 12
# ... and names a language only when the identifier gives it at least this probability.
AUTO_CONFIDENCE = 0.8


@lru_cache(maxsize=512)
def display_name(tag: str) -> str:
    """English name of a tag, for the model: "pt-BR" -> "Portuguese (Brazil)"."""
    return langcodes.Language.get(tag).display_name()


def detect(text: str) -> str | None:
    """The ISO 639 code of `text`'s language, or None when it is too short or the identifier unsure."""
    prose = identifier.prose(text)
    if identifier.letter_count(prose) < AUTO_MIN_LETTERS:
        return None
    probabilities = identifier.identify(prose)
    code, probability = max(probabilities.items(), key=lambda item: item[1])
    return code if probability >= AUTO_CONFIDENCE and code != identifier.NO_LANGUAGE else None


def instruction(tag: str, *, detected: bool) -> str:
    name = display_name(tag)
    if detected:
        return f"Answer in {name}, the language of the user's last message."
    return f"Always answer in {name} ({tag}), whatever language the user writes in."


def for_message(setting: str | None, user_text: str) -> tuple[str | None, str | None]:
    """(the language tag the reply is asked for, the instruction that asks for it); (None, None) when the
    profile sets none, or `auto` could not tell."""
    if setting is None:
        return None, None
    if setting != AUTO_LANGUAGE:
        return setting, instruction(setting, detected=False)
    code = detect(user_text)
    return (code, instruction(code, detected=True)) if code else (None, None)
