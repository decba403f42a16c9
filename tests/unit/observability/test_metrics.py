"""The worker's Prometheus metrics: each helper moves its own series, models are capped per provider,
the figures read at scrape time come from the worker's state, and no label ever names an agent, a user,
a room or a message (asserted on the exposition text itself)."""

from __future__ import annotations

import asyncio
import json
import random
from types import SimpleNamespace

import pytest
from faust.types import TP
from prometheus_client.parser import text_string_to_metric_families

from gateway_app.app import COUNTERS
from gateway_app.contract.events import AgentProfile, ErrorCode, MessageCreated, ReplyStatus
from gateway_app.contract.internal import MessageRecord, Origin
from gateway_app.observability.metrics import GatewayMetrics, ModelLabels, WorkerState, partition_lag
from gateway_app.pipeline import records
from gateway_app.pipeline.acker import AckSlot
from gateway_app.pipeline.caller import Caller, CallFailed, Target
from gateway_app.pipeline.context import MessageContext
from gateway_app.pipeline.pipeline import Pipeline
from gateway_app.pipeline.stage import Services
from gateway_app.pipeline.turns import Turns
from gateway_app.plugins.discovery import Plugins
from gateway_app.pricing.prices import current_table
from gateway_app.providers import errors
from gateway_app.providers.base import ChatMessage, ChatRequest, ChatResult, TokenUsage
from gateway_app.publisher import Publisher
from gateway_app.resilience.endpoints import Endpoints
from gateway_app.settings import Settings
from tests.unit.pipeline.conftest import TEST_SETTINGS, FakeClock, Pool, Scripted, memory_stores

GENAI = {"gen_ai_operation_name": "chat"}


def value(metrics: GatewayMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def families(metrics: GatewayMetrics) -> dict:
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(body.decode())}


def samples(family) -> dict[tuple, float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}


# --- each helper moves its own series ---

def test_replies_by_status_and_code_and_dlq_by_code():
    metrics = GatewayMetrics()
    metrics.reply(ReplyStatus.OK)
    metrics.reply(ReplyStatus.OK)
    metrics.reply(ReplyStatus.RATE_LIMITED, ErrorCode.BACKLOG_FULL)
    metrics.dlq(ErrorCode.INVALID_JSON)
    assert value(metrics, "gateway_replies_total", status="ok", code="") == 2
    assert value(metrics, "gateway_replies_total", status="rate_limited", code="backlog_full") == 1
    assert value(metrics, "gateway_dlq_records_total", code="invalid_json") == 1
    assert value(metrics, "gateway_dlq_records_total", code="backlog_full") is None


def test_rate_limits_cache_and_moderation_counters():
    metrics = GatewayMetrics()
    metrics.deferral()
    metrics.deferral()
    metrics.rejection(ErrorCode.EXCEEDS_TPM)
    metrics.cache(hit=True)
    metrics.cache(hit=False)
    metrics.cache(hit=False)
    metrics.moderation("output", "pii", "flagged", "mask")
    assert value(metrics, "gateway_rate_limit_deferrals_total") == 2
    assert value(metrics, "gateway_rate_limit_rejections_total", code="exceeds_tpm") == 1
    assert value(metrics, "gateway_cache_lookups_total", result="hit") == 1
    assert value(metrics, "gateway_cache_lookups_total", result="miss") == 2
    assert value(metrics, "gateway_moderation_verdicts_total", stage="output", check="pii", verdict="flagged",
                 action="mask") == 1


def test_genai_histograms_carry_the_conventions_labels():
    metrics = GatewayMetrics()
    metrics.tokens("openai", "gpt-4o-mini", 40, 7)
    metrics.provider_call("openai", "gpt-4o-mini", 0.3, ChatResult("hi", "stop", TokenUsage(1, 1)))
    metrics.provider_call("openai", "gpt-4o-mini", 2.0, errors.timed_out())
    metrics.first_chunk("azure", "prod-deployment", 0.05)
    model = {**GENAI, "gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-4o-mini"}
    assert value(metrics, "gen_ai_client_token_usage_sum", **model, gen_ai_token_type="input") == 40
    assert value(metrics, "gen_ai_client_token_usage_sum", **model, gen_ai_token_type="output") == 7
    assert value(metrics, "gen_ai_client_token_usage_bucket", **model, gen_ai_token_type="output", le="4.0") == 0
    assert value(metrics, "gen_ai_client_token_usage_bucket", **model, gen_ai_token_type="output", le="16.0") == 1
    ok = value(metrics, "gen_ai_client_operation_duration_seconds_count", **model, error_type="")
    failed = value(metrics, "gen_ai_client_operation_duration_seconds_sum", **model, error_type="provider_timeout")
    assert ok == 1 and failed == 2.0
    # Azure OpenAI under the conventions' well-known provider name.
    azure = {**GENAI, "gen_ai_provider_name": "azure.ai.openai", "gen_ai_request_model": "prod-deployment"}
    assert value(metrics, "gen_ai_client_operation_time_to_first_chunk_seconds_count", **azure) == 1


