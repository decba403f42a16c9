"""Provider caps across workers (GATEWAY_PROVIDER_LIMITS_SCOPE=cluster, the default), workers as
subprocesses on `rocksdb://`: a cap of R requests per window holds across two and three workers, also
with one of three killed (-9) midway, as counted by the provider fake per wall-clock window; a 429 seen
by one worker pauses the endpoint on every worker."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest

from tests.fakes.base import ServerThread
from tests.fakes.openai_server import FakeOpenAI
from tests.integration.harness import Chat, message, profile, profiles_applied, wait_until

MODEL = "gpt-4o-mini"
WINDOW_SECONDS = 3.0
CAP = 12  # requests per window: 4/s, far below what the fake and two cores answer, so the cap binds
AGENTS = 24
MESSAGES = 96
LEASE = max(1, int(CAP * 0.1))  # GATEWAY_PROVIDER_LEASE_SHARE's default: one lease is this many requests


@pytest.fixture
def openai_fake():
    server = FakeOpenAI()
    with ServerThread(server.app) as thread:
        yield server, thread


def capped_env(thread, **extra: str) -> dict[str, str]:
    return {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": thread.url + "/v1",
            "GATEWAY_PROVIDER_LIMITS": json.dumps({"openai": {"rpm": CAP}}),
            "GATEWAY_PROVIDER_CAP_WINDOW_SECONDS": str(WINDOW_SECONDS),
            "GATEWAY_MESSAGE_DEADLINE_SECONDS": "100", "GATEWAY_REBALANCE_TIMEOUT_SECONDS": "120", **extra}


def beyond_the_stated_worst_case(windows: dict[int, int], workers: int) -> list[str]:
    """docs/providers.md's worst case at the provider: counted by the workers' clocks a window grants the
    cap, plus about one lease per worker while the endpoint's owner moves (a known defect, item 5); a call
    granted late in one window may arrive in the next. So no window sees more than 2 x the cap, and the
    windows from the first to any other never more than their caps together plus one lease per worker
    (arrivals only lag grants)."""
    problems, seen = [], 0
    first = min(windows) if windows else 0
    for window, count in sorted(windows.items()):
        seen += count
        allowed = (window - first + 1) * CAP + workers * LEASE
        if count > 2 * CAP:
            problems.append(f"window {window}: {count} requests > 2 x {CAP}")
        if seen > allowed:
            problems.append(f"windows {first}..{window}: {seen} requests > {allowed}")
    return problems


@pytest.mark.parametrize("workers,kill", [(2, False), (3, True)], ids=["two-workers", "three-workers-one-killed"])
async def test_a_cap_holds_across_workers(cluster_factory, openai_fake, workers, kill):
    server, thread = openai_fake
    cluster = cluster_factory(partitions=6, **capped_env(thread))
    nodes = [cluster.worker() for _ in range(workers)]
    for node in nodes:
        node.wait_ready(120)
    agents = [f"cap-{uuid.uuid4().hex[:6]}-{n}" for n in range(AGENTS)]
    msgs = [message(agents[n % AGENTS], room_id=f"room-{n % 16}", content=f"question {n}") for n in range(MESSAGES)]
    async with Chat(cluster.deployment) as chat:
        for agent in agents:
            await chat.profile(profile(agent, provider="openai", model=MODEL))
        await wait_until(profiles_applied(nodes[0], {agent: 1 for agent in agents}), 90, "the profiles")
        started = time.time()
        for msg in msgs:
            await chat.message(msg)
        if kill:
            await wait_until(lambda: len(server.arrivals) >= MESSAGES // 3, 90, "a third of the calls made")
            nodes[-1].kill()  # its lease lapses unused; its partitions (and perhaps endpoint ownership) move
        replies = await chat.wait_replies([m["messageId"] for m in msgs], timeout=240)
        asks = [node.get("/providers")[1]["leases"] for node in nodes if node.proc.poll() is None]
    statuses = [replies[m["messageId"]][0]["status"] for m in msgs]
    windows = server.per_window(WINDOW_SECONDS)
    print(f"\n{workers} workers{' (one killed)' if kill else ''}: {len(server.arrivals)} provider requests in "
          f"{time.time() - started:.1f} s; per {WINDOW_SECONDS:.0f} s window: {list(windows.values())} (cap {CAP}); "
          "lease asks per live worker (asks, answered, mean / max ms from ask to grant): "
          + ", ".join(f"{a['asks']}, {a['grants']}, {a['ask_ms']['mean']} / {a['ask_ms']['max']}" for a in asks))
    assert statuses.count("ok") == MESSAGES, statuses
    print(f"windows over the cap at the provider (a late call, or an owner's move: docs/providers.md): "
          f"{ {w: n for w, n in windows.items() if n > CAP} or 'none'}")
    assert not beyond_the_stated_worst_case(windows, workers), (beyond_the_stated_worst_case(windows, workers), windows)
    # The cap was what paced them: without it the fake would have answered all of them in one window.
    assert len(windows) >= MESSAGES // CAP and max(windows.values()) >= CAP, windows


async def test_a_429_on_one_worker_pauses_the_endpoint_on_every_worker(cluster_factory, openai_fake):
    server, thread = openai_fake
    cluster = cluster_factory(partitions=4, **capped_env(thread, GATEWAY_RATE_LIMIT_PAUSE_SECONDS="20",
                                                         GATEWAY_RETRY_MAX_ATTEMPTS="1"))
    first, second = cluster.worker(), cluster.worker()
    first.wait_ready(120)
    second.wait_ready(120)
    agent = f"pause-{uuid.uuid4().hex[:6]}"
    async with Chat(cluster.deployment) as chat:
        await chat.profile(profile(agent, provider="openai", model=MODEL))
        await wait_until(profiles_applied(first, {agent: 1}), 60, "the profile")
        limited = message(agent, content="FAULT:429-bare")  # a 429 without Retry-After: the 20 s pause
        await chat.message(limited)
        await chat.wait_replies([limited["messageId"]], timeout=60)

        def paused_everywhere() -> bool:
            views = [node.get("/providers")[1]["leases"]["paused"] for node in (first, second)]
            return all(any(key.startswith("openai:") and seconds > 0 for key, seconds in v.items()) for v in views)

        await wait_until(paused_everywhere, 10, "the pause announced to both workers")
        calls = len(server.arrivals)
        waiting = message(agent, content="after the pause")
        await chat.message(waiting)
        await asyncio.sleep(3)
        assert len(server.arrivals) == calls  # nobody calls the paused endpoint
