"""The dashboard's figures, as plain data: each worker's metric samples, their sum over the cluster, and
what the page shows, computed from two cluster sums some seconds apart.

- `local_samples`: the samples of one worker's Prometheus registry (`GatewayMetrics`) the dashboard
  reads, taken through the registry's own `collect()` (no text parsing).
- `merge`: several workers' samples added up. Counters and histograms are sums by nature; the gauges the
  dashboard reads are too (calls in flight, pending messages, breakers per state, lag per partition: a
  partition is assigned to one worker).
- `History`: each worker's samples of the last minute, so that a rate is taken over a window of about
  `WINDOW_SECONDS` whoever polls and however often, per worker (a worker missing from one poll or
  restarted in between does not distort it).
- `summarize`: the page's figures. Rates and latency percentiles are over the window (a counter that
  went down, a worker that restarted, counts from zero); totals are since the workers started. Latency
  percentiles are read from histogram buckets by linear interpolation inside a bucket, as Prometheus's
  `histogram_quantile` does: a figure is only as fine as the bucket it falls in.

The top agents come from the usage table (`agents_tables.usage`), not from metrics: no metric is
labelled by agent.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Iterable, Mapping

from gateway_app.observability.metrics import GENAI_PROVIDER_NAMES

WINDOW_SECONDS = 10.0   # rates and percentiles are over about this long
KEEP_SECONDS = 60.0     # cluster sums kept for later windows
TOP_AGENTS = 10         # agents listed by cost and by deferrals
QUANTILES = (0.5, 0.95, 0.99)
# The metric families the dashboard reads (sample names start with one of these).
FAMILIES = (
    "gateway_replies", "gateway_dlq_records", "gateway_rate_limit_deferrals", "gateway_rate_limit_rejections",
    "gateway_budget_waits", "gateway_cost_usd", "gateway_overhead_seconds", "gateway_breaker_state",
    "gateway_consumer_lag", "gateway_moderation_verdicts", "gateway_cache_lookups",
    "gateway_provider_calls_in_flight", "gateway_pending_messages", "gateway_provider_retries",
    "gateway_provider_fallbacks", "gen_ai_client_operation_duration_seconds", "gen_ai_client_token_usage",
)
GATEWAY_PROVIDER = {genai: ours for ours, genai in GENAI_PROVIDER_NAMES.items()}

Key = tuple[str, tuple[tuple[str, str], ...]]  # a sample's name and its sorted labels
Samples = dict[Key, float]


def key_of(name: str, labels: Mapping[str, str]) -> Key:
    return name, tuple(sorted(labels.items()))


def local_samples(registry: Any) -> list[list[Any]]:
    """A worker's samples the dashboard reads, as JSON (`[name, labels, value]` each)."""
    out = []
    for family in registry.collect():
        for sample in family.samples:
            if sample.name.startswith(FAMILIES) and math.isfinite(sample.value):
                out.append([sample.name, dict(sample.labels), sample.value])
    return out


def samples_of(part: Iterable[list[Any]]) -> Samples:
    """One worker's samples as `local_samples` gives them (JSON), keyed."""
    out: Samples = {}
    for name, labels, value in part:
        key = key_of(name, labels)
        out[key] = out.get(key, 0.0) + float(value)
    return out


def merge(parts: Iterable[Iterable[list[Any]]]) -> Samples:
    """Workers' samples (as `local_samples` gives them) added up."""
    return merge_samples(samples_of(part) for part in parts)


def delta(now: Samples, before: Samples | None) -> Samples:
    """What each cumulative sample grew by; one that went down (its worker restarted) counts from zero."""
    if before is None:
        return dict(now)
    out = {}
    for key, value in now.items():
        previous = before.get(key, 0.0)
        out[key] = value - previous if value >= previous else value
    return out


def select(samples: Samples, name: str, **match: str) -> Iterable[tuple[dict[str, str], float]]:
    for (sample_name, labels), value in samples.items():
        if sample_name != name:
            continue
        found = dict(labels)
        if all(found.get(label) == wanted for label, wanted in match.items()):
            yield found, value


def total(samples: Samples, name: str, **match: str) -> float:
    return sum(value for _, value in select(samples, name, **match))


