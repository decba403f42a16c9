"""The local moderation checks: each fires where it should and not elsewhere, masks, never raises."""

from __future__ import annotations

import time

import pytest

from gateway_app.moderation import pii
from gateway_app.moderation.checks import (
    CHECK_NAMES,
    DEFAULT_WORDS,
    LOCAL_CHECKS,
    CheckInput,
    CheckResult,
    CheckSettings,
    mask_text,
    run_local,
    warm_up,
)

DEFAULTS = CheckSettings()


def check(name: str, text: str = "", settings: CheckSettings = DEFAULTS, **fields) -> CheckResult:
    result = LOCAL_CHECKS[name](CheckInput(text=text, **fields), settings)
    assert result.check == name
    return result


# --- wordlist ---------------------------------------------------------------------------------------------

def test_default_list_is_loaded_from_the_shipped_file():
    assert 30 <= len(DEFAULT_WORDS) <= 200
    assert "bullshit" in DEFAULT_WORDS
    assert not any(word.startswith("#") for word in DEFAULT_WORDS)


@pytest.mark.parametrize("text", [
    "That is complete bullshit.",
    "BULLSHIT!",
    "Oh SHIT, I forgot.",
    "What the fucking hell",            # prefix entry fuck*
    "Screw   you,\nfigure it out",      # a phrase matches across any whitespace
    "you idiot",
])
def test_wordlist_fires_on_listed_words_whole_word_and_case_insensitive(text):
    result = check("wordlist", text)
    assert result.fired and result.categories == ("default",)


@pytest.mark.parametrize("text", [
    "The class assessment is on Monday.",
    "Scunthorpe United won 2-1.",
    "Shiitake mushrooms and a cocktail.",
    "I can't wait to help you with this!",
    "",
])
def test_wordlist_does_not_fire_inside_other_words(text):
    assert check("wordlist", text).passed


def test_wordlist_masks_matches_and_keeps_them_out_of_the_detail():
    result = check("wordlist", "Well, that was a shitty day. Screw you!")
    assert result.masked == "Well, that was a *** day. ***!"
    assert "shit" not in result.detail and result.detail == "2 matches"
    assert result.scores == {"matches": 2.0}


def test_custom_words_and_patterns_name_their_list():
    settings = CheckSettings(words=(*DEFAULT_WORDS, "frobnicate"), patterns=(r"\bticket-\d{4}\b",))
    result = check("wordlist", "Frobnicate ticket-1234 now, dammit", settings)
    assert result.categories == ("custom", "patterns")
    assert result.masked == "*** *** now, dammit"
    assert check("wordlist", "Bullshit", settings).categories == ("default",)


def test_an_empty_word_list_turns_word_matching_off():
    assert check("wordlist", "bullshit", CheckSettings(words=())).passed


# --- pii --------------------------------------------------------------------------------------------------

def test_email_is_found_masked_and_never_echoed():
    text = "Write to Jane.Doe+news@mail.example.co.uk today."
    result = check("pii", text)
    assert result.fired and result.categories == ("email",)
    assert result.masked == "Write to [email] today."
    assert "Jane" not in result.detail and "example" not in result.detail
    assert result.detail == "1 email" and result.scores == {"email": 1.0}


@pytest.mark.parametrize("number", [
    "(415) 555-0132",         # US national
    "415-555-0198",
    "415.555.0143",
    "+1 212 555 0176",        # international
    "1-800-273-8255",
    "020 7946 0958",          # GB national
    "+44 20 7946 0123",
    "07911 123456",
    "030 12345678",           # DE national
    "+49 89 1234567",
    "01 42 68 53 00",         # FR national
    "+33 6 12 34 56 78",
    "+34 912 345 678",        # +country: found whatever the regions
    "+39 06 6982 1234",
    "+31 20 123 4567",
    "+81 3-1234-5678",
])
def test_phone_numbers_in_national_and_international_formats(number):
    result = check("pii", f"You can call {number} after 9.")
    assert result.categories == ("phone",), number
    assert result.masked == "You can call [phone] after 9."
    assert number not in result.detail


