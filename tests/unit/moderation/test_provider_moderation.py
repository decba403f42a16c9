"""Provider moderation through the official openai SDK against the fake's `POST /v1/moderations`: the
default rule and per-category thresholds, the scores, faults classified like any provider call, keys
(the environment's, a wrong one, a per-call credential) and the clients shared with the openai provider."""

from __future__ import annotations

import logging

import openai
import pytest
from pydantic import SecretStr

from gateway_app.contract.events import ErrorCode
from gateway_app.moderation.provider_moderation import ModerationVerdict, ProviderModeration
from gateway_app.pricing.prices import current_table
from gateway_app.providers.base import ChatMessage, ChatRequest, ProviderError
from gateway_app.providers.openai import OpenAIProvider
from tests.fakes.base import ServerThread
from tests.fakes.openai_server import MODERATION_CATEGORIES, FakeOpenAI, moderation_result, moderation_scores

ENV_KEY = "sk-env-moderation"
AGENT_KEY = "sk-agent-moderation"
ENV = ["OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID"]


@pytest.fixture(scope="module")
def running():
    server = FakeOpenAI()
    with ServerThread(server.app) as thread:
        yield server, thread


@pytest.fixture
def fake(running, monkeypatch):
    """The fake accepting only the environment's key; the environment pointing the SDK at it."""
    server, thread = running
    server.keys = {ENV_KEY}
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", ENV_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", thread.url + "/v1")
    yield server
    server.keys = None


@pytest.fixture
async def moderation(fake):
    checker = ProviderModeration(timeout=5)
    yield checker
    await checker.aclose()


async def failure(checker: ProviderModeration, text: str, **kwargs) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await checker.moderate(text, **kwargs)
    return caught.value


# ---- the verdict ----------------------------------------------------------------------------------


async def test_a_flagged_category_by_the_apis_own_rule(moderation, fake):
    text = "I will hurt you MODERATE:violence"
    verdict = await moderation.moderate(text)
    assert isinstance(verdict, ModerationVerdict)
    assert verdict.flagged and verdict.categories == ("violence",)
    assert verdict.scores["violence"] == 0.99
    assert verdict.model == "omni-moderation-latest"
    assert verdict.request_id and verdict.request_id.startswith("req_") and verdict.elapsed_ms >= 0
    assert fake.moderation_requests[-1] == {"model": "omni-moderation-latest", "input": text}


async def test_the_default_rule_follows_the_apis_booleans_not_the_score(moderation):
    verdict = await moderation.moderate("borderline MODERATE:violence:0.3")  # the API's boolean: false
    assert not verdict.flagged and verdict.categories == () and verdict.scores["violence"] == 0.3


async def test_a_threshold_below_the_score_flags_what_the_api_did_not(moderation):
    verdict = await moderation.moderate("borderline MODERATE:violence:0.3", thresholds={"violence": 0.2})
    assert verdict.flagged and verdict.categories == ("violence",)


async def test_a_threshold_above_the_score_clears_what_the_api_flagged(moderation):
    verdict = await moderation.moderate("MODERATE:violence:0.97", thresholds={"violence": 0.98})
    assert not verdict.flagged and verdict.categories == ()


async def test_a_score_equal_to_its_threshold_is_over(moderation):
    verdict = await moderation.moderate("MODERATE:hate:0.25", thresholds={"hate": 0.25})
    assert verdict.flagged and verdict.categories == ("hate",)


async def test_categories_without_a_threshold_keep_the_default_rule(moderation):
    text = "MODERATE:violence MODERATE:self-harm/intent:0.6 MODERATE:sexual:0.2"
    verdict = await moderation.moderate(text, thresholds={"violence": 0.995, "sexual": 0.1})
    assert verdict.flagged and verdict.categories == ("self-harm/intent", "sexual")  # in the answer's order


async def test_clean_text_is_not_flagged_and_every_score_is_there(moderation):
    verdict = await moderation.moderate("What a lovely morning for a walk.")
    assert not verdict.flagged and verdict.categories == ()
    assert set(verdict.scores) == set(MODERATION_CATEGORIES) and len(verdict.scores) == 13
    assert all(score == 0.001 for score in verdict.scores.values())
    assert all(isinstance(score, float) for score in verdict.scores.values())


async def test_the_model_is_sent_and_named_in_the_verdict(moderation, fake):
    verdict = await moderation.moderate("MODERATE:hate", model="text-moderation-latest")
    assert fake.moderation_requests[-1]["model"] == "text-moderation-latest"
    assert verdict.model == "text-moderation-latest" and verdict.categories == ("hate",)


@pytest.mark.parametrize("thresholds", [{"violence": 1.5}, {"violence": -0.1}, {"violence": float("nan")},
                                        {"violence": True}, {"violence": "0.5"}])
async def test_a_threshold_outside_0_to_1_is_refused_before_any_call(moderation, fake, thresholds):
    before = len(fake.moderation_requests)
    with pytest.raises(ValueError, match="within 0..1"):
        await moderation.moderate("hello", thresholds=thresholds)
    assert len(fake.moderation_requests) == before


# ---- failures -------------------------------------------------------------------------------------


FAULTS = [
    ("500", ErrorCode.PROVIDER_UNAVAILABLE, True),
    ("503", ErrorCode.PROVIDER_UNAVAILABLE, True),
    ("429", ErrorCode.PROVIDER_RATE_LIMITED, True),
    ("400", ErrorCode.PROVIDER_REJECTED, False),
    ("reset", ErrorCode.PROVIDER_UNAVAILABLE, True),
    ("malformed", ErrorCode.PROVIDER_BAD_RESPONSE, True),
    ("error200", ErrorCode.PROVIDER_BAD_RESPONSE, True),
    ("hollow", ErrorCode.PROVIDER_BAD_RESPONSE, True),
]


