"""Quality checks of a reply's text: blank, refusal phrasing, truncation, length."""

from __future__ import annotations

import re
import unicodedata

# finish reasons that mean "cut at the token limit": OpenAI/Cohere-style and Anthropic's stop_reason.
TRUNCATED_FINISH_REASONS = frozenset({"length", "max_tokens"})

# Refusal phrasings (English, Spanish, French, German, Portuguese, Italian), matched at the start of a reply only (after any leading whitespace, quotes or markdown
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
    # Spanish: "Lo siento, pero no puedo ayudar con eso." / "No puedo ayudarte con esa solicitud."
    r"(?:lo siento|lo lamento|disculpa|disculpe|perd[oó]n|lamentablemente)[,.!]?\s*(?:pero\s+)?no\s+"
    r"(?:puedo|me es posible|estoy autorizad[oa] a)\s+(?:ayudar\w*|proporcionar\w*|responder\w*|hacer eso"
    r"|cumplir|crear|generar|escribir|compartir)",
    r"no puedo ayudar(?:te|le)? con (?:eso|esto|esa solicitud|tu solicitud|su solicitud)",
    # French: "Je suis désolé, mais je ne peux pas vous aider avec cela." / "Je ne peux pas répondre à cela."
    r"(?:je suis (?:d[ée]sol[ée]e?|navr[ée]e?)|d[ée]sol[ée]e?|malheureusement)[,.!]?\s*(?:mais\s+)?je ne\s+"
    r"(?:peux pas|suis pas en mesure de|suis pas autoris[ée]e? [àa])\s+(?:vous |t'|te )?"
    r"(?:aider|fournir|r[ée]pondre|faire cela|faire [çc]a|cr[ée]er|g[ée]n[ée]rer|[ée]crire|partager)",
    r"je ne peux pas (?:vous |t')?aider (?:avec|pour) (?:cela|[çc]a|cette demande|votre demande)",
    # German: "Es tut mir leid, aber ich kann dabei nicht helfen." / "Leider kann ich das nicht tun."
    r"(?:es tut mir leid|entschuldigung|leider)[,.!]?\s*(?:aber\s+)?(?:ich kann|kann ich)\s+"
    r"(?:(?:dir|ihnen|das|dies|dabei|damit|hierbei|diese anfrage)\s+)*(?:nicht|keine)\b",
    r"ich kann (?:dir |ihnen )?(?:dabei|damit|hierbei) nicht helfen",
    # Portuguese: "Desculpe, mas não posso ajudar com isso." / "Não posso ajudar com essa solicitação."
    r"(?:desculpe|desculpa|lamento|sinto muito|infelizmente)[,.!]?\s*(?:mas\s+)?(?:eu\s+)?n[ãa]o\s+"
    r"(?:posso|consigo|estou autorizad[oa] a)\s+(?:ajudar|fornecer|responder|fazer isso|criar|gerar|escrever"
    r"|compartilhar|atender)",
    r"n[ãa]o posso (?:te |lhe )?ajudar com (?:isso|isto|essa solicita[çc][ãa]o|esse pedido|o seu pedido)",
    # Italian: "Mi dispiace, ma non posso aiutarti con questo." / "Non posso aiutarti con questa richiesta."
    r"(?:mi dispiace|spiacente|purtroppo)[,.!]?\s*(?:ma\s+)?non\s+(?:posso|sono in grado di|sono autorizzat[oa] a)"
    r"\s+(?:aiutar\w*|fornire|rispondere|farlo|creare|generare|scrivere|condividere)",
    r"non posso aiutar(?:ti|la|vi) con (?:questo|questa richiesta|ci[òo])",
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