@pytest.mark.parametrize("text", [
    "Your order #100234567 shipped on 2024-01-15.",
    "The ISBN is 978-0-13-468599-1.",
    "Version 10.2.3.4567 is out; it costs $1,299.99.",
    "Between 1990 and 2020 the population grew to 1,234,567.",
    "The meeting ID is 873 4512 9087.",
    "Reference number: 20230915123",
    "Pi is 3.141592653589793.",
    "In an emergency call 911 or 112.",
    "ZIP codes 94103 and 10001.",
])
def test_digit_strings_that_are_not_phone_numbers(text):
    assert check("pii", text).passed


def test_national_numbers_count_only_for_the_configured_regions():
    text = "La oficina atiende en el 912 345 678."
    assert check("pii", text).passed
    assert check("pii", text, CheckSettings(phone_regions=("ES",))).categories == ("phone",)
    # with no region at all, +country numbers are still found
    assert check("pii", "Call +44 20 7946 0123", CheckSettings(phone_regions=())).categories == ("phone",)


@pytest.mark.parametrize("digits, valid", [
    ("4111111111111111", True),
    ("4242424242424242", True),
    ("5555555555554444", True),
    ("378282246310005", True),
    ("6011111111111117", True),
    ("79927398713", True),
    ("4111111111111112", False),
    ("1234567890123456", False),
    ("", False),
    ("4111-1111", False),
])
def test_luhn(digits, valid):
    assert pii.luhn_valid(digits) is valid


@pytest.mark.parametrize("card", [
    "4111 1111 1111 1111",
    "4242424242424242",
    "5105-1051-0510-5100",
    "3782 822463 10005",
    "6011 1111 1111 1117",
])
def test_valid_card_numbers_fire_and_are_masked(card):
    result = check("pii", f"The card is {card}, expiring 09/27.")
    assert result.categories == ("card",)
    assert result.masked == "The card is [card], expiring 09/27."
    assert card not in result.detail and card[-4:] not in result.detail


@pytest.mark.parametrize("text", [
    "The card 4111 1111 1111 1112 fails the checksum.",     # Luhn fails
    "1234 5678 9012 3456 is a placeholder.",                # Luhn fails
    "9111 1111 1111 1110 starts like no payment card.",     # Luhn passes, first digit 9
    "Count: 4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",             # groups shorter than 3 digits
    "Invoice 2023-4567-8912 was paid.",
])
def test_digit_strings_that_are_not_card_numbers(text):
    assert check("pii", text).passed


def test_card_rules_beyond_luhn():
    assert pii.luhn_valid("9111111111111110") and not pii.is_card_number("9111 1111 1111 1110")
    assert pii.luhn_valid("4111111111111111") and not pii.is_card_number("4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1")
    assert pii.is_card_number("4111 1111 1111 1111") and pii.is_card_number("4111-1111-1111-1111")


def test_several_kinds_at_once_and_overlaps_resolved():
    text = "Mail a.b@example.com, call +49 30 901820, pay with 4111 1111 1111 1111."
    result = check("pii", text)
    assert result.categories == ("email", "phone", "card")
    assert result.masked == "Mail [email], call [phone], pay with [card]."
    assert result.detail == "1 email, 1 phone, 1 card"
    for secret in ("a.b@", "901820", "1111"):
        assert secret not in result.detail and all(secret not in c for c in result.categories)


def test_pii_kinds_can_be_narrowed():
    text = "Mail a.b@example.com or call +49 30 901820."
    assert check("pii", text, CheckSettings(pii=("email",))).masked == "Mail [email] or call +49 30 901820."


def test_mask_text_masks_pii_then_words():
    text = "Screw you, mail bob@example.com"
    assert mask_text(text) == "***, mail [email]"
    assert mask_text(text, checks=("pii",)) == "Screw you, mail [email]"
    with pytest.raises(ValueError):
        mask_text(text, checks=("language",))


