"""The profile's `language`: BCP 47 tags checked and standardised, `auto` judged on the user's message,
the instruction the system prompt gets, and the language the moderation check then expects."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agents_tables.conversations import Conversation, Turn
from gateway_app.contract.events import AgentProfile
from gateway_app.moderation.checks import CheckInput, CheckSettings, run_local
from gateway_app.pipeline import languages
from gateway_app.pipeline.stages.prompt import build_request, users_words
from gateway_app.providers.base import ChatMessage


def profile(**fields) -> AgentProfile:
    return AgentProfile(agent_id="a", version=1, provider="echo", model="echo-1", **fields)


@pytest.mark.parametrize("given,kept", [("pt-BR", "pt-BR"), ("EN_us", "en-US"), ("AUTO", "auto"), ("zh-Hant", "zh-Hant"),
                                        ("es-419", "es-419"), ("en", "en")])
def test_tags_are_standardised(given, kept):
    assert profile(language=given).language == kept


@pytest.mark.parametrize("bad", ["english", "xx-yy", "pt--BR", "a"])
def test_what_is_no_tag_is_refused(bad):
    with pytest.raises(ValidationError, match="BCP 47|at least 2"):
        profile(language=bad)


def test_a_fixed_tag_is_asked_for_whatever_the_user_writes():
    tag, instruction = languages.for_message("pt-BR", "Where is my order? I bought it last week.")
    assert tag == "pt-BR" and instruction == ("Always answer in Portuguese (Brazil) (pt-BR), whatever language "
                                              "the user writes in.")


@pytest.mark.parametrize("text,code", [
    ("Hola, ¿dónde está mi pedido? Lo compré la semana pasada.", "es"),
    ("Bonjour, je voudrais savoir où en est ma commande.", "fr"),
    ("Wo ist meine Bestellung? Ich habe sie letzte Woche bestellt.", "de"),
    ("Where is my order? I bought it last week.", "en"),
])
def test_auto_answers_in_the_users_language(text, code):
    tag, instruction = languages.for_message("auto", text)
    assert tag == code and instruction.endswith("the language of the user's last message.")


@pytest.mark.parametrize("text", ["ok", "thanks!", "👍👍", "https://example.com/a/b/c/d?x=1 `code here`"])
def test_auto_says_nothing_about_too_little_text(text):
    assert languages.for_message("auto", text) == (None, None)


def test_no_language_adds_nothing():
    assert languages.for_message(None, "Hola, ¿dónde está mi pedido? Lo compré ayer.") == (None, None)


def test_the_instruction_follows_the_system_prompt():
    request = build_request(profile(system_prompt="You help customers."), (ChatMessage("user", "hi"),),
                            language_instruction="Always answer in German (de), whatever language the user writes in.")
    assert request.system_prompt == ("You help customers.\n\nAlways answer in German (de), whatever language the "
                                      "user writes in.")


def test_tool_results_are_judged_on_the_rooms_last_user_message():
    conv = Conversation(turns=(Turn("m1", "message", 1, 5, user="Hola, necesito ayuda con mi pedido de ayer."),
                               Turn("t1", "tool_results", 2, 5)))
    assert users_words("", object(), conv).startswith("Hola") and users_words("", object(), None) == ""
    assert users_words("the message", None, conv) == "the message"


def test_the_language_check_expects_the_language_asked_for():
    settings = CheckSettings()
    spanish_reply = "Tu pedido salió ayer del almacén y llegará el jueves por la mañana a tu casa."
    fired = run_local(["language"], CheckInput(text=spanish_reply, expected_language="pt-BR"), settings)
    assert [r.check for r in fired if r.fired] == ["language"]
    kept = run_local(["language"], CheckInput(text=spanish_reply, expected_language="es"), settings)
    assert not [r for r in kept if r.fired]
