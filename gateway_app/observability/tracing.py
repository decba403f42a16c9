"""Tracing: one trace per message, from the chat service's record to the reply, across workers.

Off unless the standard OpenTelemetry variables turn it on (`OTEL_TRACES_EXPORTER=otlp` or `console`;
`OTEL_SDK_DISABLED=true` wins). Off, every helper here returns at once: no span objects, no header
work, and the SDK is not imported at all.

A message's trace (the W3C `traceparent` travels in the Kafka record headers, so the processor may be
another worker than the intake):

    process ai-message-created           CONSUMER  intake: child of the input record's `traceparent`, or a root
      send gateway-agent-events          PRODUCER  the re-keyed forward; the record carries its `traceparent`
        process gateway-agent-events     CONSUMER  processor: the message, until its outputs are sent
          stage admission ... stage outputs        one span per pipeline stage the message ran
            chat gpt-4o-mini             CLIENT    one per provider attempt (GenAI conventions); the provider's
                                                   HTTP request carries its `traceparent`
          send ai-message-reply          PRODUCER  one per output record (reply, billing, moderation, DLQ); each
          send ai-billing-events ...               record carries its send span's `traceparent` (a streamed
                                                   answer's chunks carry their stage's, without a span each)

Only the W3C trace context (`traceparent`, `tracestate`) goes with a provider's HTTP request; the Kafka
records also carry what else the propagators hold (`baggage` from upstream, by default).

A trace that is not sampled (`OTEL_TRACES_SAMPLER`, or the upstream's `-00` flags) costs two spans per
message (intake, processor): their children are skipped, and the decision still travels downstream.

Prompts and answers are never put on a span unless `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`
is `true` (then `gen_ai.system_instructions`, `gen_ai.input.messages`, `gen_ai.output.messages`).
The rest of the configuration is the SDK's own, from the environment: `OTEL_SERVICE_NAME` (default
`ai-gateway`), `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`,
`OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT` / `_HEADERS` / `_TIMEOUT` / `_COMPRESSION` (OTLP over
HTTP/protobuf), `OTEL_BSP_*` (the batch span processor), `OTEL_PROPAGATORS`.

It is long on purpose: every span the gateway makes (Kafka hops, stages, provider attempts) and the
header plumbing are kept in one module, so that tracing off is one check in one place.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from asyncio import CancelledError
from contextlib import nullcontext
from types import MappingProxyType
from typing import Any, ContextManager, Iterable, Mapping, Sequence

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]
SERVICE_NAME = "ai-gateway"
CAPTURE_CONTENT = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
# Our provider names as the GenAI conventions spell them (`gen_ai.provider.name`); others as they are.
PROVIDER_NAMES = {"azure": "azure.ai.openai", "cohere": "cohere", "anthropic": "anthropic", "openai": "openai"}

_tracer: trace.Tracer | None = None  # None: tracing is off, and every helper returns at once
_provider: Any = None  # the SDK's TracerProvider that `setup` made (flushed by `shutdown`)
_capture = False  # put prompts and answers on the provider spans
_fields: frozenset[str] = frozenset()  # the header names the propagators read and write (traceparent, ...)
_NOOP: ContextManager[None] = nullcontext()  # stateless: one instance serves every `with`
_NO_KWARGS: Mapping[str, Any] = MappingProxyType({})
_W3C_TRACE_CONTEXT = frozenset({"traceparent", "tracestate"})


# ---- set-up -------------------------------------------------------------------------------------

def setup() -> bool:
    """Tracing as the standard OTEL_* variables say; False, and nothing set up, when they leave it off."""
    global _provider
    env = os.environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    names = [name.strip().lower() for name in env.get("OTEL_TRACES_EXPORTER", "none").split(",")]
    exporters = [exporter for name in names if name and name != "none"
                 for exporter in [_exporter(name)] if exporter is not None]
    if not exporters:
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    if "service.instance.id" not in resource.attributes:  # which worker process a span comes from
        resource = resource.merge(Resource({"service.instance.id": str(uuid.uuid4())}))
    provider = TracerProvider(resource=resource)  # its sampler from OTEL_TRACES_SAMPLER(_ARG); flushed at exit
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))  # OTEL_BSP_* variables
    trace.set_tracer_provider(provider)  # plugin code using the OpenTelemetry API joins the same traces
    configure(provider, capture_content=env.get(CAPTURE_CONTENT, "").strip().lower() == "true")
    _provider = provider
    log.info("tracing.on exporters=%s service=%s", ",".join(n for n in names if n != "none"),
             provider.resource.attributes.get("service.name"))
    return True


def _exporter(name: str) -> Any:
    if name == "otlp":
        protocol = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                    or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf")
        if protocol != "http/protobuf":
            log.warning("tracing.protocol_unsupported protocol=%s sending=http/protobuf", protocol)
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()  # endpoint, headers, timeout, compression: OTEL_EXPORTER_OTLP_(TRACES_)*
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    log.warning("tracing.exporter_unknown name=%s", name)
    return None


def configure(provider: trace.TracerProvider, *, capture_content: bool = False) -> None:
    """Trace through `provider` (the tests hand one with an in-memory exporter)."""
    global _tracer, _capture, _fields
    _tracer = provider.get_tracer("gateway_app")
    _capture = capture_content
    _fields = frozenset(name.lower() for name in propagate.get_global_textmap().fields)


def disable() -> None:
    global _tracer
    _tracer = None


def shutdown() -> None:
    """Export what is still buffered and stop tracing (the SDK also does this when the process exits)."""
    global _provider
    provider, _provider = _provider, None
    disable()
    if provider is not None:
        provider.shutdown()


def enabled() -> bool:
    return _tracer is not None


# ---- headers ------------------------------------------------------------------------------------

def _context_of(headers: Sequence[tuple[str, bytes]] | Mapping[str, bytes] | None) -> otel_context.Context:
    """The trace context in Kafka record headers; an empty context (a new root) when there is none."""
    carrier: dict[str, str] = {}
    items: Iterable = (headers.items() if isinstance(headers, Mapping) else headers) if headers else ()
    for key, value in items:
        name = (key.decode("latin-1") if isinstance(key, bytes) else str(key)).lower()
        if name in _fields and value is not None:
            carrier[name] = value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else str(value)
    return propagate.extract(carrier, context=otel_context.Context()) if carrier else otel_context.Context()


def _inject(ctx: otel_context.Context) -> dict[str, str]:
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=ctx)
    return carrier


def _as_headers(carrier: dict[str, str]) -> Headers:
    return [(name, value.encode("latin-1")) for name, value in carrier.items()]


def current_headers() -> Headers | None:
    """Record headers carrying the current span's trace context; None when off or no span is current."""
    if _tracer is None:
        return None
    ctx = otel_context.get_current()
    if not trace.get_current_span(ctx).get_span_context().is_valid:
        return None
    return _as_headers(_inject(ctx))