# --- repetition -------------------------------------------------------------------------------------------

PREVIOUS = ("Hello! How can I help you today?",
            "Sorry, I didn't quite catch that. Could you rephrase your question?")


def test_repetition_fires_on_a_near_repeat_of_a_previous_reply():
    result = check("repetition", "sorry, I didn't quite catch that.  Could you please rephrase your question?",
                   previous_replies=PREVIOUS)
    assert result.fired and result.scores["similarity"] >= 0.9
    assert "1 back" in result.detail


def test_repetition_passes_a_different_reply_with_its_score():
    text = "Your parcel is out for delivery and should arrive by 6 pm."
    result = check("repetition", text, previous_replies=PREVIOUS)
    assert result.passed and result.scores["similarity"] < 0.6


def test_repetition_threshold_is_configurable():
    text = "Sorry, I didn't catch that. Could you say it another way?"
    score = check("repetition", text, previous_replies=PREVIOUS).scores["similarity"]
    assert 0.7 < score < 0.9
    assert check("repetition", text, previous_replies=PREVIOUS).passed
    assert check("repetition", text, CheckSettings(repetition_threshold=0.7), previous_replies=PREVIOUS).fired
    assert check("repetition", PREVIOUS[1], CheckSettings(repetition_threshold=1.0), previous_replies=PREVIOUS).fired


def test_repetition_only_looks_at_the_last_window_replies():
    previous = (PREVIOUS[1], "one", "two", "three", "four", "five")
    assert check("repetition", PREVIOUS[1], previous_replies=previous).passed
    assert check("repetition", PREVIOUS[1], CheckSettings(repetition_window=6), previous_replies=previous).fired
    assert check("repetition", PREVIOUS[1], CheckSettings(repetition_window=0), previous_replies=PREVIOUS).passed


def test_repetition_skips_short_replies_and_first_replies():
    assert check("repetition", "Sure!", previous_replies=("Sure!",)).passed
    assert check("repetition", "Sure!", CheckSettings(repetition_min_chars=0), previous_replies=("Sure!",)).fired
    assert check("repetition", PREVIOUS[1]).passed


# --- empty, refusal, truncated, too_long -----------------------------------------------------------------

@pytest.mark.parametrize("text", ["", " ", "\n\n\t", "\u200b", "\ufeff\u200d", "\u00a0\u2003"])
def test_empty_fires_on_blank_text(text):
    assert check("empty", text).fired


@pytest.mark.parametrize("text", [".", "ok", "\u200bhi", "😀"])
def test_empty_passes_any_visible_text(text):
    assert check("empty", text).passed


def test_refusal_from_the_provider_field_fires_whatever_the_text():
    result = check("refusal", "Here is a general overview instead.", refused=True)
    assert result.fired and result.categories == ("provider",)


@pytest.mark.parametrize("text", [
    "I'm sorry, but I can't help with that.",
    "I can\u2019t assist with that request.",
    "I cannot help you with this request.",
    "Sorry, I can't share personal information about other users.",
    "I apologize, but I'm unable to generate that content.",
    "As an AI language model, I cannot provide medical advice.",
    "As an AI, I am unable to browse the internet.",
    "I must decline this request.",
    "Unfortunately, I cannot help with creating malware.",
    "I'm afraid I can't do that.",
    "  **I'm sorry, but I cannot comply with that.**",
])
def test_refusal_phrasings_at_the_start_fire(text):
    result = check("refusal", text)
    assert result.fired and result.categories == ("text",)


@pytest.mark.parametrize("text", [
    "I'm sorry to hear that your flight was cancelled. Here is what you can do.",
    "Sorry for the confusion! Here's the corrected table.",
    "I can't recommend this book enough.",
    "I cannot stress enough how important backups are.",
    "Unfortunately, the museum is closed on Mondays.",
    "As an AI assistant, I can draft that letter for you.",
    "Unfortunately, I can't give you a refund, but I can offer store credit.",
    "Here is the answer. I'm sorry, but I can't help with that other part.",  # not at the start
    "",
])
def test_refusal_is_conservative(text):
    assert check("refusal", text).passed


