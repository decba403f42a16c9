"""PII detection and masking: e-mail addresses, phone numbers, payment card numbers.

- e-mail: a regex (local part up to 64 characters, a dotted domain with a 2+ letter top-level label);
- phone: the `phonenumbers` library (Google's libphonenumber metadata): numbers written with +country in
  any country, and national numbers of the configured regions; only numbers valid for their country
  count (`Leniency.VALID`), so order numbers, dates, prices and versions do not;
- card: 13-19 digits (contiguous, or in groups of 3+ digits separated by one space or hyphen) that start
  like a payment card (2-6: Mastercard, Amex, Diners, JCB, Visa, Discover, UnionPay, Maestro) and pass
  the Luhn check.

Overlaps are resolved e-mail first, then card, then phone. Spans carry positions only: nothing here
logs or returns the matched text except through `mask`, which replaces it.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

import phonenumbers
from phonenumbers import Leniency, PhoneNumberMatcher

KINDS = ("email", "phone", "card")
PLACEHOLDERS = {"email": "[email]", "phone": "[phone]", "card": "[card]"}

_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}(?![\w-])")
_CARD = re.compile(r"(?<![\d.,])\d(?:[ -]?\d){12,18}(?![\d])")
_CARD_GROUP_SPLIT = re.compile(r"[ -]")
_DIGITS = re.compile(r"\d")
_MIN_PHONE_DIGITS = 6


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    kind: str  # "email" | "phone" | "card"


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check of a string of digits."""
    if not digits.isdigit():
        return False
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = ord(char) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def is_card_number(candidate: str) -> bool:
    """A written card number: 13-19 digits, groups of 3+ if separated, a card-like start, Luhn-valid."""
    groups = _CARD_GROUP_SPLIT.split(candidate)
    if len(groups) > 1 and any(len(group) < 3 for group in groups):
        return False
    digits = "".join(groups)
    return 13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_valid(digits)


def find_emails(text: str) -> list[Span]:
    if "@" not in text:
        return []
    return [Span(m.start(), m.end(), "email") for m in _EMAIL.finditer(text)]


def find_cards(text: str) -> list[Span]:
    return [Span(m.start(), m.end(), "card") for m in _CARD.finditer(text) if is_card_number(m.group())]


MAX_PHONE_TRIES = 40  # phone-number candidates parsed per region and text


def find_phones(text: str, regions: tuple[str, ...]) -> list[Span]:
    """Valid phone numbers: +country numbers anywhere, national numbers of `regions` (tried in order)."""
    digits = 0
    for _ in _DIGITS.finditer(text):
        digits += 1
        if digits >= _MIN_PHONE_DIGITS:
            break
    else:
        return []
    spans: dict[tuple[int, int], Span] = {}
    for region in regions or (None,):
        # Bounded: a text of nothing but digit groups would otherwise cost tens of ms per KB and region
        # on the event loop; past MAX_PHONE_TRIES candidates a region stops looking (and may miss one).
        for match in PhoneNumberMatcher(text, region, leniency=Leniency.VALID, max_tries=MAX_PHONE_TRIES):
            spans.setdefault((match.start, match.end), Span(match.start, match.end, "phone"))
    return list(spans.values())


def find(text: str, kinds: tuple[str, ...] = KINDS, regions: tuple[str, ...] = ("US",)) -> list[Span]:
    """The PII spans of `text`, non-overlapping, in text order."""
    found: list[Span] = []
    if "email" in kinds:
        found += find_emails(text)
    if "card" in kinds:
        found += find_cards(text)
    if "phone" in kinds:
        found += find_phones(text, regions)
    priority = {kind: i for i, kind in enumerate(KINDS)}  # e-mail, then card, then phone
    kept: list[Span] = []  # sorted by start, non-overlapping
    starts: list[int] = []
    for span in sorted(found, key=lambda s: (priority[s.kind], s.start)):
        i = bisect.bisect_left(starts, span.start)
        if (i == 0 or kept[i - 1].end <= span.start) and (i == len(kept) or span.end <= kept[i].start):
            kept.insert(i, span)
            starts.insert(i, span.start)
    return kept


def mask(text: str, spans: list[Span]) -> str:
    """`text` with each span replaced by its kind's placeholder ("[email]", "[phone]", "[card]")."""
    out: list[str] = []
    position = 0
    for span in sorted(spans, key=lambda s: s.start):
        out.append(text[position:span.start])
        out.append(PLACEHOLDERS[span.kind])
        position = span.end
    out.append(text[position:])
    return "".join(out)


def known_region(region: str) -> bool:
    return region in phonenumbers.SUPPORTED_REGIONS