def http_kwargs(argument: str, field: str | None = None) -> Mapping[str, Any]:
    """Keyword arguments that put the current span's `traceparent` on an SDK's HTTP request:
    `{argument: headers}`, or `{argument: {field: headers}}`; empty when off or no span is current.
    Only the W3C trace context goes to a provider, never `baggage` (another party's keys and values)."""
    if _tracer is None:
        return _NO_KWARGS
    ctx = otel_context.get_current()
    if not trace.get_current_span(ctx).get_span_context().is_valid:
        return _NO_KWARGS
    headers = {name: value for name, value in _inject(ctx).items() if name in _W3C_TRACE_CONTEXT}
    return {argument: headers if field is None else {field: headers}}


# ---- spans --------------------------------------------------------------------------------------

def _fail(span: Span, error: BaseException) -> None:
    if isinstance(error, CancelledError):  # a rebalance or a stop: not the message's failure
        span.set_attribute("gateway.cancelled", True)
        return
    code = getattr(error, "code", None)  # a GatewayError's stable code; a bug's exception class otherwise
    kind = str(code) if code is not None else type(error).__qualname__
    span.set_attribute("error.type", kind)
    span.set_status(Status(StatusCode.ERROR, kind))
    if _capture:  # the message (and the trace) may quote content
        span.record_exception(error)


class _Active:
    """A started span, current while the `with` block runs (in `context`: its parent's, with its
    baggage), ended when it leaves it."""

    __slots__ = ("span", "quiet", "context", "_token")

    def __init__(self, span: Span, quiet: type[BaseException] | tuple[type[BaseException], ...] = (),
                 context: otel_context.Context | None = None) -> None:
        self.span, self.quiet, self.context = span, quiet, context

    def __enter__(self) -> "_Active":
        self._token = otel_context.attach(trace.set_span_in_context(self.span, self.context))
        return self

    def __exit__(self, kind: Any, error: BaseException | None, tb: Any) -> None:
        try:
            if error is not None and not isinstance(error, self.quiet):
                _fail(self.span, error)
            self.span.end()
        finally:
            otel_context.detach(self._token)