def test_refusal_patterns_are_configurable():
    settings = CheckSettings(refusal_patterns=(r"that's not something i can help with",))
    assert check("refusal", "That\u2019s not something I can help with.", settings).fired
    assert check("refusal", "I'm sorry, but I can't help with that.", settings).passed


@pytest.mark.parametrize("reason, fired", [
    ("length", True), ("max_tokens", True), ("LENGTH", True),
    ("stop", False), ("end_turn", False), ("tool_calls", False), (None, False), ("", False),
])
def test_truncated_reads_the_finish_reason(reason, fired):
    assert check("truncated", "Here are the steps: first", finish_reason=reason).fired is fired


def test_too_long_uses_the_input_limit_then_the_settings_limit():
    assert check("too_long", "x" * 4000).passed
    result = check("too_long", "x" * 4001)
    assert result.fired and result.scores == {"chars": 4001.0} and "limit 4000" in result.detail
    assert check("too_long", "x" * 201, max_chars=200).fired
    assert check("too_long", "x" * 9000, max_chars=10000).passed
    assert check("too_long", "x" * 9000, CheckSettings(max_chars=None)).passed


# --- language ---------------------------------------------------------------------------------------------

FRENCH = "Bien sûr ! Voici un résumé rapide de la réunion : le projet est reporté à la semaine prochaine."
ENGLISH = "Sure! Here's a quick summary of the meeting: the project moved to next week and Claire sends the slides."


def test_language_fires_on_a_reply_in_another_language_than_the_profiles():
    result = check("language", FRENCH, expected_language="en")
    assert result.fired and result.categories == ("fr",)
    assert result.scores["language_confidence"] >= 0.7 and result.scores["expected_probability"] <= 0.05
    assert "expected en" in result.detail


@pytest.mark.parametrize("expected", ["fr", "FR", "fr-CA", "fr_FR"])
def test_language_passes_the_expected_language_in_any_spelling(expected):
    result = check("language", FRENCH, expected_language=expected)
    assert result.passed and result.scores["language_confidence"] > 0.9


def test_language_does_not_judge_short_text():
    assert check("language", "Merci beaucoup, à bientôt !", expected_language="en").passed
    text = "Merci beaucoup pour votre message, à bientôt !"   # 37 letters
    assert check("language", text, expected_language="en").detail == "too short to judge"
    assert check("language", text, CheckSettings(language_min_chars=30), expected_language="en").fired


def test_language_counts_letters_of_prose_only():
    reply = "Voici :\n```python\nprint('this is some english text inside the code block, long enough')\n```"
    assert check("language", reply, expected_language="en").detail == "too short to judge"
    assert check("language", ENGLISH + "\n```\nprint('x')\n```", expected_language="en").passed


def test_language_is_inferred_from_the_users_message_when_the_profile_has_none():
    question = "Can you give me a short summary of what we decided in today's meeting?"
    result = check("language", FRENCH, user_message=question)
    assert result.fired and "from the user's message" in result.detail
    assert check("language", ENGLISH, user_message=question).passed
    # a message too short to judge gives no expected language
    assert check("language", FRENCH, user_message="summary?").detail == "no expected language"
    assert check("language", FRENCH).detail == "no expected language"
    # the profile's language wins over the user's
    assert check("language", FRENCH, expected_language="fr", user_message=question).passed


def test_language_confidence_threshold_is_configurable():
    assert check("language", FRENCH, CheckSettings(language_confidence=1.0), expected_language="en").passed


def test_language_passes_when_the_expected_language_is_unknown_to_the_model():
    assert check("language", FRENCH, expected_language="tlh").passed


# --- settings and the registry ----------------------------------------------------------------------------

def test_the_registry_names_every_check():
    assert set(CHECK_NAMES) == {"wordlist", "pii", "repetition", "empty", "refusal", "truncated", "language",
                                "too_long"}