def test_first_chunk_timer_records_once_and_passes_every_chunk_on():
    metrics, clock, seen = GatewayMetrics(), FakeClock(), []
    assert metrics.first_chunk_timer(None, "a", "m", clock) is None  # not streamed: nothing to time
    sink = metrics.first_chunk_timer(lambda *args: seen.append(args), "a", "m", clock)
    clock.now += 0.25
    sink(1, 0, "one", False)
    clock.now += 1.0
    sink(1, 1, "", True)
    assert seen == [(1, 0, "one", False), (1, 1, "", True)]
    labels = {**GENAI, "gen_ai_provider_name": "a", "gen_ai_request_model": "m"}
    assert value(metrics, "gen_ai_client_operation_time_to_first_chunk_seconds_count", **labels) == 1
    assert value(metrics, "gen_ai_client_operation_time_to_first_chunk_seconds_sum", **labels) == 0.25


def test_model_labels_keep_the_first_n_per_provider_then_other():
    models = ModelLabels(limit=2)
    assert [models("openai", m) for m in ("a", "b", "c", "a", "d")] == ["a", "b", "other", "a", "other"]
    assert models("cohere", "c") == "c"  # each provider has its own N
    assert ModelLabels().limit == 50


def test_models_past_the_cap_are_counted_as_other_in_every_metric():
    metrics = GatewayMetrics(models_per_provider=1)
    metrics.retry("openai", "first")
    metrics.retry("openai", "model-two")
    metrics.tokens("openai", "model-three", 1, 1)
    assert value(metrics, "gateway_provider_retries_total", provider="openai", model="first") == 1
    assert value(metrics, "gateway_provider_retries_total", provider="openai", model="other") == 1
    assert value(metrics, "gen_ai_client_token_usage_count", **GENAI, gen_ai_provider_name="openai",
                 gen_ai_request_model="other", gen_ai_token_type="input") == 1
    text = metrics.exposition()[0].decode()
    assert "model-two" not in text and "model-three" not in text


def test_each_worker_object_has_its_own_registry():
    one, two = GatewayMetrics(), GatewayMetrics()
    one.deferral()
    assert value(one, "gateway_rate_limit_deferrals_total") == 1
    assert value(two, "gateway_rate_limit_deferrals_total") == 0


def test_openmetrics_on_request():
    metrics = GatewayMetrics()
    metrics.deferral()
    body, content_type = metrics.exposition("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text") and body.decode().endswith("# EOF\n")


# --- the caller's hooks ---

PRIMARY, FALLBACK = Target("a", "m1", {}, 0), Target("b", "m2", {}, 1)


def request(target: Target) -> ChatRequest:
    return ChatRequest(target.model, "", (ChatMessage("user", "hi"),), 0, 10, options=target.options)


def caller(scripts: dict, metrics: GatewayMetrics, **overrides) -> Caller:
    settings = Settings(**{**TEST_SETTINGS, **overrides})
    clock = FakeClock()
    return Caller(settings, Pool({name: Scripted(script) for name, script in scripts.items()}),
                  Endpoints(settings.breaker_policy(), settings.provider_caps()), asyncio.Semaphore(4),
                  random.Random(1), clock=clock, sleep=clock.sleep, metrics=metrics)