def _consumer_attributes(message: Any) -> dict[str, Any]:
    return {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": message.topic,
        "messaging.destination.partition.id": str(message.partition),
        "messaging.kafka.offset": message.offset,
        "messaging.message.body.size": len(message.value or b""),
    }


def consumed(message: Any) -> ContextManager[Any]:
    """The intake's span of one input record (a faust `Message`): a child of the `traceparent` in its
    headers (the chat service's trace) or a new root, current while the record is handled."""
    if _tracer is None:
        return _NOOP
    parent = _context_of(message.headers)
    span = _tracer.start_span(f"process {message.topic}", parent, SpanKind.CONSUMER,
                              attributes=_consumer_attributes(message))
    return _Active(span, context=parent)


class _Sending:
    __slots__ = ("span", "headers")

    def __init__(self, tracer: trace.Tracer, topic: str, headers: Sequence[tuple[str, bytes]]) -> None:
        parent = _context_of(headers)
        self.span = tracer.start_span(f"send {topic}", parent, SpanKind.PRODUCER, attributes={
            "messaging.system": "kafka", "messaging.operation.type": "send", "messaging.operation.name": "send",
            "messaging.destination.name": topic})
        own = [(k, v) for k, v in headers if k.lower() not in _fields]
        self.headers = own + _as_headers(_inject(trace.set_span_in_context(self.span, parent)))

    def __enter__(self) -> Headers:
        return self.headers

    def __exit__(self, kind: Any, error: BaseException | None, tb: Any) -> None:
        if error is not None:
            _fail(self.span, error)
        self.span.end()


def producing(topic: str, headers: Sequence[tuple[str, bytes]]) -> ContextManager[Headers]:
    """The send of one record of a traced message: a PRODUCER span, child of the trace in `headers`;
    yields the headers the record goes out with (the trace context now the send span's). A trace not
    sampled gets no span: the record carries the headers as they are (the decision goes on)."""
    if _tracer is None or _unsampled(headers):
        return nullcontext(list(headers))
    return _Sending(_tracer, topic, headers)


def _unsampled(headers: Sequence[tuple[str, bytes]]) -> bool:
    for key, value in headers:
        if key == "traceparent":  # W3C: version-traceid-spanid-flags; bit 0 of the flags is "sampled"
            try:
                return len(value) == 55 and not int(value[-2:], 16) & 1
            except ValueError:
                return False
    return False


def _in_unsampled_trace() -> bool:
    """The current span is a trace's that is not sampled: its children would record nothing either
    (skipping them makes an unsampled message cheap; what goes downstream carries the decision)."""
    span = trace.get_current_span()
    return span.get_span_context().is_valid and not span.is_recording()


class TraceState:
    """A message's trace on the answering side (`MessageContext.trace`): its `process` span (in the
    context it runs in, with the upstream's baggage), and the headers that every record produced for
    the message is sent with (a send span is their child)."""

    __slots__ = ("span", "context", "headers")

    def __init__(self, span: Span, context: otel_context.Context, headers: Headers) -> None:
        self.span, self.context, self.headers = span, context, headers


def received(message: Any, message_id: str, agent_id: str) -> TraceState | None:
    """Start the processor's span of one message read from the internal topic (a faust `Message`), a
    child of the `traceparent` the intake's forward put in its headers; None when tracing is off."""
    if _tracer is None:
        return None
    attributes = _consumer_attributes(message)
    attributes.update({"gateway.message.id": message_id, "gateway.agent.id": agent_id})
    parent = _context_of(message.headers)
    span = _tracer.start_span(f"process {message.topic}", parent, SpanKind.CONSUMER, attributes=attributes)
    return TraceState(span, parent, _as_headers(_inject(trace.set_span_in_context(span, parent))))


def headers_of(state: TraceState | None) -> Headers | None:
    return None if state is None else state.headers


def running(state: TraceState | None) -> ContextManager[Any]:
    """The message's span current while its work runs (its stages' and calls' spans are children),
    ended when the work is over."""
    return _NOOP if state is None else _Active(state.span, context=state.context)


def finished(state: TraceState | None, how: str) -> None:
    """End the message's span without running it (e.g. `absorbed`: its outputs already exist)."""
    if state is not None:
        state.span.set_attribute("gateway.outcome", how)
        state.span.end()