@pytest.mark.parametrize("fault,code,retriable", FAULTS, ids=[f[0] for f in FAULTS])
async def test_faults_are_classified_into_provider_errors(moderation, fault, code, retriable):
    error = await failure(moderation, f"FAULT:{fault} and some text")
    assert error.code == code and error.retriable is retriable, error
    if fault == "429":
        assert error.status == 429 and error.retry_after == 1.0
    if fault == "500":
        assert error.status == 500


async def test_a_hung_provider_is_a_timeout(moderation):
    error = await failure(moderation, "FAULT:hang", timeout=0.5)
    assert error.code == ErrorCode.PROVIDER_TIMEOUT and error.retriable


async def test_no_retries_inside(moderation, fake):
    await failure(moderation, "FAULT:flaky:1:503 once")
    assert fake.moderation_seen["FAULT:flaky:1:503 once"] == 1  # the caller decides whether to ask again
    assert not (await moderation.moderate("FAULT:flaky:1:503 once")).flagged


async def test_a_wrong_key_is_an_auth_failure(fake, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
    checker = ProviderModeration(timeout=5)
    try:
        error = await failure(checker, "hello")
    finally:
        await checker.aclose()
    assert error.code == ErrorCode.PROVIDER_AUTH_FAILED and not error.retriable and error.status == 401


async def test_without_a_key_it_is_not_configured(fake, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    checker = ProviderModeration(timeout=5)
    error = await failure(checker, "hello")
    assert error.code == ErrorCode.PROVIDER_NOT_CONFIGURED and str(error) == "OPENAI_API_KEY is not set"
    # ... unless the agent brings its own
    fake.keys = {AGENT_KEY}
    assert not (await checker.moderate("hello", credential=SecretStr(AGENT_KEY))).flagged
    await checker.aclose()


# ---- keys and clients -----------------------------------------------------------------------------


async def test_a_per_call_credential_is_used_instead_of_the_environment_key(moderation, fake):
    fake.keys = {AGENT_KEY}  # the environment's key is no longer accepted
    assert (await failure(moderation, "hello")).code == ErrorCode.PROVIDER_AUTH_FAILED
    verdict = await moderation.moderate("MODERATE:harassment", credential=SecretStr(AGENT_KEY))
    assert verdict.categories == ("harassment",)
    # one client per key, reused: the environment's and the agent's
    await moderation.moderate("again", credential=SecretStr(AGENT_KEY))
    assert len(moderation.provider._clients) == 2


async def test_the_openai_providers_clients_are_shared_not_copied(fake):
    provider = OpenAIProvider(timeout=5)
    checker = ProviderModeration(provider)
    await checker.moderate("hello")
    refused = await failure(checker, "hello", credential=SecretStr(ENV_KEY + "-other"))  # with its own client
    assert refused.code == ErrorCode.PROVIDER_AUTH_FAILED
    chat = ChatRequest("gpt-4o-mini", "", (ChatMessage("user", "hi"),), 0, 10)
    assert (await provider.complete(chat)).text == "fake-openai says: hi"
    assert len(provider._clients) == 2  # moderation's env client is the chat client
    await checker.aclose()  # not the owner: the provider's clients stay open
    assert not (await provider._client(chat)).is_closed()
    await provider.aclose()


async def test_the_text_is_never_logged(moderation, caplog):
    secret_text = "my very private words MODERATE:violence"
    with caplog.at_level(logging.DEBUG, logger="gateway_app"):
        await moderation.moderate(secret_text)
        await failure(moderation, "FAULT:500 private words too")
    ours = [r for r in caplog.records if r.name.startswith("gateway_app")]
    assert ours and all("private" not in r.getMessage() for r in ours)


# ---- billing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["omni-moderation-latest", "text-moderation-latest"])
def test_moderation_models_are_priced_at_zero(model):
    table = current_table()
    assert table.rates("openai", model) is not None  # priced, not "unknown model"
    assert table.cost("openai", model, 0, 0) == 0 and table.cost("openai", model, 1000, 1000) == 0


# ---- the fake's wire, seen from the SDK ---------------------------------------------------------


async def test_the_fake_answers_the_documented_shape_for_a_list_of_inputs(fake, running):
    client = openai.AsyncOpenAI(api_key=ENV_KEY, base_url=running[1].url + "/v1", max_retries=0)
    try:
        response = await client.moderations.create(input=["clean", "MODERATE:illicit/violent:0.7"],
                                                   model="omni-moderation-latest")
    finally:
        await client.close()
    assert response.id.startswith("modr-") and response.model == "omni-moderation-latest"
    assert [r.flagged for r in response.results] == [False, True]
    second = response.results[1]
    assert second.categories.illicit_violent is True and second.category_scores.illicit_violent == 0.7
    assert second.category_applied_input_types.violence == ["text", "image"]
    assert set(second.category_scores.model_dump(by_alias=True)) == set(MODERATION_CATEGORIES)


def test_the_fakes_moderation_markers():
    scores = moderation_scores("a MODERATE:violence:0.97 b MODERATE:self-harm/intent c")
    assert scores["violence"] == 0.97 and scores["self-harm/intent"] == 0.99 and scores["hate"] == 0.001
    assert moderation_result("MODERATE:hate:0.4")["categories"]["hate"] is False  # below the API's 0.5
    with pytest.raises(ValueError, match="unknown moderation category"):
        moderation_scores("MODERATE:nonsense")