def by(samples: Samples, name: str, *labels: str) -> dict[tuple[str, ...], float]:
    """The samples of `name` added up per value of `labels`."""
    out: dict[tuple[str, ...], float] = {}
    for found, value in select(samples, name):
        group = tuple(found.get(label, "") for label in labels)
        out[group] = out.get(group, 0.0) + value
    return out


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The q-quantile of a histogram given as (upper bound, cumulative count) pairs, +Inf last; None when
    it counted nothing. Linear inside the bucket it falls in; past the last finite bound, that bound."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


def histograms(samples: Samples, name: str, *labels: str) -> dict[tuple[str, ...], list[tuple[float, float]]]:
    """The `_bucket` samples of histogram `name`, added up per value of `labels`, as `quantile` reads them."""
    grouped: dict[tuple[str, ...], dict[float, float]] = {}
    for found, value in select(samples, f"{name}_bucket"):
        group = tuple(found.get(label, "") for label in labels)
        bound = float(found["le"])
        grouped.setdefault(group, {})
        grouped[group][bound] = grouped[group].get(bound, 0.0) + value
    return {group: sorted(bounds.items()) for group, bounds in grouped.items()}


def percentiles(buckets: list[tuple[float, float]]) -> dict[str, float | None]:
    return {f"p{round(q * 100)}": quantile(q, buckets) for q in QUANTILES}


@dataclass
class Window:
    """The cluster's sums now, what they grew by over the window (None: the first poll), its length."""

    now: Samples
    grown: Samples
    seconds: float | None

    def rate(self, value: float) -> float | None:
        return None if not self.seconds else value / self.seconds


Parts = Mapping[str, Samples]  # each worker's samples, by its address


class History:
    """Each worker's samples of the last `KEEP_SECONDS` polls; `add` returns the window from the newest
    poll at least `WINDOW_SECONDS` old (or the oldest kept) to the one added.

    Growth is taken per worker and then added up, only over the workers both polls heard from: a worker
    that did not answer one poll (or restarted in between) would otherwise turn its whole total into the
    window's growth, or a negative one."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._kept: deque[tuple[float, Parts]] = deque()

    def add(self, parts: Parts) -> Window:
        now = self.clock()
        while self._kept and now - self._kept[0][0] > KEEP_SECONDS:
            self._kept.popleft()
        before = None
        for at, kept in self._kept:
            if now - at >= WINDOW_SECONDS or before is None:
                before = (at, kept)
        self._kept.append((now, dict(parts)))
        merged = merge_samples(parts.values())
        if before is None:
            return Window(merged, {}, None)
        at, earlier = before
        grown = merge_samples(delta(samples, earlier[url]) for url, samples in parts.items() if url in earlier)
        return Window(merged, grown, now - at)


def merge_samples(parts: Iterable[Samples]) -> Samples:
    summed: Samples = {}
    for part in parts:
        for key, value in part.items():
            summed[key] = summed.get(key, 0.0) + value
    return summed


def summarize(window: Window, usage_rows: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The page's figures (see the module's docstring); `usage_rows` are today's usage per agent."""
    now, grown = window.now, window.grown
    return {
        "window_seconds": None if window.seconds is None else round(window.seconds, 2),
        "requests_per_second": window.rate(total(grown, "gateway_replies_total")),
        "replies": replies(window),
        "latency": latency(grown),
        "latency_all": percentiles(histograms(grown, "gen_ai_client_operation_duration_seconds").get((), [])),
        "overhead": percentiles(histograms(grown, "gateway_overhead_seconds").get((), [])),
        "tokens": tokens(now),
        "top_agents": top_agents(usage_rows),
        "breakers": breakers(now),
        "consumer_lag": consumer_lag(now),
        "dlq": {"total": int(total(now, "gateway_dlq_records_total")),
                "per_second": window.rate(total(grown, "gateway_dlq_records_total")),
                "by_code": {code: int(n) for (code,), n in sorted(by(now, "gateway_dlq_records_total", "code").items())}},
        "limits": {"deferrals": int(total(now, "gateway_rate_limit_deferrals_total")),
                   "budget_waits": int(total(now, "gateway_budget_waits_total")),
                   "rejections": {code: int(n) for (code,), n in
                                  sorted(by(now, "gateway_rate_limit_rejections_total", "code").items())}},
        "moderation": [{"stage": stage, "check": check, "verdict": verdict, "action": action, "count": int(n)}
                       for (stage, check, verdict, action), n in sorted(by(
                           now, "gateway_moderation_verdicts_total", "stage", "check", "verdict", "action").items())],
        "cache": {result: int(n) for (result,), n in sorted(by(now, "gateway_cache_lookups_total", "result").items())},
        "in_flight": int(total(now, "gateway_provider_calls_in_flight")),
        "pending_messages": int(total(now, "gateway_pending_messages")),
        "retries": int(total(now, "gateway_provider_retries_total")),
        "fallbacks": int(total(now, "gateway_provider_fallbacks_total")),
    }


