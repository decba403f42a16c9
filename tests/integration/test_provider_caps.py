"""Provider caps across workers (GATEWAY_PROVIDER_LIMITS_SCOPE=cluster, the default), workers as
subprocesses on `rocksdb://`: a cap of R requests per window holds across two and three workers, also
with the endpoint's owner killed (-9) midway, as granted by the owners and as counted by the provider fake
per wall-clock window; a 429 seen by one worker pauses the endpoint on every worker."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter

import pytest

from tests.fakes.base import ServerThread
from tests.fakes.openai_server import FakeOpenAI
from tests.integration.harness import Chat, message, profile, profiles_applied, wait_until

MODEL = "gpt-4o-mini"
WINDOW_SECONDS = 3.0
CAP = 12  # requests per window: 4/s, far below what the fake and two cores answer, so the cap binds
AGENTS = 24
MESSAGES = 96


@pytest.fixture
def openai_fake():
    server = FakeOpenAI()
    with ServerThread(server.app) as thread:
        yield server, thread


def capped_env(thread, **extra: str) -> dict[str, str]:
    # The SDK loaded before /ready, as in production: a first call that imports it on the way from its
    # lease to the wire reaches the fake a window late (docs/providers.md, reason 4).
    return {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": thread.url + "/v1", "GATEWAY_PRELOAD_PROVIDERS": "openai",
            "GATEWAY_PROVIDER_LIMITS": json.dumps({"openai": {"rpm": CAP}}),
            "GATEWAY_PROVIDER_CAP_WINDOW_SECONDS": str(WINDOW_SECONDS),
            "GATEWAY_MESSAGE_DEADLINE_SECONDS": "100", "GATEWAY_REBALANCE_TIMEOUT_SECONDS": "120", **extra}


def granted_per_window(grants: list[dict]) -> dict[int, int]:
    """Requests the owners granted per window, from `gateway-provider-grants`: each ask counted once (a
    redelivered ask is announced again; its worker takes the first answer only)."""
    first: dict[str, dict] = {}
    for grant in grants:
        first.setdefault(grant["request_id"], grant)
    totals: Counter[int] = Counter()
    for grant in first.values():
        totals[grant["window"]] += grant["requests"]
    return dict(sorted(totals.items()))


def over_what_was_granted(arrived: dict[int, int], granted: dict[int, int]) -> list[str]:
    """A call reaches the provider after its lease was spent, in the window it was granted in or a later
    one (the same clock here: workers and fake share the machine), never before. So, window by window, the
    requests that arrived so far never exceed those granted so far."""
    problems, arrived_so_far, granted_so_far = [], 0, 0
    for window in sorted(set(arrived) | set(granted)):
        arrived_so_far += arrived.get(window, 0)
        granted_so_far += granted.get(window, 0)
        if arrived_so_far > granted_so_far:
            problems.append(f"up to window {window}: {arrived_so_far} arrived > {granted_so_far} granted")
    return problems


@pytest.mark.parametrize("workers,kill", [(2, False), (3, True)], ids=["two-workers", "three-workers-owner-killed"])
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
        if kill:  # the endpoint's owner: its lease lapses unused, its partitions and the ownership move
            await wait_until(lambda: len(server.arrivals) >= MESSAGES // 3, 90, "a third of the calls made")
            owner = chat.seen["provider_grants"][-1][1]["owner"]
            by_name = {node.get("/providers")[1]["leases"]["worker"]: node for node in nodes}
            by_name[owner].kill()
        replies = await chat.wait_replies([m["messageId"] for m in msgs], timeout=240)
        asks = [node.get("/providers")[1]["leases"] for node in nodes if node.proc.poll() is None]
        grants = await chat.grants()
        granted = granted_per_window(grants)
    statuses = [replies[m["messageId"]][0]["status"] for m in msgs]
    arrived = server.per_window(WINDOW_SECONDS)
    print(f"\n{workers} workers{' (the owner killed)' if kill else ''}: {len(server.arrivals)} provider requests in "
          f"{time.time() - started:.1f} s (cap {CAP} per {WINDOW_SECONDS:.0f} s window)\n"
          f"  granted per window (owners' answers): {granted}\n  arrived per window (the fake):       {arrived}\n"
          "  lease asks per live worker (asks, answered, mean / max ms from ask to grant): "
          + ", ".join(f"{a['asks']}, {a['grants']}, {a['ask_ms']['mean']} / {a['ask_ms']['max']}" for a in asks))
    assert statuses.count("ok") == MESSAGES, statuses
    if kill:  # the ownership moved: a worker still running granted the last lease
        assert grants[-1]["owner"] != owner, (owner, grants[-1])
    # Exact by the workers' clocks: no window's grants add up to more than the cap (docs/providers.md).
    assert max(granted.values()) <= CAP, granted
    # At the provider, only lateness: a window sees its own calls plus some the previous one granted late.
    print(f"  windows over the cap at the fake (calls granted late in the window before): "
          f"{ {w: n for w, n in arrived.items() if n > CAP} or 'none'}")
    # (2 x the cap in a window follows while the way from lease to wire is shorter than a window; with 3 s
    # windows on a busy machine it may not be, so the invariant itself is what is asserted.)
    assert not over_what_was_granted(arrived, granted), (over_what_was_granted(arrived, granted), granted, arrived)
    # The cap was what paced them: without it the fake would have answered all of them in one window.
    assert len(arrived) >= MESSAGES // CAP and max(granted.values()) == CAP, (granted, arrived)


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