async def test_caller_reports_attempts_retries_pauses_and_fallbacks():
    metrics = GatewayMetrics()
    rate_limited = errors.from_status(429, "slow down", {"retry-after": "1"})
    call = caller({"a": [rate_limited, errors.from_status(503, "down"), errors.from_status(400, "bad")], "b": []},
                  metrics)
    answer = await call.call("m", [PRIMARY, FALLBACK], request, 5)
    assert answer.target == FALLBACK
    a = {**GENAI, "gen_ai_provider_name": "a", "gen_ai_request_model": "m1"}
    b = {**GENAI, "gen_ai_provider_name": "b", "gen_ai_request_model": "m2"}
    duration = "gen_ai_client_operation_duration_seconds_count"
    assert value(metrics, duration, **a, error_type="provider_rate_limited") == 1
    assert value(metrics, duration, **a, error_type="provider_unavailable") == 1
    assert value(metrics, duration, **a, error_type="provider_rejected") == 1
    assert value(metrics, duration, **b, error_type="") == 1
    assert value(metrics, "gateway_provider_retries_total", provider="a", model="m1") == 2
    assert value(metrics, "gateway_endpoint_pauses_total", provider="a", model="m1") == 1
    assert value(metrics, "gateway_provider_fallbacks_total", provider="b", model="m2") == 1
    assert value(metrics, "gateway_provider_fallbacks_total", provider="a", model="m1") is None


async def test_caller_times_the_first_chunk_of_a_stream():
    metrics = GatewayMetrics()
    chunks = []
    await caller({"a": []}, metrics).call("m", [PRIMARY], request, 5, on_chunk=lambda *c: chunks.append(c))
    assert chunks and value(metrics, "gen_ai_client_operation_time_to_first_chunk_seconds_count", **GENAI,
                            gen_ai_provider_name="a", gen_ai_request_model="m1") == 1


# --- the worker's state, read at scrape time ---

class FakeConsumer:
    """faust's consumer as the lag reads it: assignment, cached high watermarks, committed offsets."""

    def __init__(self, highwaters: dict, committed: dict, expected: dict) -> None:
        self.highwaters, self._committed_offset = highwaters, committed
        self.guard = SimpleNamespace(expected=lambda tp: expected.get(tp))

    def assignment(self) -> set:
        return set(self.highwaters)

    def highwater(self, tp):
        if self.highwaters[tp] == "revoked":
            raise AssertionError("Partition is not assigned")
        return self.highwaters[tp]


def tp(topic: str, partition: int) -> TP:
    return TP(topic, partition)


async def worker_state(now: float = 100.0) -> WorkerState:
    settings = Settings(**{**TEST_SETTINGS, "max_in_flight": 8, "breaker_consecutive_failures": 1})
    endpoints = Endpoints(settings.breaker_policy())
    healthy = endpoints.get("openai", "gpt-4o-mini", "https://api.example")
    broken = endpoints.get("openai", "gpt-4o-mini", "https://eu.example")  # same labels: counted together
    broken.record(broken.allow(now), False, now)  # one failure opens it (policy: 1)
    endpoints.get("cohere", "command-r", "https://cohere.example").pause(5, now - 2)
    semaphore = asyncio.Semaphore(8)
    for _ in range(3):  # three calls hold a slot
        await semaphore.acquire()
    turns = Turns()
    for agent, waiting in (("agent-one", 1), ("agent-two", 3), ("agent-three", 30)):
        for _ in range(waiting):
            turns.agents.get(agent).take()
    events, table = "gw.agent-events", "gw-agent-profiles-changelog"
    consumer = FakeConsumer({tp(events, 0): 120, tp(events, 1): 7, tp(events, 2): 0, tp(events, 3): 50,
                             tp(table, 0): 999, tp(events, 4): "revoked"},
                            committed={tp(events, 0): 100, tp(events, 3): None},
                            expected={tp(events, 1): 5})
    recovery = SimpleNamespace(restore_stats=lambda: {"in_progress": False, "rows": 5000, "seconds": 0.5,
                                                      "rows_per_second": 10000})
    caller_ = SimpleNamespace(settings=settings, in_flight=semaphore, endpoints=endpoints, clock=lambda: now)
    assert healthy.breaker.state == "closed"
    return WorkerState(caller=caller_, turns=turns, dispatcher=SimpleNamespace(in_progress={1, 2, 3, 4}),
                       consumer=consumer, changelog_topics={table}, recovery=recovery)


