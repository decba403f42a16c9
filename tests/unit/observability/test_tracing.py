"""Tracing through the real intake, dispatcher, pipeline, caller and publisher (over a recording
producer), with the SDK's in-memory exporter: span names and kinds, one trace across the internal hop
(the `traceparent` record header), the GenAI attributes of provider attempts (retries, fallbacks), the
provider SDKs' HTTP requests carrying the attempt's `traceparent`, no content unless asked for, and
nothing at all (no spans, no headers) when tracing is off.

What tracing costs (a micro-benchmark of one message's whole set of hooks: intake span and forward, the
processor span, 13 stage spans, one provider attempt, reply and billing sends; on a shared 2-core
machine, so ranges): off, +3.3-5 us per message over the same code without the hooks (each helper
returns before doing anything: no span object, no header work), under the run-to-run noise of a
message's pipeline over in-memory tables (~260-870 us here); on and sampled, ~0.5-1.2 ms per message
(19 spans, batch span processor; the pipeline benchmark: +1.0-1.5 ms); on and not sampled (a `-00`
parent or the sampler), ~75-95 us (two spans; their children are skipped).
"""

from __future__ import annotations

import asyncio
import json
import random
from types import SimpleNamespace

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from gateway_app.app import COUNTERS
from gateway_app.contract.events import AgentProfile
from gateway_app.forwarding import InputForwarder
from gateway_app.observability import tracing
from gateway_app.pipeline.caller import Caller, Target
from gateway_app.pipeline.dispatcher import Dispatcher
from gateway_app.pipeline.stage import Services
from gateway_app.pipeline.turns import Turns
from gateway_app.plugins.discovery import Plugins
from gateway_app.pricing.prices import current_table
from gateway_app.providers import errors
from gateway_app.providers.base import ChatMessage, ChatRequest, ChatResult, TokenUsage
from gateway_app.publisher import Publisher
from gateway_app.resilience.endpoints import Endpoints
from gateway_app.settings import Settings
from tests.unit.pipeline.conftest import TEST_SETTINGS, memory_stores

UPSTREAM_TRACE = "0af7651916cd43dd8448eb211c80319c"
UPSTREAM_SPAN = "b7ad6b7169203331"
UPSTREAM = f"00-{UPSTREAM_TRACE}-{UPSTREAM_SPAN}-01".encode()
CONTENT = "hello there, a secret plan"
OUTPUTS = ("agent_events", "replies", "reply_chunks", "billing", "dlq", "conversation_cleared",
           "moderation_events", "room_events", "provider_capacity", "provider_grants", "audio")
SETTINGS = Settings(**TEST_SETTINGS)


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.configure(provider)
    yield exporter
    tracing.disable()


@pytest.fixture
def off():
    tracing.disable()


# ---- a recording producer, the intake and the processor ------------------------------------------

class Producer:
    """What the publisher hands to Kafka: every record with its headers."""

    def __init__(self) -> None:
        self.records: list[SimpleNamespace] = []

    async def send(self, topic, key, value, *, partition, timestamp, headers):
        self.records.append(SimpleNamespace(topic=topic, key=key, value=value, headers=headers))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def flush(self) -> None:
        pass

    def on(self, topic: str) -> list[SimpleNamespace]:
        return [r for r in self.records if r.topic == topic]


def publisher() -> tuple[Publisher, Producer]:
    names = SETTINGS.topics
    topics = SimpleNamespace(**{name: SimpleNamespace(get_topic_name=lambda n=getattr(names, name): n)
                                for name in OUTPUTS})
    producer = Producer()
    return Publisher(topics, producer), producer


def kafka_message(topic: str, value: bytes, headers, offset: int = 5) -> SimpleNamespace:
    return SimpleNamespace(topic=topic, partition=0, offset=offset, key=b"room-1", value=value, headers=headers)


class Event:
    def __init__(self, message: SimpleNamespace) -> None:
        self.message, self.value, self.acked = message, message.value, 0

    def ack(self) -> bool:
        self.acked += 1
        return True


