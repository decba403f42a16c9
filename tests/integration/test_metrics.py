"""`GET /metrics` of a real worker: answered messages, a bad input dead-lettered at intake, and what a
Prometheus scraper then reads (replies by status and code, DLQ records by code, token usage, consumer lag
per partition, the agent-backlog distribution), behind the read token, with no id in any label."""

from __future__ import annotations

import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests.integration.harness import Chat, message, profile, wait_until

TOKEN = "metrics-reader-5d1e7a"
AGENT, ROOM, USER = "metrics-agent-9b2c", "metrics-room-41f0", "u-1"


def scrape(worker, token: str | None = TOKEN) -> tuple[int, str, str]:
    """(status, body, content type) of the worker's /metrics."""
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    request = urllib.request.Request(f"http://127.0.0.1:{worker.web_port}/metrics", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace"), exc.headers.get("Content-Type", "")


def samples(body: str) -> dict[str, list]:
    """Every sample of the exposition by sample name (`x_total`, `x_bucket`, ...)."""
    found: dict[str, list] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            found.setdefault(sample.name, []).append(sample)
    return found


def total(found: dict[str, list], name: str, **labels: str) -> float:
    return sum(s.value for s in found.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items()))


async def test_metrics_of_a_worker_that_answered_and_dead_lettered(cluster_factory):
    cluster = cluster_factory(GATEWAY_WEB_READ_TOKENS=TOKEN, GATEWAY_MAX_CONTENT_CHARS="200")
    worker = cluster.worker()
    worker.wait_ready()
    deployment = cluster.deployment
    async with Chat(deployment) as chat:
        await chat.profile(profile(AGENT))
        answered = [message(AGENT, ROOM, content=f"hello number {i}") for i in range(3)]
        for msg in answered:
            await chat.message(msg)  # parked until the profile is in force, then answered
        too_long = message(AGENT, ROOM, content="x" * 500)  # refused at intake: DLQ and an error reply
        await chat.message(too_long)
        await chat.send("messages", b"{not json", key=ROOM.encode())  # DLQ only: no room to tell
        replies = await chat.wait_replies([m["messageId"] for m in answered + [too_long]])
        assert all(replies[m["messageId"]][0]["status"] == "ok" for m in answered)
        assert replies[too_long["messageId"]][0]["error"]["code"] == "content_too_long"
        await chat.wait_for(lambda: len(chat.seen["dlq"]) >= 2, what="two DLQ records")

    status, body, _ = scrape(worker, token=None)
    assert status == 401  # read access, like every operator view

    agent_events = deployment.topic("agent_events")
    found: dict[str, list] = {}

    def scraped() -> bool:
        nonlocal found
        status, text, content_type = scrape(worker)
        assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
        found = samples(text)
        lag = {s.labels["partition"] for s in found.get("gateway_consumer_lag", [])
               if s.labels["topic"] == agent_events}
        return total(found, "gateway_replies_total", status="ok") >= 3 and len(lag) == deployment.partitions

    await wait_until(scraped, 30, "the replies counted and a lag series for every partition")
    assert total(found, "gateway_replies_total", status="ok", code="") == 3
    assert total(found, "gateway_replies_total", status="error", code="content_too_long") == 1
    assert total(found, "gateway_dlq_records_total", code="content_too_long") == 1
    assert total(found, "gateway_dlq_records_total", code="invalid_json") == 1
    echo = {"gen_ai_operation_name": "chat", "gen_ai_provider_name": "echo", "gen_ai_request_model": "echo-1"}
    assert total(found, "gen_ai_client_token_usage_count", **echo, gen_ai_token_type="input") == 3
    assert total(found, "gen_ai_client_token_usage_sum", **echo, gen_ai_token_type="output") == 9  # 3 words each
    assert total(found, "gen_ai_client_operation_duration_seconds_count", **echo, error_type="") == 3
    assert total(found, "gateway_breaker_state", provider="echo", model="echo-1", state="closed") == 1
    assert all(s.value >= 0 for s in found["gateway_consumer_lag"])
    assert "gateway_provider_calls_in_flight" in found and "gateway_restore_rows_per_second" in found
    backlog = {s.labels["le"] for s in found["gateway_agent_backlog_bucket"]}
    assert "+Inf" in backlog and "gateway_agent_backlog_gcount" in found

    def caught_up() -> bool:  # every record answered: the lag is back to 0 once the next commit is made
        lag = samples(scrape(worker)[1]).get("gateway_consumer_lag", [])
        return all(s.value == 0 for s in lag if s.labels["topic"] == agent_events)

    await wait_until(caught_up, 30, "no consumer lag left on the internal topic")
    _, body, _ = scrape(worker)
    for identifier in (AGENT, ROOM, *(m["messageId"] for m in answered)):
        assert identifier not in body