async def test_scrape_time_figures_come_from_the_worker_state():
    metrics = GatewayMetrics()
    metrics.watch(await worker_state())
    found = families(metrics)
    assert samples(found["gateway_provider_calls_in_flight"]) == {("gateway_provider_calls_in_flight", ()): 3}
    assert found["gateway_provider_calls_in_flight_limit"].samples[0].value == 8
    breaker = {tuple(sorted(s.labels.items())): s.value for s in found["gateway_breaker_state"].samples}
    openai = (("model", "gpt-4o-mini"), ("provider", "openai"))
    assert breaker[tuple(sorted((*openai, ("state", "closed"))))] == 1
    assert breaker[tuple(sorted((*openai, ("state", "open"))))] == 1
    assert breaker[tuple(sorted((*openai, ("state", "half_open"))))] == 0
    paused = {s.labels["provider"]: s.value for s in found["gateway_endpoint_pause_seconds"].samples}
    assert paused == {"cohere": 3.0, "openai": 0.0}
    assert found["gateway_pending_messages"].samples[0].value == 4
    lag = {(s.labels["topic"], s.labels["partition"]): s.value for s in found["gateway_consumer_lag"].samples}
    # committed 100 of 120; no commit yet but 5 is next to process; empty; a revoked partition and the
    # table's changelog are left out, as is a partition with records and nothing known of its position.
    assert lag == {("gw.agent-events", "0"): 20, ("gw.agent-events", "1"): 2, ("gw.agent-events", "2"): 0}
    assert found["gateway_restore_rows_per_second"].samples[0].value == 10000
    assert found["gateway_restore_rows"].samples[0].value == 5000
    assert found["gateway_restore_in_progress"].samples[0].value == 0


async def test_agent_backlog_is_a_distribution_with_no_agent_named():
    metrics = GatewayMetrics()
    metrics.watch(await worker_state())
    body = metrics.exposition()[0].decode()
    backlog = text_string_to_metric_families(body)
    family = next(f for f in backlog if f.name == "gateway_agent_backlog")
    assert family.type == "histogram"
    buckets = {s.labels["le"]: s.value for s in family.samples if s.name == "gateway_agent_backlog_bucket"}
    assert buckets["1.0"] == 1 and buckets["2.0"] == 1 and buckets["5.0"] == 2 and buckets["25.0"] == 2
    assert buckets["50.0"] == 3 and buckets["+Inf"] == 3
    assert "gateway_agent_backlog_gcount 3.0" in body and "gateway_agent_backlog_gsum 34.0" in body
    assert "agent-one" not in body and "agent-three" not in body


async def test_a_failing_source_leaves_the_rest_of_the_scrape():
    def rebalancing() -> set:
        raise RuntimeError("rebalancing")

    state = await worker_state()
    state.consumer = SimpleNamespace(assignment=rebalancing)
    state.recovery = None  # and a missing one is simply left out
    metrics = GatewayMetrics()
    metrics.watch(state)
    found = families(metrics)
    assert "gateway_consumer_lag" not in found and "gateway_restore_rows" not in found
    assert "gateway_agent_backlog" in found and "gateway_breaker_state" in found


def test_nothing_of_the_state_before_a_worker_is_watched():
    found = families(GatewayMetrics())
    assert "gateway_provider_calls_in_flight" not in found and "gateway_replies" in found


def test_partition_lag_never_negative():
    consumer = FakeConsumer({tp("t", 0): 10}, committed={tp("t", 0): 12}, expected={})
    assert partition_lag(consumer, tp("t", 0)) == 0


# --- through the pipeline: the series move, and no id ever becomes a label ---

AGENT, USER, ROOM = "agent-7f3a9c-secret", "user-41be02-secret", "room-c0ffee-secret"


class Answering:
    """Answers `said: <content>`; refuses (400) a message that starts with FAIL."""

    name = "answering"

    def endpoint(self, request: ChatRequest) -> str:
        return "http://answering"

    async def complete(self, request: ChatRequest) -> ChatResult:
        if request.messages[-1].content.startswith("FAIL"):
            raise errors.from_status(400, "refused")
        return ChatResult(f"said: {request.messages[-1].content}", "stop", TokenUsage(40, 7))

    async def stream(self, request: ChatRequest):
        yield await self.complete(request)

    async def aclose(self) -> None:
        pass


