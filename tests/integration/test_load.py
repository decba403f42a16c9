"""A short load test, under CI size and not timed: two workers hold a steady rate for a minute, and the
fault-free verifier finds every message answered once, in its conversation's order, billed once. It
catches regressions in correctness under sustained load (backpressure, lanes, acks, batching) that the
short functional tests do not reach. How fast the gateway goes is `make bench`'s question, not this one's:
the latency figures are printed for the CI log, never asserted."""

from __future__ import annotations

import asyncio

from tests.integration.faults import conversation_traffic, say, send_at_rate, settle_and_verify
from tests.integration.harness import Chat, profile, profiles_applied, wait_until
from tests.integration.verifier import Sent

RATE = 100          # messages per second, offered open loop
SECONDS = 60        # how long the rate is held
LATENCY_MS = 40     # the echo provider's simulated answer time
AGENTS, ROOMS = 60, 10  # conversations: 60 agents x 10 rooms


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def test_two_workers_hold_a_steady_rate_for_a_minute(cluster_factory, capsys):
    cluster = cluster_factory(partitions=8)
    workers = [cluster.worker(), cluster.worker()]
    for worker in workers:
        await asyncio.to_thread(worker.wait_ready)
    team = [f"load-{i}" for i in range(AGENTS)]
    async with Chat(cluster.deployment) as chat:
        for agent_id in team:
            await chat.profile(profile(agent_id, options={"latency_ms": LATENCY_MS}))
        await wait_until(profiles_applied(workers[0], {a: 1 for a in team}), 60, "the profiles in force")
        sent: list[Sent] = []
        messages = conversation_traffic(team, ROOMS, RATE * SECONDS, seed=11)
        await send_at_rate(chat, messages, RATE, sent)
        report = await settle_and_verify(chat, sent, capsys=capsys, timeout=120,
                                         title=f"steady load: {RATE}/s for {SECONDS} s, 2 workers",
                                         max_duplicates=0)
        latencies = [r["latency_ms"] for _, r in chat.seen["replies"]]
        say(capsys, f"  reply latency in the gateway: p50 {percentile(latencies, 0.5):.0f} ms, "
                    f"p99 {percentile(latencies, 0.99):.0f} ms, max {max(latencies, default=0):.0f} ms "
                    f"(echo answers in {LATENCY_MS} ms)")
    assert report.ok, report.lines()
    assert report.raw_duplicates == 0 and not report.lost and not report.order_violations
