"""What a profile's `response_format` and `max_reply_chars` do to a reply text: pure functions, no I/O.

Markdown is normalised by a CommonMark formatter (mdformat, on markdown-it-py), never by patterns: it
knows where a code block ends, which a regular expression does not. JSON is checked with `jsonschema`
(draft 2020-12) against a registry that never fetches anything: a profile's `$ref` to a URL must not
make the gateway call out.
"""

from __future__ import annotations

import json
import re
from typing import Any

import mdformat
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match
from referencing import Registry
from referencing.exceptions import Unresolvable

REASON_CHARS = 300  # a reason goes back to the model (repair) and into the error reply: keep it short
_NO_RETRIEVAL = Registry()  # the meta-schemas are added by jsonschema; any other unknown URI is unresolvable
# A sentence end: terminal punctuation, any closing quotes or brackets, then whitespace or the end.
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’»)\]}]*(?=\s|\Z)")


def normalize_markdown(text: str) -> str:
    """CommonMark, consistently written: unclosed code fences closed, headings, lists and code kept.
    Plain CommonMark: GFM tables need a plugin with its own dependencies, so a table stays as the
    paragraph text it was (unchanged). Never raises: on any library error the text is returned as is."""
    try:
        # The newline: a fence left open at the very end is otherwise closed on its last line ("code```").
        formatted = mdformat.text(text + "\n", options={"number": True})  # 1. 2. 3., not 1. 1. 1.
    except Exception:  # a formatter bug must not cost the message its reply
        return text
    return formatted.rstrip("\n")  # mdformat ends a document with a newline; a reply needs none


def check_schema(schema: dict[str, Any]) -> str | None:
    """None if `schema` is a valid draft 2020-12 JSON Schema, else why (intake refuses the profile)."""
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as error:
        return _shorten(f"invalid JSON Schema at {error.json_path}: {error.message}")
    return None


def check_json(text: str, schema: dict[str, Any] | None = None) -> str | None:
    """None when `text` is one JSON value (valid against `schema` when given), else a short reason."""
    try:
        value = json.loads(_unfenced(text), parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as error:
        return _shorten(f"not valid JSON: {error}")
    if schema is None:
        return None
    validator = Draft202012Validator(schema, registry=_NO_RETRIEVAL,
                                     format_checker=Draft202012Validator.FORMAT_CHECKER)
    try:
        error = best_match(validator.iter_errors(value))  # the most relevant error, deterministically
    except Unresolvable as unresolvable:
        return _shorten(f"the schema has a reference that cannot be resolved here: {unresolvable}")
    except RecursionError:
        return "the JSON is nested too deeply to validate"
    if error is None:
        return None
    return _shorten(f"at {error.json_path}: {error.message}")


def json_text(text: str) -> str:
    """The JSON as it is published: without the code fence a model may have put around it."""
    return _unfenced(text).strip()


def json_instruction(schema: dict[str, Any] | None = None) -> str:
    """The sentence added to the system prompt of a profile that asks for JSON."""
    sentence = "Reply with one JSON value only: no prose before or after it, no Markdown code fence."
    if schema is None:
        return sentence
    compact = json.dumps(schema, separators=(",", ":"), ensure_ascii=False)
    return f"{sentence} It must be valid against this JSON Schema: {compact}"


def repair_instruction(reason: str) -> str:
    """The user message of the one repair attempt, after the assistant's invalid reply."""
    return (f"Your reply above is not valid: {reason}. Reply again with the corrected JSON only: "
            "no prose before or after it, no Markdown code fence.")


def truncate_at_sentence(text: str, max_chars: int) -> tuple[str, bool]:
    """`text` cut to at most `max_chars`: at the last sentence end within the limit, else at the last
    whitespace, else exactly at the limit. Returns the text and whether it was cut."""
    if len(text) <= max_chars:
        return text, False
    sentence_end = 0
    for found in _SENTENCE_END.finditer(text, 0, max_chars + 1):  # +1: the whitespace may follow the limit
        if found.end() <= max_chars:
            sentence_end = found.end()
    if sentence_end:
        return text[:sentence_end], True
    cut = text[:max_chars + 1]  # a whitespace right after the limit still ends the last word
    space = next((i for i in range(len(cut) - 1, 0, -1) if cut[i].isspace()), 0)
    words = text[:space].rstrip()
    return (words or text[:max_chars]), True


def _unfenced(text: str) -> str:
    """`text` without one outer ``` fence (plain or `json`). Models do wrap JSON in a fence, even in
    a provider's JSON mode; one fence around the whole reply is tolerated, nothing more."""
    lines = text.strip().split("\n")
    if len(lines) < 2 or not lines[0].startswith("```") or lines[-1].strip() != "```":
        return text
    if lines[0][3:].strip().lower() not in ("", "json"):
        return text
    return "\n".join(lines[1:-1])


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")  # Python's json accepts NaN and Infinity; JSON does not


def _shorten(reason: str) -> str:
    return reason if len(reason) <= REASON_CHARS else reason[:REASON_CHARS - 1] + "…"