def chat_message(content: str = CONTENT) -> bytes:
    return json.dumps({"messageId": "m-1", "agentId": "a", "roomId": "room-1", "userId": "u-1",
                       "content": content}).encode()


async def intake(headers, value: bytes | None = None) -> Producer:
    pub, producer = publisher()
    forwarder = InputForwarder(SETTINGS, pub, lambda name: True, lambda *args: None)
    message = kafka_message(SETTINGS.topics.messages, value or chat_message(), headers)
    await forwarder.handle(SimpleNamespace(message=message))
    return producer


class Provider:
    """Answers `said: <last message>`, after raising the errors of its script; records the trace headers
    the SDK call would carry."""

    def __init__(self, name: str = "openai", script: list | None = None) -> None:
        self.name, self.script, self.seen = name, list(script or ()), []

    def endpoint(self, request: ChatRequest) -> str:
        return f"http://{self.name}"

    async def complete(self, request: ChatRequest) -> ChatResult:
        self.seen.append(dict(tracing.http_kwargs("extra_headers")))
        if self.script:
            raise self.script.pop(0)
        return ChatResult(f"said: {request.messages[-1].content}", "stop", TokenUsage(40, 7), "req-1",
                          model=f"{request.model}-2024-07-18")

    async def stream(self, request: ChatRequest):
        yield await self.complete(request)

    async def aclose(self) -> None:
        pass


class Pool:
    def __init__(self, *providers: Provider) -> None:
        self.providers = {p.name: p for p in providers}

    def get(self, name: str) -> Provider:
        return self.providers[name]

    async def load(self, name: str) -> Provider:
        return self.providers[name]


def caller(*providers: Provider) -> Caller:
    return Caller(SETTINGS, Pool(*providers), Endpoints(SETTINGS.breaker_policy(), SETTINGS.provider_caps()),
                  asyncio.Semaphore(4), random.Random(1))


async def processor(record: SimpleNamespace, provider: Provider, **profile_fields) -> Producer:
    """The forwarded record, read by a dispatcher (another worker's: nothing shared but the record)."""
    pub, producer = publisher()
    stores, _ = memory_stores(SETTINGS)
    stores.profiles.apply(AgentProfile(agent_id="a", version=1, provider="openai", model="gpt-4o-mini",
                                       system_prompt="be brief", **profile_fields))
    services = Services(SETTINGS, stores, Turns(), caller(provider), pub, current_table(), Plugins(),
                        dict.fromkeys(COUNTERS, 0))
    dispatcher = Dispatcher(services)
    event = Event(kafka_message(SETTINGS.topics.agent_events, record.value, record.headers, offset=9))
    await dispatcher.on_event(event)
    for ctx in list(dispatcher.in_progress):
        await ctx.task
    assert event.acked == 1
    return producer


def traceparent(headers) -> tuple[str, str]:
    """(trace id, span id) of a record's `traceparent` header."""
    value = dict(headers or ())["traceparent"].decode()
    _, trace_id, span_id, _ = value.split("-")
    return trace_id, span_id


def ids(span) -> tuple[str, str]:
    return format(span.context.trace_id, "032x"), format(span.context.span_id, "016x")


def parent_of(span) -> str | None:
    return format(span.parent.span_id, "016x") if span.parent else None


def named(exporter: InMemorySpanExporter, name: str) -> list:
    return [s for s in exporter.get_finished_spans() if s.name == name]


def one(exporter: InMemorySpanExporter, name: str):
    found = named(exporter, name)
    assert len(found) == 1, (name, [s.name for s in exporter.get_finished_spans()])
    return found[0]


# ---- the tests ---------------------------------------------------------------------------------------