def test_run_local_runs_the_named_checks_in_order():
    results = run_local(["truncated", "pii"], CheckInput(text="Call +44 20 7946 0123", finish_reason="length"))
    assert [(r.check, r.passed) for r in results] == [("truncated", False), ("pii", False)]
    with pytest.raises(ValueError, match="unknown moderation checks"):
        run_local(["pii", "toxicity"], CheckInput(text="hi"), DEFAULTS)


def test_settings_from_config_layers_global_then_profile():
    settings = CheckSettings.from_config(
        {"extra_words": ["frobnicate"], "repetition_threshold": 0.8},
        {"extra_words": ["grault"], "max_chars": 1000, "phone_regions": ["ES"]},
        None,
    )
    assert settings.words == (*DEFAULT_WORDS, "frobnicate", "grault")
    assert settings.repetition_threshold == 0.8 and settings.max_chars == 1000
    assert settings.phone_regions == ("ES",)
    assert CheckSettings.from_config({"words": ["only"]}).words == ("only",)
    assert CheckSettings.from_config({"max_chars": 500}, {"max_chars": None}).max_chars is None
    hash(settings)  # immutable and hashable: lists become tuples


@pytest.mark.parametrize("config", [
    {"unknown_knob": 1},
    {"patterns": ["(unclosed"]},
    {"phone_regions": ["XX"]},
    {"pii": ["ssn"]},
    {"repetition_threshold": 1.5},
    {"language_min_chars": -1},
    {"words": "bullshit"},
    {"repetition_threshold": None},
    {"repetition_window": 2.5},
])
def test_bad_settings_raise_when_built(config):
    with pytest.raises(ValueError):
        CheckSettings.from_config(config)


# --- robustness and speed ---------------------------------------------------------------------------------

ODD_TEXTS = [
    "",
    "\x00\x01\x02\x1b[31mred\x1b[0m\x7f",
    "😀" * 500 + "👨‍👩‍👧‍👦🏳️‍🌈",
    "\ud800 lone surrogate \udfff",
    "\u202eevil right-to-left override\u202c",
    "e\u0301" * 300,
    "@" * 5000 + "a@b" * 2000,
    "1-" * 3000,
    "4" * 5000,
    "```" * 100 + "`",
    ("The quick brown fox jumps over the lazy dog. " * 5000),  # 225 KB
    "+" * 100 + "(((" + "1 " * 500,
]


@pytest.mark.parametrize("text", ODD_TEXTS, ids=range(len(ODD_TEXTS)))
def test_no_check_raises_on_odd_text(text):
    data = CheckInput(text=text, finish_reason="\x00", expected_language="??", user_message=text,
                      previous_replies=(text, "", "😀"), max_chars=0)
    results = run_local(CHECK_NAMES, data, DEFAULTS)
    assert [r.check for r in results] == list(CHECK_NAMES)
    data = CheckInput(text=text, expected_language="en", previous_replies=(text[::-1],))
    assert len(run_local(CHECK_NAMES, data, DEFAULTS)) == len(CHECK_NAMES)


def test_warm_up_loads_ahead():
    warm_up(CheckSettings(patterns=(r"\bfoo\b",)))
    assert check("language", FRENCH, expected_language="en").fired


def test_checks_are_fast_on_a_one_kilobyte_reply():
    reply = (("Thanks for reaching out! Your parcel left our warehouse on Monday and should arrive by Thursday. "
              "Call +44 20 7946 0123 or write to help@example.com if it does not. ") * 8)[:1024]
    data = CheckInput(text=reply, expected_language="en", user_message="Where is my parcel?",
                      previous_replies=tuple(reply[i:] for i in range(5)))
    run_local(CHECK_NAMES, data, DEFAULTS)  # the language model loads once
    start = time.perf_counter()
    for _ in range(20):
        run_local(CHECK_NAMES, data, DEFAULTS)
    assert (time.perf_counter() - start) / 20 < 0.05  # ~5 ms here; generous for a loaded machine
