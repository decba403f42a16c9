"""The reply format functions: Markdown normalised, JSON checked, schemas checked, replies cut."""

from __future__ import annotations

import json

import pytest

from gateway_app.pipeline.formats import (check_json, check_schema, json_instruction, json_text,
                                          normalize_markdown, repair_instruction, truncate_at_sentence)

FENCE = "```"
PERSON = {"type": "object", "required": ["name", "tags"],
          "properties": {"name": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}}}


# Markdown

def test_an_unclosed_code_fence_is_closed():
    assert normalize_markdown(f"Look:\n\n{FENCE}python\nx = 1") == f"Look:\n\n{FENCE}python\nx = 1\n{FENCE}"


def test_an_unclosed_fence_in_a_list_item_is_closed_inside_the_item():
    assert normalize_markdown(f"- step\n  {FENCE}\n  run") == f"- step\n  {FENCE}\n  run\n  {FENCE}"


def test_headings_lists_and_closed_code_are_kept():
    text = f"# Title\n\nSome *text*.\n\n* one\n* two\n\n1) first\n2) second\n\n{FENCE}\ncode\n{FENCE}"
    assert normalize_markdown(text) == (f"# Title\n\nSome *text*.\n\n- one\n- two\n\n1. first\n2. second\n\n"
                                        f"{FENCE}\ncode\n{FENCE}")


def test_a_table_is_left_as_it_was_and_plain_text_unchanged():
    table = "| a | b |\n|---|---|\n| 1 | 2 |"
    assert normalize_markdown(table) == table
    assert normalize_markdown("Just a sentence.") == "Just a sentence."
    assert normalize_markdown("") == ""


def test_a_formatter_error_returns_the_text_unchanged(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("formatter bug")

    monkeypatch.setattr("gateway_app.pipeline.formats.mdformat.text", broken)
    assert normalize_markdown(f"{FENCE}\nopen") == f"{FENCE}\nopen"


# JSON

@pytest.mark.parametrize("text", ['{"a": 1}', "[1, 2]", '"s"', "3", "null", ' \n{"a": 1}\n '])
def test_any_json_value_is_valid_without_a_schema(text):
    assert check_json(text, None) is None


@pytest.mark.parametrize("text, says", [("{'a': 1}", "not valid JSON"), ('{"a": 1', "not valid JSON"),
                                        ("Sure! Here it is", "not valid JSON"), ("", "not valid JSON"),
                                        ("NaN", "NaN is not a JSON value"), ('{"a": 1} trailing', "Extra data")])
def test_invalid_json_says_why(text, says):
    assert says in check_json(text, None)


def test_one_outer_json_fence_is_tolerated_and_stripped():
    fenced = f'{FENCE}json\n{{"name": "x", "tags": []}}\n{FENCE}'
    assert check_json(fenced, PERSON) is None
    assert json.loads(json_text(fenced)) == {"name": "x", "tags": []}
    assert json_text(f"{FENCE}\n[1]\n{FENCE}\n") == "[1]"
    assert json_text(' {"a": 1} ') == '{"a": 1}'


def test_only_one_fence_of_json_or_no_language_is_stripped():
    assert check_json(f"{FENCE}python\n[1]\n{FENCE}", None) is not None
    assert check_json(f"{FENCE}json\n{FENCE}json\n[1]\n{FENCE}\n{FENCE}", None) is not None
    assert check_json(f"Here:\n{FENCE}json\n[1]\n{FENCE}", None) is not None


def test_a_schema_violation_names_its_json_path():
    assert check_json('{"name": "x", "tags": ["a", 2]}', PERSON) == "at $.tags[1]: 2 is not of type 'string'"
    assert check_json('{"name": "x"}', PERSON) == "at $: 'tags' is a required property"
    assert check_json('[]', PERSON) == "at $: [] is not of type 'object'"


def test_a_reference_to_a_url_is_not_fetched():
    assert "cannot be resolved" in check_json("{}", {"$ref": "https://example.invalid/schema.json"})


def test_a_long_reason_is_shortened():
    reason = check_json(json.dumps({"k": "v" * 2000}), {"properties": {"k": {"maxLength": 1}}})
    assert reason.startswith("at $.k: ") and len(reason) == 300 and reason.endswith("…")


# Schemas

def test_a_valid_schema_passes():
    assert check_schema(PERSON) is None
    assert check_schema({}) is None


@pytest.mark.parametrize("schema, says", [({"type": "nope"}, "at $.type"), ({"required": "name"}, "at $.required"),
                                          ({"properties": {"a": {"minLength": -1}}}, "at $.properties.a.minLength")])
def test_a_broken_schema_says_where(schema, says):
    reason = check_schema(schema)
    assert reason.startswith("invalid JSON Schema") and says in reason


# Instructions

def test_the_json_instruction_carries_the_schema_compactly():
    assert "JSON" in json_instruction(None) and "Schema" not in json_instruction(None)
    assert json_instruction({"type": "object", "required": ["a"]}).endswith('{"type":"object","required":["a"]}')


def test_the_repair_instruction_carries_the_reason():
    assert "at $.a: 1 is not of type 'string'" in repair_instruction("at $.a: 1 is not of type 'string'")


# Truncation

def test_a_text_that_fits_exactly_is_not_cut():
    assert truncate_at_sentence("Hello there.", 12) == ("Hello there.", False)


def test_cut_at_the_last_sentence_end_within_the_limit():
    assert truncate_at_sentence("One. Two! Three? Four five", 17) == ("One. Two! Three?", True)
    assert truncate_at_sentence("Wait… what is this", 10) == ("Wait…", True)


def test_a_sentence_end_at_the_limit_counts_when_whitespace_follows():
    assert truncate_at_sentence("First one. Second", 10) == ("First one.", True)


def test_a_closing_quote_or_bracket_stays_with_its_sentence():
    assert truncate_at_sentence('He said "stop." Then he left.', 20) == ('He said "stop."', True)
    assert truncate_at_sentence("It works (mostly.) More words", 22) == ("It works (mostly.)", True)


def test_a_dot_inside_a_word_or_number_is_not_a_sentence_end():
    assert truncate_at_sentence("Pi is 3.14 and e is 2.71", 12) == ("Pi is 3.14", True)
    assert truncate_at_sentence("See example.com now", 14) == ("See", True)


def test_no_sentence_end_cuts_at_the_last_whitespace():
    assert truncate_at_sentence("alpha beta gamma delta", 13) == ("alpha beta", True)
    assert truncate_at_sentence("alpha beta\ngamma", 11) == ("alpha beta", True)


def test_no_whitespace_either_is_a_hard_cut():
    assert truncate_at_sentence("abcdefghij", 4) == ("abcd", True)
    assert truncate_at_sentence(" abcdefghij", 4) == (" abc", True)