async def test_intake_continues_the_upstream_trace_and_forwards_its_traceparent(spans):
    producer = await intake([("traceparent", UPSTREAM)])
    process, send = one(spans, "process ai-message-created"), one(spans, "send gateway-agent-events")
    assert process.kind is SpanKind.CONSUMER and send.kind is SpanKind.PRODUCER
    assert ids(process)[0] == UPSTREAM_TRACE and parent_of(process) == UPSTREAM_SPAN
    assert process.attributes["messaging.system"] == "kafka"
    assert process.attributes["messaging.operation.type"] == "process"
    assert process.attributes["messaging.destination.name"] == "ai-message-created"
    assert process.attributes["messaging.destination.partition.id"] == "0"
    assert process.attributes["messaging.kafka.offset"] == 5
    assert parent_of(send) == ids(process)[1]
    assert send.attributes["messaging.destination.name"] == "gateway-agent-events"
    [forwarded] = producer.on("gateway-agent-events")
    assert traceparent(forwarded.headers) == ids(send)


async def test_an_input_without_traceparent_starts_a_trace_and_a_rejected_one_carries_it(spans):
    producer = await intake(None)
    process = one(spans, "process ai-message-created")
    assert process.parent is None and traceparent(producer.records[0].headers)[0] == ids(process)[0]
    spans.clear()
    producer = await intake([("traceparent", UPSTREAM)], value=b'{"messageId": "m-2", "roomId": "room-1"}')
    records = producer.on("ai-message-dlq") + producer.on("ai-message-reply")
    assert len(records) == 2 and all(traceparent(r.headers)[0] == UPSTREAM_TRACE for r in records)
    assert {s.name for s in spans.get_finished_spans()} == {
        "process ai-message-created", "send ai-message-dlq", "send ai-message-reply"}


async def test_one_trace_from_the_upstream_producer_through_the_hop_to_the_reply(spans):
    forwarded = (await intake([("traceparent", UPSTREAM)])).on("gateway-agent-events")[0]
    provider = Provider()
    producer = await processor(forwarded, provider)
    finished = spans.get_finished_spans()
    assert {ids(s)[0] for s in finished} == {UPSTREAM_TRACE}  # one trace, the chat service's
    send = one(spans, "send gateway-agent-events")
    message = one(spans, "process gateway-agent-events")
    assert message.kind is SpanKind.CONSUMER and parent_of(message) == ids(send)[1]
    assert message.attributes["gateway.message.id"] == "m-1" and message.attributes["gateway.agent.id"] == "a"
    assert message.attributes["messaging.destination.name"] == "gateway-agent-events"
    stages = sorted((s for s in finished if s.name.startswith("stage ")), key=lambda s: s.start_time)
    assert [s.name for s in stages] == [f"stage {n}" for n in (
        "admission", "transcribe", "conversation_turn", "dedupe", "collaboration_in", "prompt",
        "summarize", "moderation_in", "pre_call", "cache", "draft", "provider_call", "ranking",
        "collaborate", "post_call", "reply_format", "moderation_out", "sentiment", "speak",
        "settle_usage", "outputs")]
    assert all(parent_of(s) == ids(message)[1] for s in stages)
    chat = one(spans, "chat gpt-4o-mini")
    assert chat.kind is SpanKind.CLIENT and parent_of(chat) == ids(one(spans, "stage provider_call"))[1]
    assert provider.seen == [{"extra_headers": {"traceparent": f"00-{UPSTREAM_TRACE}-{ids(chat)[1]}-01"}}]
    for topic in ("ai-message-reply", "ai-billing-events"):
        [record] = producer.on(topic)
        sent = one(spans, f"send {topic}")
        assert traceparent(record.headers) == ids(sent) and parent_of(sent) == ids(message)[1]


async def test_streamed_chunks_carry_the_trace_without_a_span_each(spans):
    forwarded = (await intake([("traceparent", UPSTREAM)])).on("gateway-agent-events")[0]
    producer = await processor(forwarded, Provider(), stream=True)
    chunks = producer.on("ai-message-reply-chunks")
    assert chunks and all(traceparent(c.headers) == ids(one(spans, "stage provider_call")) for c in chunks)
    assert not named(spans, "send ai-message-reply-chunks")
    assert one(spans, "chat gpt-4o-mini").attributes["gateway.stream"] is True