class Recorded:
    """The publisher as the pipeline uses it: records what is sent; deliveries complete at once."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    async def _send(self, kind: str, value: bytes) -> asyncio.Future:
        self.sent.append((kind, value))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def send_reply_bytes(self, room_id: str, value: bytes, *headers):
        return await self._send("reply", value)

    async def send_billing_bytes(self, agent_id: str, value: bytes, *headers):
        return await self._send("billing", value)

    async def dead_letter(self, record, *headers):
        return await self._send("dlq", record.model_dump_json().encode())

    async def moderation_event(self, event, *headers):
        return await self._send("moderation", event.model_dump_json().encode())

    async def flush(self) -> None:
        pass


class OnePool:
    def __init__(self, provider) -> None:
        self.provider = provider

    def get(self, name: str):
        return self.provider

    async def load(self, name: str):
        return self.provider


def flow(**overrides) -> tuple[Pipeline, GatewayMetrics]:
    """A pipeline over in-memory tables whose caller and stages share one metrics object."""
    settings = Settings(**{**TEST_SETTINGS, **overrides})
    metrics = GatewayMetrics()
    call = Caller(settings, OnePool(Answering()), Endpoints(settings.breaker_policy()), asyncio.Semaphore(4),
                  random.Random(1), metrics=metrics)
    services = Services(settings, memory_stores(settings)[0], Turns(), call, Recorded(), current_table(),
                        Plugins(), dict.fromkeys(COUNTERS, 0), metrics=metrics)
    return Pipeline(services), metrics


async def send(pipeline: Pipeline, profile: AgentProfile, *contents: str) -> list[dict]:
    """Each content as a message of the agent, user and room above, one after the other; their replies."""
    services = pipeline.services
    for content in contents:
        offset = len(services.publisher.sent)
        record = MessageRecord(agent_id=AGENT, origin=Origin(topic="in", partition=0, offset=offset, received_at_ms=1),
                               payload=MessageCreated(message_id=f"msg-{offset}-secret", agent_id=AGENT,
                                                      room_id=ROOM, user_id=USER, content=content))
        ctx = MessageContext(record, 0, AckSlot(None), profile=profile)
        ctx.agent_turn = services.turns.agents.get(AGENT).take()
        await pipeline.run(ctx)
    return [json.loads(v) for kind, v in services.publisher.sent if kind == "reply"]


def profile_of(**fields) -> AgentProfile:
    return AgentProfile(agent_id=AGENT, version=1, provider="openai", model="gpt-4o-mini", **fields)


async def test_pipeline_replies_tokens_cache_and_moderation_with_no_id_in_any_label():
    pipeline, metrics = flow()
    replies = await send(pipeline, profile_of(cache={"ttl_seconds": 60}),
                         "hello", "hello", "FAIL please", "write to jane@example.com")
    assert [r["status"] for r in replies] == ["ok", "ok", "error", "ok"] and replies[1]["cache_hit"]
    assert value(metrics, "gateway_replies_total", status="ok", code="") == 3
    assert value(metrics, "gateway_replies_total", status="error", code="provider_rejected") == 1
    assert value(metrics, "gateway_cache_lookups_total", result="hit") == 1
    assert value(metrics, "gateway_cache_lookups_total", result="miss") == 3
    assert value(metrics, "gateway_moderation_verdicts_total", stage="output", check="pii", verdict="flagged",
                 action="flag") == 1
    model = {**GENAI, "gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-4o-mini"}
    assert value(metrics, "gen_ai_client_token_usage_count", **model, gen_ai_token_type="input") == 2  # 2 answers
    assert value(metrics, "gen_ai_client_token_usage_sum", **model, gen_ai_token_type="output") == 14
    assert value(metrics, "gen_ai_client_operation_duration_seconds_count", **model, error_type="") == 2
    services = pipeline.services
    metrics.watch(WorkerState(caller=services.caller, turns=services.turns, dispatcher=SimpleNamespace(in_progress=())))
    body = metrics.exposition()[0].decode()
    for identifier in (AGENT, USER, ROOM, "secret", "jane"):
        assert identifier not in body
    for family in text_string_to_metric_families(body):
        assert not {"agent", "agent_id", "user", "user_id", "room", "room_id", "message_id"} & \
            {label for s in family.samples for label in s.labels}


async def test_rate_limit_deferrals_and_rejections():
    pipeline, metrics = flow(rate_window_seconds=0.2)
    replies = await send(pipeline, profile_of(rate_limits={"rpm": 1}), "one", "two")  # two waits for a window
    assert [r["status"] for r in replies] == ["ok", "ok"]
    assert value(metrics, "gateway_rate_limit_deferrals_total") >= 1
    replies = await send(pipeline, profile_of(rate_limits={"tpm": 10}), "far too long for ten tokens")
    assert replies[-1]["status"] == "rate_limited" and replies[-1]["error"]["code"] == "exceeds_tpm"
    assert value(metrics, "gateway_rate_limit_rejections_total", code="exceeds_tpm") == 1
    assert value(metrics, "gateway_replies_total", status="rate_limited", code="exceeds_tpm") == 1


async def test_publisher_counts_every_dlq_record_and_the_intakes_replies():
    sent = []

    class Producer:
        async def send(self, topic, key, value, **kwargs):
            sent.append((topic, key))
            return asyncio.get_running_loop().create_future()

    names = ("agent_events", "replies", "reply_chunks", "billing", "dlq", "conversation_cleared",
             "moderation_events", "room_events", "provider_capacity", "provider_grants", "audio")
    topics = SimpleNamespace(**{n: SimpleNamespace(get_topic_name=lambda n=n: f"gw.{n}") for n in names})
    metrics = GatewayMetrics()
    publisher = Publisher(topics, Producer(), metrics)
    origin = Origin(topic="gw.messages", partition=2, offset=9, received_at_ms=1)
    await publisher.dead_letter(records.dead_letter(origin, ErrorCode.INVALID_JSON, "not JSON",
                                                    message_id="msg-secret", agent_id=AGENT))
    await publisher.reply(records.rejected_input_reply(message_id="msg-secret", agent_id=AGENT, room_id=ROOM,
                                                       user_id=USER, code=ErrorCode.CONTENT_TOO_LONG, reason="long"))
    assert [topic for topic, _ in sent] == ["gw.dlq", "gw.replies"]
    assert value(metrics, "gateway_dlq_records_total", code="invalid_json") == 1
    assert value(metrics, "gateway_replies_total", status="error", code="content_too_long") == 1
    assert "secret" not in metrics.exposition()[0].decode()
    assert isinstance(Publisher(topics, Producer()).metrics, GatewayMetrics)  # a default of its own


async def test_a_failed_call_still_reports_its_attempt():
    metrics = GatewayMetrics()
    with pytest.raises(CallFailed):
        await caller({"a": [errors.from_status(401, "bad key")]}, metrics).call("m", [PRIMARY], request, 5)
    assert value(metrics, "gen_ai_client_operation_duration_seconds_count", **GENAI, gen_ai_provider_name="a",
                 gen_ai_request_model="m1", error_type="provider_auth_failed") == 1


async def test_cost_message_duration_and_the_gateways_own_share(monkeypatch):
    import time

    real = time.time
    offset = 0.01 - real() % 0.5  # the clock starts 10 ms into a window of 0.5 s: "two" waits about 0.49 s
    monkeypatch.setattr(time, "time", lambda: real() + offset)
    pipeline, metrics = flow(rate_window_seconds=0.5)
    replies = await send(pipeline, profile_of(rate_limits={"rpm": 1}), "one", "two")  # two waits for a window
    assert [r["status"] for r in replies] == ["ok", "ok"]
    billed = [json.loads(v) for kind, v in pipeline.services.publisher.sent if kind == "billing"]
    assert value(metrics, "gateway_cost_usd_total", provider="openai", model="gpt-4o-mini") == \
        pytest.approx(sum(float(b["cost_usd"]) for b in billed)) and billed
    assert value(metrics, "gateway_message_duration_seconds_count", status="ok") == 2
    assert value(metrics, "gateway_overhead_seconds_count") == 2
    waited = value(metrics, "gateway_message_duration_seconds_sum", status="ok")
    # The second message waited about 0.49 s for a rate window: in its duration, not in the overhead.
    assert waited >= 0.4 and value(metrics, "gateway_overhead_seconds_sum") < waited - 0.4


async def test_a_spent_budget_counts_a_rejection_and_a_fallback():
    from decimal import Decimal

    pipeline, metrics = flow()
    stores = pipeline.services.stores
    spent = profile_of(budget={"usd_per_day": "0.000001"})
    stores.usage.spent = lambda agent_id, day: Decimal("1")  # the day's budget is spent
    replies = await send(pipeline, spent, "one")
    assert replies[-1]["error"]["code"] == "budget_exceeded"
    assert value(metrics, "gateway_rate_limit_rejections_total", code="budget_exceeded") == 1
    fallback = profile_of(budget={"usd_per_day": "0.000001", "fallback": {"provider": "openai", "model": "gpt-4.1-nano"}})
    await send(pipeline, fallback, "two")
    assert value(metrics, "gateway_budget_fallbacks_total", provider="openai", model="gpt-4.1-nano") == 1


async def test_a_message_refused_after_waiting_for_its_profile_is_no_gateway_overhead():
    pipeline, metrics = flow(profile_wait_seconds=0.3)
    replies = await send(pipeline, None, "anyone there?")  # no profile ever comes: agent_unknown after 0.3 s
    assert replies[-1]["error"]["code"] == "agent_unknown"
    assert value(metrics, "gateway_message_duration_seconds_sum", status="agent_unavailable") >= 0.3
    assert value(metrics, "gateway_overhead_seconds_sum") < 0.1  # the wait was admission's, on purpose
