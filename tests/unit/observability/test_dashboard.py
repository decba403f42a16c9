"""The dashboard's figures as plain data: samples from a real registry, their sum over workers, windows of
the history, histogram quantiles, and the page's summary."""

from __future__ import annotations

import pytest

from gateway_app.contract.events import ErrorCode, ReplyStatus
from gateway_app.observability import dashboard
from gateway_app.observability.dashboard import History, Window, merge, quantile, summarize
from gateway_app.observability.metrics import GatewayMetrics


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def worker(replies: int = 0, latency: float = 0.05, cost: float = 0.0) -> GatewayMetrics:
    metrics = GatewayMetrics()
    for _ in range(replies):
        metrics.reply(ReplyStatus.OK)
        metrics.provider_call("azure", "gpt4o-prod", latency, object())
    metrics.tokens("azure", "gpt4o-prod", 100, 20)
    if cost:
        bill = type("Bill", (), {"provider": "azure", "model": "gpt4o-prod", "cost_usd": str(cost)})
        metrics.billed([bill])
    metrics.dlq(ErrorCode.INVALID_JSON)
    return metrics


def test_local_samples_are_only_the_dashboards_families_and_json_ready():
    samples = dashboard.local_samples(worker(replies=2).registry)
    names = {name for name, _, _ in samples}
    assert "gateway_replies_total" in names and "gen_ai_client_operation_duration_seconds_bucket" in names
    assert all(name.startswith(dashboard.FAMILIES) for name in names)
    assert all(isinstance(labels, dict) and isinstance(value, float) for _, labels, value in samples)


def test_merge_adds_the_workers_up():
    merged = merge([dashboard.local_samples(worker(replies=2).registry),
                    dashboard.local_samples(worker(replies=3).registry)])
    assert dashboard.total(merged, "gateway_replies_total", status="ok") == 5
    assert dashboard.total(merged, "gateway_dlq_records_total") == 2


@pytest.mark.parametrize("q, expected", [(0.5, 0.1), (0.25, 0.05), (0.75, 0.15), (1.0, 0.2), (0.99, 0.198)])
def test_quantile_interpolates_inside_the_bucket(q, expected):
    buckets = [(0.1, 50.0), (0.2, 100.0), (float("inf"), 100.0)]  # half up to 0.1, the rest up to 0.2
    assert quantile(q, buckets) == pytest.approx(expected)


def test_quantile_of_nothing_and_past_the_last_bound():
    assert quantile(0.5, []) is None
    assert quantile(0.5, [(0.1, 0.0), (float("inf"), 0.0)]) is None
    assert quantile(0.99, [(0.1, 1.0), (float("inf"), 10.0)]) == 0.1  # in +Inf: the last finite bound


REPLIES = ("gateway_replies_total", (("code", ""), ("status", "ok")))


def test_history_takes_rates_over_about_the_window():
    clock = Clock()
    history = History(clock)
    first = history.add({"w1": {REPLIES: 10.0}})
    assert first.grown == {} and first.seconds is None and first.rate(5) is None
    for second in range(1, 13):  # a poll every second, 10 more replies each time
        clock.now += 1
        window = history.add({"w1": {REPLIES: 10.0 + 10 * second}})
    assert window.seconds == pytest.approx(10.0)  # the newest poll at least WINDOW_SECONDS old
    assert window.rate(dashboard.total(window.grown, "gateway_replies_total")) == pytest.approx(10.0)
    clock.now += dashboard.KEEP_SECONDS + 1  # nothing kept that old: the window is from the oldest kept
    late = history.add({})
    assert late.seconds is None or late.seconds <= dashboard.KEEP_SECONDS + 1


def test_a_worker_missing_from_a_poll_does_not_make_a_spike():
    clock = Clock()
    history = History(clock)
    history.add({"w1": {REPLIES: 10_000.0}, "w2": {REPLIES: 20_000.0}})
    clock.now += 10
    window = history.add({"w1": {REPLIES: 10_030.0}})  # w2 did not answer this poll
    assert window.rate(dashboard.total(window.grown, "gateway_replies_total")) == pytest.approx(3.0)
    assert dashboard.total(window.now, "gateway_replies_total") == 10_030  # totals: who answered
    clock.now += 10
    window = history.add({"w1": {REPLIES: 10_060.0}, "w2": {REPLIES: 20_030.0}})  # back: grown from its last
    assert window.rate(dashboard.total(window.grown, "gateway_replies_total")) == pytest.approx(3.0)


def test_a_counter_that_went_down_counts_from_zero():
    key = ("gateway_replies_total", (("code", ""), ("status", "ok")))
    assert dashboard.delta({key: 3.0}, {key: 50.0}) == {key: 3.0}  # its worker restarted
    assert dashboard.delta({key: 53.0}, {key: 50.0}) == {key: 3.0}


def test_summary_of_two_workers():
    before = merge([dashboard.local_samples(worker(replies=0).registry)])
    now = merge([dashboard.local_samples(worker(replies=4, latency=0.03, cost=0.25).registry),
                 dashboard.local_samples(worker(replies=6, latency=0.3, cost=0.5).registry)])
    grown = dashboard.delta(now, before)
    usage = [{"agent_id": "a", "cost_usd": "0.5", "requests": 6, "deferrals": 0},
             {"agent_id": "b", "cost_usd": "0.25", "requests": 4, "deferrals": 3},
             {"agent_id": "c", "cost_usd": "0", "requests": 0, "deferrals": 0}]
    page = summarize(Window(now, grown, 5.0), usage)
    assert page["requests_per_second"] == pytest.approx(2.0)
    assert page["replies"]["by_status"] == {"ok": 10}
    latency = page["latency"][0]
    assert latency["provider"] == "azure" and latency["calls"] == 10  # the conventions' name mapped back
    assert 0.02 <= latency["p50"] <= 0.64 and latency["p99"] <= 0.32
    assert page["tokens"] == [{"provider": "azure", "model": "gpt4o-prod", "input": 200, "output": 40,
                               "cost_usd": "0.750000"}]
    assert [a["agent_id"] for a in page["top_agents"]["by_cost"]] == ["a", "b"]
    assert page["top_agents"]["by_deferrals"] == [{"agent_id": "b", "deferrals": 3}]
    assert page["dlq"]["by_code"] == {"invalid_json": 2} and page["dlq"]["per_second"] == pytest.approx(0.2)


def test_breakers_lag_in_flight_from_the_scrape_time_figures():
    samples = {
        ("gateway_breaker_state", (("model", "m"), ("provider", "openai"), ("state", "open"))): 1.0,
        ("gateway_breaker_state", (("model", "m"), ("provider", "openai"), ("state", "closed"))): 2.0,
        ("gateway_consumer_lag", (("partition", "0"), ("topic", "in"))): 5.0,
        ("gateway_consumer_lag", (("partition", "1"), ("topic", "in"))): 7.0,
        ("gateway_provider_calls_in_flight", ()): 3.0,
    }
    page = summarize(Window(samples, {}, None), [])
    assert page["breakers"] == [{"provider": "openai", "model": "m", "open": 1, "closed": 2}]
    assert page["consumer_lag"] == {"total": 12, "topics": [{"topic": "in", "partitions": 2, "lag": 12,
                                                             "max_partition_lag": 7}]}
    assert page["in_flight"] == 3 and page["requests_per_second"] is None
