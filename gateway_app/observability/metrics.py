"""Prometheus metrics of one worker, served by `GET /metrics` (every worker serves its own figures:
Prometheus scrapes each of them).

One `GatewayMetrics` per worker owns its own `CollectorRegistry` (never the process-global one, so tests
can build as many as they like) and defines every metric once. The pipeline reports through its typed
methods (`reply`, `dlq`, `provider_call`, `tokens`, ...); figures that are state rather than events
(calls in flight, agent backlogs, breakers and 429 pauses, consumer lag, the last table restore) are read
from the worker when it is scraped (`watch` tells where from).

Names and labels:
- The GenAI metrics follow the OpenTelemetry GenAI semantic conventions, in their Prometheus spelling
  (dots become underscores, the unit `s` becomes the suffix `_seconds`, `{token}` adds none):
  `gen_ai.client.operation.duration` -> `gen_ai_client_operation_duration_seconds`,
  `gen_ai.client.token.usage` -> `gen_ai_client_token_usage`,
  `gen_ai.client.operation.time_to_first_chunk` -> `gen_ai_client_operation_time_to_first_chunk_seconds`,
  with the conventions' bucket boundaries and attributes as labels: `gen_ai_operation_name` (always
  `chat`), `gen_ai_provider_name` (the conventions' well-known value where one applies: the gateway's
  `azure` is `azure.ai.openai`; other providers keep the gateway's name), `gen_ai_request_model`,
  `gen_ai_token_type` (`input` | `output`) and `error_type` (the gateway's error code of a failed
  attempt, e.g. `provider_timeout`; empty for a success, which Prometheus reads as no label).
- The gateway's own metrics are `gateway_*`, labelled `provider`, `model`, `status`, `code` (and a few
  bounded enumerations: a moderation check, a breaker state, a topic and partition).
- Label values are always bounded: no label ever carries an agent, user, room or message id. Models are
  what an agent's profile names, so they are capped per provider by `ModelLabels`.

It is long on purpose: every metric is defined once here (the README's table is written from it), with
the scrape-time collectors beside them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics import disable_created_metrics
from prometheus_client.utils import floatToGoString

from gateway_app.providers.base import ProviderError

log = logging.getLogger(__name__)

# The text format would expose a `*_created` gauge beside every counter and histogram series, doubling
# the series Prometheus stores for no use here. (A setting of the library, for the whole process.)
disable_created_metrics()

MODELS_PER_PROVIDER = 50  # distinct model names kept per provider; later ones are counted as `other`
OTHER = "other"
OPERATION = "chat"  # gen_ai.operation.name: every call the gateway makes is a chat completion
# gen_ai.provider.name: the conventions' well-known values where the gateway's name differs.
GENAI_PROVIDER_NAMES = {"azure": "azure.ai.openai"}
# Bucket boundaries the conventions recommend (seconds; tokens).
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
# The gateway's own share of a message's time is mostly milliseconds: finer buckets below 100 ms.
OVERHEAD_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60)
BACKLOG_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000)  # messages one agent has waiting
BREAKER_STATES = ("closed", "open", "half_open")
GENAI_LABELS = ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model")


class ModelLabels:
    """The `model` label of a provider's metrics: the first `limit` distinct models seen per provider keep
    their name, every later one is `other`, so a profile naming ever new models cannot grow the series
    without bound (at most `limit` + 1 model values per provider, for the worker's life)."""

    def __init__(self, limit: int = MODELS_PER_PROVIDER) -> None:
        self.limit = limit
        self._seen: dict[str, set[str]] = {}

    def __call__(self, provider: str, model: str) -> str:
        seen = self._seen.setdefault(provider, set())
        if model in seen:
            return model
        if len(seen) < self.limit:
            seen.add(model)
            return model
        return OTHER


def _text(value: Any) -> str:
    """A label value from an enum member (its value), a string, or None (empty: no label)."""
    if value is None:
        return ""
    return str(getattr(value, "value", value))


@dataclass
class WorkerState:
    """Where the figures read at scrape time come from; any of them None is left out.
    `caller`: `.in_flight` (its semaphore), `.settings.max_in_flight`, `.endpoints` (`Endpoints`) and
    `.clock` (the monotonic clock of their pauses);
    `turns`: `.agents` (the agent lanes, `.sizes()`); `dispatcher`: `.in_progress`; `consumer`: faust's
    consumer (`assignment()`, `highwater(tp)`, committed offsets); `changelog_topics`: topics whose
    partitions are not consumer lag (table changelogs); `recovery`: `.restore_stats()`."""

    caller: Any = None
    turns: Any = None
    dispatcher: Any = None
    consumer: Any = None
    changelog_topics: Iterable[str] = ()
    recovery: Any = None

    @classmethod
    def of(cls, app: Any, services: Any, dispatcher: Any) -> "WorkerState":
        tables = app.tables
        return cls(caller=services.caller, turns=services.turns, dispatcher=dispatcher, consumer=app.consumer,
                   changelog_topics=set(tables.changelog_topics), recovery=getattr(tables, "recovery", None))


class GatewayMetrics:
    def __init__(self, models_per_provider: int = MODELS_PER_PROVIDER) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.models = ModelLabels(models_per_provider)
        self.state: WorkerState | None = None
        registry = self.registry
        # OpenTelemetry GenAI client metrics (see the module's docstring for the names).
        self._duration = Histogram(
            "gen_ai_client_operation_duration", "GenAI operation duration: one provider call attempt, from "
            "the request to the whole answer or the error", (*GENAI_LABELS, "error_type"), unit="seconds",
            buckets=DURATION_BUCKETS, registry=registry)
        self._tokens = Histogram(
            "gen_ai_client_token_usage", "Number of input and output tokens used, per provider answer a "
            "message's outcome (reply, billing) accounts for", (*GENAI_LABELS, "gen_ai_token_type"),
            buckets=TOKEN_BUCKETS, registry=registry)
        self._first_chunk = Histogram(
            "gen_ai_client_operation_time_to_first_chunk", "Time to receive the first chunk of a streamed "
            "call, from the request", GENAI_LABELS, unit="seconds", buckets=DURATION_BUCKETS, registry=registry)
        # The gateway's own.
        self._replies = Counter("gateway_replies", "Replies published, by status and error code (empty for ok)",
                                ("status", "code"), registry=registry)
        self._dlq = Counter("gateway_dlq_records", "Dead-letter records published (intake and pipeline), by "
                            "error code", ("code",), registry=registry)
        self._deferrals = Counter("gateway_rate_limit_deferrals", "Times a message was put to wait for a later "
                                  "window of its agent's rate limits", registry=registry)
        self._rejections = Counter("gateway_rate_limit_rejections", "Messages refused by their agent's rate "
                                   "limits (exceeds_tpm, backlog_full)", ("code",), registry=registry)
        self._retries = Counter("gateway_provider_retries", "Provider call attempts retried after a retriable "
                                "failure", ("provider", "model"), registry=registry)
        self._fallbacks = Counter("gateway_provider_fallbacks", "Fallback targets tried after the target before "
                                  "them failed or had its breaker open, by the fallback's provider and model",
                                  ("provider", "model"), registry=registry)
        self._pauses = Counter("gateway_endpoint_pauses", "Provider 429 answers that paused their endpoint",
                               ("provider", "model"), registry=registry)
        self._cache = Counter("gateway_cache_lookups", "Response-cache lookups, by result (hit | miss)",
                              ("result",), registry=registry)
        self._budget_waits = Counter("gateway_budget_waits", "Times a message waited for its agent's calls in "
                                     "flight to settle before its budget could admit it", registry=registry)
        self._budget_fallbacks = Counter("gateway_budget_fallbacks", "Messages sent to their budget's fallback "
                                         "model because the budget was spent, by the fallback's provider and model",
                                         ("provider", "model"), registry=registry)
        self._cost = Counter("gateway_cost_usd", "Cost of the provider answers billed (USD, from the billing "
                             "events; a cache hit costs 0)", ("provider", "model"), registry=registry)
        self._message_duration = Histogram(
            "gateway_message_duration", "A message's time in the worker, from read to its outputs acked by the "
            "broker, by reply status", ("status",), unit="seconds", buckets=DURATION_BUCKETS, registry=registry)
        self._overhead = Histogram(
            "gateway_overhead", "A message's time in the worker that is the gateway's own: not its provider "
            "attempts, nor its admission (waiting behind its agent's earlier messages, for the profile, a "
            "rate window or the budget) and its room's turn; retry back-off, checks and publishing are in it",
            unit="seconds", buckets=OVERHEAD_BUCKETS, registry=registry)
        self._moderation = Counter("gateway_moderation_verdicts", "Moderation checks that did not pass, by "
                                   "stage, check, verdict (flagged | error) and the action taken",
                                   ("stage", "check", "verdict", "action"), registry=registry)
        self._profile_fetches = Counter("gateway_profile_fetches", "Profiles asked of the profile service for "
                                        "an agent without one, by result (ok | not_found | invalid | error | "
                                        "breaker_open)", ("result",), registry=registry)
        registry.register(_WorkerCollector(self))

    # --- events, reported by the pipeline ---

    def reply(self, status: Any, code: Any = None) -> None:
        self._replies.labels(_text(status), _text(code)).inc()

    def dlq(self, code: Any) -> None:
        self._dlq.labels(_text(code)).inc()

    def provider_call(self, provider: str, model: str, seconds: float, outcome: Any) -> None:
        """One attempt's duration; `outcome` is its answer or its `ProviderError` (the error type)."""
        error_type = _text(outcome.code) if isinstance(outcome, ProviderError) else ""
        self._duration.labels(*self._genai(provider, model), error_type).observe(max(0.0, seconds))

    def tokens(self, provider: str, model: str, input_tokens: int, output_tokens: int) -> None:
        labels = self._genai(provider, model)
        self._tokens.labels(*labels, "input").observe(input_tokens)
        self._tokens.labels(*labels, "output").observe(output_tokens)

    def answered(self, answers: Iterable[Any]) -> None:
        """The token usage of a message's provider answers (`caller.Answer`s)."""
        for answer in answers:
            usage = answer.result.usage
            self.tokens(answer.target.provider, answer.target.model, usage.input_tokens, usage.output_tokens)

    def first_chunk(self, provider: str, model: str, seconds: float) -> None:
        self._first_chunk.labels(*self._genai(provider, model)).observe(max(0.0, seconds))

    def first_chunk_timer(self, sink: Callable[..., None] | None, provider: str, model: str,
                          clock: Callable[[], float]) -> Callable[..., None] | None:
        """`sink` (a streamed call's chunk sink; None: not streamed) that also records the time from now
        to its first call: the first event of the stream."""
        if sink is None:
            return None
        started, pending = clock(), [True]

        def timed(*args: Any) -> None:
            if pending:
                pending.clear()
                self.first_chunk(provider, model, clock() - started)
            sink(*args)

        return timed

    def retry(self, provider: str, model: str) -> None:
        self._retries.labels(provider, self.models(provider, model)).inc()

    def fallback(self, provider: str, model: str) -> None:
        self._fallbacks.labels(provider, self.models(provider, model)).inc()

    def pause(self, provider: str, model: str) -> None:
        self._pauses.labels(provider, self.models(provider, model)).inc()

    def deferral(self) -> None:
        self._deferrals.inc()

    def rejection(self, code: Any) -> None:
        self._rejections.labels(_text(code)).inc()

    def budget_wait(self) -> None:
        self._budget_waits.inc()

    def budget_fallback(self, provider: str, model: str) -> None:
        self._budget_fallbacks.labels(provider, self.models(provider, model)).inc()

    def billed(self, bills: Iterable[Any]) -> None:
        """The cost of billing events (`BillingEvent`s) the message's outcome publishes."""
        for bill in bills:
            self._cost.labels(bill.provider, self.models(bill.provider, bill.model)).inc(float(bill.cost_usd))

    def message(self, status: Any, seconds: float, not_ours: float) -> None:
        """A message finished with a reply of `status` after `seconds`, `not_ours` of them in provider
        attempts or waiting on purpose (see `gateway_overhead_seconds`)."""
        self._message_duration.labels(_text(status)).observe(max(0.0, seconds))
        self._overhead.observe(max(0.0, seconds - not_ours))

    def cache(self, hit: bool) -> None:
        self._cache.labels("hit" if hit else "miss").inc()

    def moderation(self, stage: str, check: str, verdict: str, action: str) -> None:
        self._moderation.labels(_text(stage), _text(check), _text(verdict), _text(action)).inc()

    def profile_fetch(self, result: Any) -> None:
        self._profile_fetches.labels(_text(result)).inc()

    def _genai(self, provider: str, model: str) -> tuple[str, str, str]:
        return OPERATION, GENAI_PROVIDER_NAMES.get(provider, provider), self.models(provider, model)

    # --- the scrape ---

    def watch(self, state: WorkerState) -> None:
        """Where the next scrapes read the worker's state from."""
        self.state = state

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The registry in the format the scraper's Accept header asks for (Prometheus text by default,
        OpenMetrics on request): the body and its content type."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