def failed(state: TraceState | None, code: str, *, failure: bool) -> None:
    """The message ends without an ok answer: `failure` (error, DLQ) or an answer that refuses (blocked)."""
    if state is None:
        return
    state.span.set_attribute("gateway.outcome", code)
    if failure:
        state.span.set_attribute("error.type", code)
        state.span.set_status(Status(StatusCode.ERROR, code))


def stage(name: str, quiet: type[BaseException] | tuple[type[BaseException], ...] = ()) -> ContextManager[Any]:
    """One pipeline stage's span (a child of the current one, the message's); an exception of a `quiet`
    type (a stage ending the message on purpose, not failing) leaves it without an error."""
    if _tracer is None or _in_unsampled_trace():
        return _NOOP
    return _Active(_tracer.start_span(f"stage {name}", attributes={"gateway.stage": name}), quiet)


def note(name: str, attributes: Mapping[str, Any]) -> None:
    """An event on the current span (e.g. a provider target skipped before any attempt)."""
    if _tracer is not None:
        trace.get_current_span().add_event(name, attributes)


# ---- provider attempts (OpenTelemetry GenAI semantic conventions) ---------------------------------

class _Chat(_Active):
    """One provider attempt's CLIENT span, current while it runs (the SDK's HTTP request carries it)."""

    __slots__ = ()

    def result(self, outcome: Any) -> None:
        """The attempt's ChatResult (usage, finish reason, response model) or ProviderError."""
        span = self.span
        usage = getattr(outcome, "usage", None)
        if usage is None:
            _fail(span, outcome)
            status = getattr(outcome, "status", None)
            if status is not None:
                span.set_attribute("http.response.status_code", status)
            return
        span.set_attribute("gen_ai.usage.input_tokens", usage.input_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", usage.output_tokens)
        if usage.cached_input_tokens:
            span.set_attribute("gen_ai.usage.cache_read.input_tokens", usage.cached_input_tokens)
        span.set_attribute("gen_ai.response.finish_reasons", (outcome.finish_reason,))
        if outcome.request_id:
            span.set_attribute("gen_ai.response.id", outcome.request_id)
        model = getattr(outcome, "model", None)
        if model:
            span.set_attribute("gen_ai.response.model", model)
        if _capture:
            span.set_attribute("gen_ai.output.messages", json.dumps([{
                "role": "assistant", "parts": _parts(outcome.text, outcome.tool_calls),
                "finish_reason": outcome.finish_reason}]))


class _NoChat:
    __slots__ = ()

    def __enter__(self) -> "_NoChat":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def result(self, outcome: Any) -> None:
        return None


_NO_CHAT = _NoChat()


def chat(provider: str, request: Any, attempt: int, fallback_index: int, *, streamed: bool) -> _Chat | _NoChat:
    """The span of one provider attempt (`chat {model}`); call `.result(outcome)` inside the `with`."""
    if _tracer is None or _in_unsampled_trace():
        return _NO_CHAT
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": PROVIDER_NAMES.get(provider, provider),
        "gen_ai.request.model": request.model,
        "gen_ai.request.temperature": request.temperature,
        "gen_ai.request.max_tokens": request.max_tokens,
        "gen_ai.output.type": "json" if request.response_format == "json" else "text",
        "gateway.provider": provider,
        "gateway.attempt": attempt,
        "gateway.fallback_index": fallback_index,
        "gateway.stream": streamed,
    }
    if request.stop:
        attributes["gen_ai.request.stop_sequences"] = tuple(request.stop)
    for name in ("frequency_penalty", "presence_penalty"):
        if getattr(request, name) is not None:
            attributes[f"gen_ai.request.{name}"] = getattr(request, name)
    if _capture:
        if request.system_prompt:
            attributes["gen_ai.system_instructions"] = json.dumps([{"type": "text", "content": request.system_prompt}])
        attributes["gen_ai.input.messages"] = json.dumps([_message(m) for m in request.messages])
    return _Chat(_tracer.start_span(f"chat {request.model}", kind=SpanKind.CLIENT, attributes=attributes))


def _parts(text: str, tool_calls: Iterable[Any]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"type": "text", "content": text}] if text else []
    return parts + [{"type": "tool_call", "id": c.id, "name": c.name, "arguments": c.arguments} for c in tool_calls]


def _message(message: Any) -> dict[str, Any]:
    if message.role == "tool":
        return {"role": "tool", "parts": [{"type": "tool_call_response", "id": message.tool_call_id,
                                           "response": message.content}]}
    return {"role": message.role, "parts": _parts(message.content, message.tool_calls)}