async def test_provider_spans_follow_the_genai_conventions(spans):
    provider = Provider()
    forwarded = (await intake([("traceparent", UPSTREAM)])).on("gateway-agent-events")[0]
    await processor(forwarded, provider)
    chat = one(spans, "chat gpt-4o-mini").attributes
    assert chat["gen_ai.operation.name"] == "chat" and chat["gen_ai.provider.name"] == "openai"
    assert chat["gen_ai.request.model"] == "gpt-4o-mini"
    assert chat["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert chat["gen_ai.usage.input_tokens"] == 40 and chat["gen_ai.usage.output_tokens"] == 7
    assert chat["gen_ai.response.finish_reasons"] == ("stop",) and chat["gen_ai.response.id"] == "req-1"
    assert chat["gateway.attempt"] == 1 and chat["gateway.fallback_index"] == 0 and chat["gateway.stream"] is False
    assert "error.type" not in chat


async def test_no_message_content_in_any_span_by_default(spans):
    forwarded = (await intake([("traceparent", UPSTREAM)])).on("gateway-agent-events")[0]
    await processor(forwarded, Provider())
    for span in spans.get_finished_spans():
        assert not any(key.startswith(("gen_ai.input", "gen_ai.output.messages", "gen_ai.system_instructions"))
                       for key in span.attributes), span.name
        assert not any("secret plan" in str(value) or "be brief" in str(value)
                       for value in span.attributes.values()), span.name


async def test_content_only_when_asked_for(spans):
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracing.configure(provider, capture_content=True)
    request = ChatRequest("gpt-4o-mini", "be brief", (ChatMessage("user", CONTENT),), 0.2, 64)
    with tracing.chat("openai", request, 1, 0, streamed=False) as span:
        span.result(ChatResult("said: hi", "stop", TokenUsage(4, 2)))
    chat = one(spans, "chat gpt-4o-mini").attributes
    assert json.loads(chat["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": CONTENT}]}]
    assert json.loads(chat["gen_ai.system_instructions"]) == [{"type": "text", "content": "be brief"}]
    assert json.loads(chat["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "said: hi"}], "finish_reason": "stop"}]


async def test_retries_and_fallbacks_are_attempt_spans_with_their_errors(spans):
    flaky = Provider("openai", [errors.from_status(503, "overloaded")])
    refusing = Provider("anthropic", [errors.from_status(400, "bad request")])
    targets = [Target("anthropic", "haiku-x", {}, 0), Target("openai", "gpt-4o-mini", {}, 1)]
    request = lambda target: ChatRequest(target.model, "", (ChatMessage("user", "hi"),), 0.2, 64)  # noqa: E731
    with tracing.stage("provider_call"):
        answer = await caller(flaky, refusing).call("m-1", targets, request, 10)
    assert answer.target.provider == "openai" and answer.attempts == 3
    attempts = sorted(named(spans, "chat haiku-x") + named(spans, "chat gpt-4o-mini"), key=lambda s: s.start_time)
    assert [(s.attributes["gen_ai.provider.name"], s.attributes["gateway.attempt"],
             s.attributes["gateway.fallback_index"], s.attributes.get("error.type")) for s in attempts] == [
        ("anthropic", 1, 0, "provider_rejected"), ("openai", 2, 1, "provider_unavailable"), ("openai", 3, 1, None)]
    assert attempts[0].status.status_code is StatusCode.ERROR
    assert attempts[0].attributes["http.response.status_code"] == 400
    assert attempts[2].status.status_code is StatusCode.UNSET
    assert attempts[2].attributes["gen_ai.usage.output_tokens"] == 7
    stage = one(spans, "stage provider_call")
    assert all(parent_of(s) == ids(stage)[1] for s in attempts)
    # Each attempt's HTTP request carries its own span's traceparent.
    assert [seen["extra_headers"]["traceparent"].split("-")[2] for seen in refusing.seen + flaky.seen] == \
        [ids(s)[1] for s in attempts]


async def test_a_target_given_up_before_any_attempt_is_an_event(spans):
    async def no_credentials(target):
        if target.fallback_index == 0:
            from gateway_app.errors import GatewayError
            raise GatewayError("credentials_unavailable", "no key")
        return ChatRequest(target.model, "", (ChatMessage("user", "hi"),), 0.2, 64)

    targets = [Target("openai", "gpt-4o", {}, 0), Target("openai", "gpt-4o-mini", {}, 1)]
    with tracing.stage("provider_call"):
        await caller(Provider()).call("m-1", targets, no_credentials, 10)
    [event] = one(spans, "stage provider_call").events
    assert event.name == "gateway.target_skipped" and event.attributes["error.type"] == "credentials_unavailable"
    assert one(spans, "chat gpt-4o-mini").attributes["gateway.fallback_index"] == 1


async def test_a_failed_message_marks_its_span_and_its_dlq_record_carries_the_trace(spans):
    forwarded = (await intake([("traceparent", UPSTREAM)])).on("gateway-agent-events")[0]
    producer = await processor(forwarded, Provider(script=[errors.from_status(400, "bad request")]))
    message = one(spans, "process gateway-agent-events")
    assert message.attributes["error.type"] == "provider_rejected" and message.status.status_code is StatusCode.ERROR
    assert one(spans, "stage provider_call").attributes["error.type"] == "provider_rejected"
    for topic in ("ai-message-dlq", "ai-message-reply"):
        [record] = producer.on(topic)
        assert traceparent(record.headers)[0] == UPSTREAM_TRACE


@pytest.mark.parametrize("sdk", ["openai", "anthropic", "cohere"])
async def test_the_provider_sdks_http_request_carries_the_attempt_traceparent(spans, sdk):
    seen = []
    answers = {
        "openai": {"id": "c1", "object": "chat.completion", "created": 1, "model": "m-2024",
                   "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}},
        "anthropic": {"id": "msg_1", "type": "message", "role": "assistant", "model": "m-2024",
                      "stop_reason": "end_turn",
                      "content": [{"type": "text", "text": "hi"}], "usage": {"input_tokens": 3, "output_tokens": 1}},
        "cohere": {"id": "c1", "finish_reason": "COMPLETE", "message": {"role": "assistant", "content": [
            {"type": "text", "text": "hi"}]}, "usage": {"billed_units": {"input_tokens": 3, "output_tokens": 1}}},
    }

    http_lib = httpx
    if sdk == "anthropic":  # the anthropic SDK's own fork of httpx
        import httpx2 as http_lib

    def handler(request):
        seen.append(request.headers.get("traceparent"))
        return http_lib.Response(200, json=answers[sdk])

    http = http_lib.AsyncClient(transport=http_lib.MockTransport(handler))
    provider = sdk_provider(sdk, http)
    request = ChatRequest("m", "", (ChatMessage("user", "hi"),), 0.2, 64)
    with tracing.chat(sdk, request, 1, 0, streamed=False) as span:
        result = await provider.complete(request)
        span.result(result)
    tracing.disable()
    await provider.complete(request)  # off: no header at all
    await http.aclose()
    chat = one(spans, "chat m")
    assert result.text == "hi" and seen[1] is None and seen[0].split("-")[1:3] == list(ids(chat))
    assert chat.attributes.get("gen_ai.response.model") == (None if sdk == "cohere" else "m-2024")


def sdk_provider(sdk: str, http):
    import anthropic
    import cohere
    import openai

    from gateway_app.providers.anthropic import AnthropicProvider
    from gateway_app.providers.cohere import CohereProvider
    from gateway_app.providers.openai import OpenAIProvider

    provider = {"openai": OpenAIProvider, "anthropic": AnthropicProvider, "cohere": CohereProvider}[sdk]()
    client = {
        "openai": lambda: openai.AsyncOpenAI(api_key="sk-test", base_url="http://provider.test/v1", max_retries=0,
                                             http_client=http),
        "anthropic": lambda: anthropic.AsyncAnthropic(api_key="sk-ant-test", base_url="http://provider.test",
                                                      max_retries=0, http_client=http),
        "cohere": lambda: (cohere.AsyncClientV2(api_key="co-test", base_url="http://provider.test", max_retries=0,
                                                httpx_client=http), http),
    }[sdk]()

    async def built(request):
        return client

    provider._client = built
    return provider


async def test_off_means_no_spans_and_no_headers(spans, off):
    forwarded = (await intake([("traceparent", UPSTREAM)])).on("gateway-agent-events")[0]
    assert forwarded.headers is None
    provider = Provider()
    producer = await processor(forwarded, provider)
    assert spans.get_finished_spans() == ()
    assert producer.records and all(r.headers is None for r in producer.records)
    assert provider.seen == [{}]


def test_off_helpers_return_before_doing_anything(off, monkeypatch):
    def touched(*args, **kwargs):
        raise AssertionError("tracing off touched the OpenTelemetry API")

    for name in ("get_current", "attach"):
        monkeypatch.setattr(tracing.otel_context, name, touched)
    monkeypatch.setattr(tracing.propagate, "extract", touched)
    monkeypatch.setattr(tracing.propagate, "inject", touched)
    message = kafka_message("t", b"x", [("traceparent", UPSTREAM)])
    with tracing.consumed(message), tracing.stage("admission"), tracing.running(None):
        assert tracing.current_headers() is None and dict(tracing.http_kwargs("extra_headers")) == {}
    assert tracing.received(message, "m", "a") is None and tracing.headers_of(None) is None
    with tracing.chat("openai", None, 1, 0, streamed=False) as span:
        span.result(None)
    tracing.note("x", {})
    tracing.failed(None, "provider_error", failure=True)


def test_setup_reads_the_standard_variables(monkeypatch):
    for name in ("OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_SERVICE_NAME", "OTEL_TRACES_SAMPLER",
                 "OTEL_RESOURCE_ATTRIBUTES", "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"):
        monkeypatch.delenv(name, raising=False)
    assert tracing.setup() is False and not tracing.enabled()  # no exporter named: off
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert tracing.setup() is False and not tracing.enabled()
    monkeypatch.delenv("OTEL_SDK_DISABLED")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    try:
        assert tracing.setup() is True and tracing.enabled()
        assert tracing._provider.resource.attributes["service.name"] == "ai-gateway"
        # Not sampled: nothing recorded, but the decision still travels downstream (flags 00).
        with tracing.consumed(kafka_message("t", b"x", None)):
            flags = tracing.current_headers()[0][1].decode().split("-")[3]
            assert int(flags, 16) & 1 == 0
    finally:
        tracing.shutdown()
    monkeypatch.setenv("OTEL_SERVICE_NAME", "gw-eu")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_on")
    try:
        assert tracing.setup() is True and tracing._provider.resource.attributes["service.name"] == "gw-eu"
    finally:
        tracing.shutdown()
    assert not tracing.enabled()


async def test_a_trace_not_sampled_records_nothing_but_carries_the_decision_downstream(spans):
    unsampled = f"00-{UPSTREAM_TRACE}-{UPSTREAM_SPAN}-00".encode()
    forwarded = (await intake([("traceparent", unsampled)])).on("gateway-agent-events")[0]
    provider = Provider()
    producer = await processor(forwarded, provider)
    assert spans.get_finished_spans() == ()  # the default sampler follows the parent's decision
    sent = [dict(r.headers)["traceparent"].decode() for r in producer.records if r.topic != "gateway-room-events"]
    sent.append(provider.seen[0]["extra_headers"]["traceparent"])
    assert len(sent) == 3 and all(v.startswith(f"00-{UPSTREAM_TRACE}-") and v.endswith("-00") for v in sent)


async def test_upstream_baggage_stays_inside_kafka_and_never_reaches_a_provider(spans):
    forwarded = (await intake([("traceparent", UPSTREAM), ("baggage", b"tenant=acme")])).on("gateway-agent-events")[0]
    assert dict(forwarded.headers)["baggage"] == b"tenant=acme"  # the default propagators carry it on
    provider = Provider()
    producer = await processor(forwarded, provider)
    assert dict(producer.on("ai-message-reply")[0].headers)["baggage"] == b"tenant=acme"
    assert set(provider.seen[0]["extra_headers"]) == {"traceparent"}