async def serve(view: Any, request: Any, app: Any, services: Any, dispatcher: Any) -> Any:
    """`GET /metrics` of this worker (the view checks the caller's access first)."""
    metrics: GatewayMetrics = services.metrics
    metrics.watch(WorkerState.of(app, services, dispatcher))
    body, content_type = metrics.exposition(request.headers.get("Accept"))
    return view.bytes(body, headers={"Content-Type": content_type})


class _WorkerCollector:
    """The figures that are the worker's state, computed at each scrape. A part whose source is missing
    or fails is left out (logged); the rest of the scrape is served."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Metric]:
        return []  # nothing to check against the other metrics' names at registration

    def collect(self) -> Iterator[Metric]:
        state = self.metrics.state
        if state is None:
            return
        parts = (("caller", self._in_flight), ("caller", self._endpoints), ("turns", self._backlog),
                 ("dispatcher", self._pending), ("consumer", self._lag), ("recovery", self._restore))
        for source, part in parts:
            if getattr(state, source) is None:
                continue
            try:
                yield from part(state)
            except Exception:  # a scrape must not fail because one source is in an odd state (a rebalance)
                log.warning("metrics.collect_failed part=%s", part.__name__, exc_info=True)

    def _in_flight(self, state: WorkerState) -> Iterator[Metric]:
        caller = state.caller
        limit = caller.settings.max_in_flight
        free = getattr(caller.in_flight, "_value", limit)  # asyncio.Semaphore's free slots
        yield GaugeMetricFamily("gateway_provider_calls_in_flight", "Provider calls holding an in-flight slot "
                                "(GATEWAY_MAX_IN_FLIGHT per worker)", value=max(0, limit - free))
        yield GaugeMetricFamily("gateway_provider_calls_in_flight_limit", "In-flight slots of this worker "
                                "(GATEWAY_MAX_IN_FLIGHT)", value=limit)

    def _endpoints(self, state: WorkerState) -> Iterator[Metric]:
        models, now = self.metrics.models, state.caller.clock()
        states: dict[tuple[str, str, str], int] = {}
        paused: dict[tuple[str, str], float] = {}
        for endpoint in list(state.caller.endpoints.by_key.values()):
            labels = (endpoint.provider, models(endpoint.provider, endpoint.model))
            for name in BREAKER_STATES:
                states.setdefault((*labels, name), 0)
            states[(*labels, str(endpoint.breaker.state))] += 1
            paused[labels] = max(paused.get(labels, 0.0), endpoint.paused_until - now, 0.0)
        breaker = GaugeMetricFamily("gateway_breaker_state", "Provider endpoints (provider + model + base URL) "
                                    "whose circuit breaker is in this state", labels=("provider", "model", "state"))
        for labels, count in sorted(states.items()):
            breaker.add_metric(labels, count)
        yield breaker
        pause = GaugeMetricFamily("gateway_endpoint_pause_seconds", "Seconds left of the longest 429 pause of "
                                  "the provider's endpoints of this model (0: not paused)",
                                  labels=("provider", "model"))
        for labels, seconds in sorted(paused.items()):
            pause.add_metric(labels, round(seconds, 3))
        yield pause

    def _backlog(self, state: WorkerState) -> Iterator[Metric]:
        sizes = state.turns.agents.sizes()
        buckets = [(floatToGoString(bound), sum(1 for size in sizes if size <= bound)) for bound in BACKLOG_BUCKETS]
        buckets.append(("+Inf", len(sizes)))
        yield GaugeHistogramMetricFamily(
            "gateway_agent_backlog", "Agents by how many of their messages are in admission (waiting for a "
            "profile, a rate window or their turn; GATEWAY_AGENT_BACKLOG_MAX each): a distribution, no agent "
            "named", buckets=buckets, gsum_value=sum(sizes))

    def _pending(self, state: WorkerState) -> Iterator[Metric]:
        yield GaugeMetricFamily("gateway_pending_messages", "Unfinished messages of this worker (it stops reading "
                                "at GATEWAY_MAX_PENDING_MESSAGES)", value=len(state.dispatcher.in_progress))

    def _lag(self, state: WorkerState) -> Iterator[Metric]:
        consumer, changelogs = state.consumer, set(state.changelog_topics)
        lag = GaugeMetricFamily("gateway_consumer_lag", "Records of an assigned partition not yet committed: the "
                                "partition's high watermark minus the group's committed offset (before the "
                                "first commit, minus the next offset to process)", labels=("topic", "partition"))
        for tp in sorted(consumer.assignment()):
            if tp.topic in changelogs:
                continue
            records = partition_lag(consumer, tp)
            if records is not None:
                lag.add_metric((tp.topic, str(tp.partition)), records)
        yield lag

    def _restore(self, state: WorkerState) -> Iterator[Metric]:
        stats = state.recovery.restore_stats()
        yield GaugeMetricFamily("gateway_restore_rows_per_second", "Rows per second of the last restore of this "
                                "worker's tables from their changelogs (0: none restored)",
                                value=stats.get("rows_per_second") or 0)
        yield GaugeMetricFamily("gateway_restore_rows", "Rows written by the last table restore",
                                value=stats.get("rows") or 0)
        yield GaugeMetricFamily("gateway_restore_seconds", "Duration of the last table restore (so far, while "
                                "one runs)", value=stats.get("seconds") or 0)
        yield GaugeMetricFamily("gateway_restore_in_progress", "1 while the worker restores its tables",
                                value=1 if stats.get("in_progress") else 0)


def partition_lag(consumer: Any, tp: Any) -> int | None:
    """High watermark minus the committed offset of one assigned partition; before its first commit, minus
    the next offset the worker will process (`OffsetGuard`). None while the broker has not told the
    watermark yet, or nothing says where the group stands in a partition that has records."""
    try:
        highwater = consumer.highwater(tp)
    except (AssertionError, KeyError, AttributeError):  # not (or no longer) assigned: a rebalance
        return None
    if highwater is None:
        return None
    base = getattr(consumer, "_committed_offset", {}).get(tp)  # faust's committed offsets (next to read)
    guard = getattr(consumer, "guard", None)
    if base is None and guard is not None:
        base = guard.expected(tp)
    if base is None:
        return 0 if highwater == 0 else None
    return max(0, highwater - base)