def replies(window: Window) -> dict[str, Any]:
    counts = by(window.now, "gateway_replies_total", "status")
    grown = by(window.grown, "gateway_replies_total", "status")
    return {"total": int(sum(counts.values())),
            "by_status": {status: int(n) for (status,), n in sorted(counts.items())},
            "per_second": {status: window.rate(grown.get((status,), 0.0)) for (status,) in sorted(counts)},
            "by_code": {code: int(n) for (code,), n in sorted(by(window.now, "gateway_replies_total", "code").items())
                        if code}}


def latency(grown: Samples) -> list[dict[str, Any]]:
    """Provider attempt durations over the window, per provider (every model and outcome)."""
    name = "gen_ai_client_operation_duration_seconds"
    calls = by(grown, f"{name}_count", "gen_ai_provider_name")
    rows = []
    for (provider,), buckets in sorted(histograms(grown, name, "gen_ai_provider_name").items()):
        rows.append({"provider": GATEWAY_PROVIDER.get(provider, provider), "calls": int(calls.get((provider,), 0)),
                     **percentiles(buckets)})
    return rows


def tokens(now: Samples) -> list[dict[str, Any]]:
    """Tokens and cost since the workers started, per provider and model."""
    used = by(now, "gen_ai_client_token_usage_sum", "gen_ai_provider_name", "gen_ai_request_model", "gen_ai_token_type")
    cost = by(now, "gateway_cost_usd_total", "provider", "model")
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for (provider, model, kind), n in used.items():
        ours = GATEWAY_PROVIDER.get(provider, provider)
        row = rows.setdefault((ours, model), {"provider": ours, "model": model, "input": 0, "output": 0})
        row[kind] = row.get(kind, 0) + int(n)
    for (provider, model), usd in cost.items():
        rows.setdefault((provider, model), {"provider": provider, "model": model, "input": 0, "output": 0})
    for (provider, model), row in rows.items():
        row["cost_usd"] = f"{Decimal(repr(cost.get((provider, model), 0.0))).quantize(Decimal('0.000001')):f}"
    return [rows[key] for key in sorted(rows)]


def breakers(now: Samples) -> list[dict[str, Any]]:
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for (provider, model, state), n in by(now, "gateway_breaker_state", "provider", "model", "state").items():
        rows.setdefault((provider, model), {"provider": provider, "model": model})[state] = int(n)
    return [rows[key] for key in sorted(rows)]


def consumer_lag(now: Samples) -> dict[str, Any]:
    """Records not yet committed, in all and per topic (its partitions' sum and largest)."""
    topics: dict[str, dict[str, Any]] = {}
    for (topic, _), n in by(now, "gateway_consumer_lag", "topic", "partition").items():
        row = topics.setdefault(topic, {"topic": topic, "partitions": 0, "lag": 0, "max_partition_lag": 0})
        row["partitions"] += 1
        row["lag"] += int(n)
        row["max_partition_lag"] = max(row["max_partition_lag"], int(n))
    return {"total": sum(row["lag"] for row in topics.values()), "topics": [topics[t] for t in sorted(topics)]}


def top_agents(rows: list[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Today's usage rows per agent: the `TOP_AGENTS` that cost most, and that waited most often."""
    by_cost = sorted((row for row in rows if Decimal(row.get("cost_usd") or 0) > 0),
                     key=lambda row: (-Decimal(row["cost_usd"]), row["agent_id"]))
    by_deferrals = sorted((row for row in rows if int(row.get("deferrals") or 0) > 0),
                          key=lambda row: (-int(row["deferrals"]), row["agent_id"]))
    return {
        "by_cost": [{"agent_id": row["agent_id"], "cost_usd": row["cost_usd"], "requests": row.get("requests", 0)}
                    for row in by_cost[:TOP_AGENTS]],
        "by_deferrals": [{"agent_id": row["agent_id"], "deferrals": row["deferrals"]}
                         for row in by_deferrals[:TOP_AGENTS]],
    }
