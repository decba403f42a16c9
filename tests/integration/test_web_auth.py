"""Operator views behind bearer tokens, on real workers: what is served to whom, rotation, and the
token travelling with a request forwarded to the agent's owner."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

from devtools.workers import REPO, Worker
from tests.integration.harness import Chat, profile, wait_until

OLD, NEW, GARBAGE = "read-old-7f3a9c", "read-new-41be02", "not-a-configured-token"
AGENTS = [f"auth-agent-{i}" for i in range(12)]


def get(worker: Worker, path: str, token: str | None = None) -> tuple[int, Any, dict[str, str]]:
    """GET with an optional bearer token: (status, JSON body or text, headers)."""
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    request = urllib.request.Request(f"http://127.0.0.1:{worker.web_port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, json.loads(body), dict(exc.headers)
        except ValueError:
            return exc.code, body.decode(errors="replace"), dict(exc.headers)
    except OSError:
        return 0, None, {}


async def publish_profiles(chat: Chat, worker: Worker, token: str) -> None:
    for agent in AGENTS:
        await chat.profile(profile(agent))
    await wait_until(lambda: all(get(worker, f"/agents/{a}", token)[0] == 200 for a in AGENTS), timeout=60,
                     what="profiles applied")


def both_own_partitions(workers: list[Worker]) -> bool:
    states = [get(w, "/ready")[1] for w in workers]
    return all(s and s["ready"] and s["assigned_partitions"] > 0 for s in states)


async def test_tokens_guard_the_views_and_travel_with_forwarded_requests(cluster_factory):
    cluster = cluster_factory(GATEWAY_WEB_READ_TOKENS=f"{OLD},{NEW}")
    workers = [cluster.worker(), cluster.worker()]
    for worker in workers:
        worker.wait_ready()
    async with Chat(cluster.deployment) as chat:
        await publish_profiles(chat, workers[0], OLD)
    await wait_until(lambda: both_own_partitions(workers), what="both workers own partitions")
    assert len({cluster.deployment.partition_of(a) for a in AGENTS}) > 1

    for worker in workers:
        # Probes stay open and say nothing secret.
        for path in ("/health", "/ready"):
            status, body, _ = get(worker, path)
            assert status == 200, (path, body)
            assert OLD not in json.dumps(body) and NEW not in json.dumps(body)
        # faust's raw table views are not served, token or not.
        for path in ("/table/agent-profiles", "/table/", "/table/agent-profiles/auth-agent-0/"):
            assert get(worker, path)[0] == 404, path
            assert get(worker, path, OLD)[0] == 404, path
        for path in ("/providers", "/agents/auth-agent-0", "/agents/auth-agent-0/usage", "/agents/nobody"):
            status, body, headers = get(worker, path)
            assert status == 401 and body["error"]["code"] == "unauthorized", (path, status, body)
            assert headers.get("WWW-Authenticate") == "Bearer"
            assert get(worker, path, GARBAGE)[0] == 401, path
        assert get(worker, "/providers", NEW)[0] == 200
        assert get(worker, "/agents/nobody", OLD)[0] == 404

        # Every agent from every worker with either token: for each agent one of the two workers is
        # not its owner and forwards the request, which the owner checks again.
        for agent in AGENTS:
            for token in (OLD, NEW):
                status, body, _ = get(worker, f"/agents/{agent}", token)
                assert status == 200 and body["agent_id"] == agent, (worker.web_port, agent, status, body)
                status, body, _ = get(worker, f"/agents/{agent}/usage", token)
                assert status == 200 and body["agent_id"] == agent
            assert get(worker, f"/agents/{agent}", GARBAGE)[0] == 401


async def test_the_owner_checks_the_forwarded_token_again(cluster_factory):
    """Mid-rotation: worker 0 knows OLD and NEW, worker 1 only NEW. Asked on worker 0 with OLD, an agent
    of worker 0 answers 200, and an agent of worker 1 gets worker 1's 401: the token was forwarded and
    checked by the owner. With NEW, everything answers from both."""
    cluster = cluster_factory(GATEWAY_WEB_READ_TOKENS=f"{OLD},{NEW}")
    first = cluster.worker()
    second_deployment = dataclasses.replace(cluster.deployment,
                                            env={**cluster.deployment.env, "GATEWAY_WEB_READ_TOKENS": NEW})
    second = Worker(second_deployment, cluster.tmp, 1)
    cluster.workers.append(second)
    second.start()
    workers = [first, second]
    for worker in workers:
        worker.wait_ready()
    async with Chat(cluster.deployment) as chat:
        await publish_profiles(chat, first, NEW)
    await wait_until(lambda: both_own_partitions(workers), what="both workers own partitions")

    with_old = {agent: get(first, f"/agents/{agent}", OLD) for agent in AGENTS}
    local = {a for a, (status, _, _) in with_old.items() if status == 200}
    refused_by_owner = {a for a, (status, _, _) in with_old.items() if status == 401}
    assert local and refused_by_owner and local | refused_by_owner == set(AGENTS), with_old
    for agent in refused_by_owner:
        status, body, headers = with_old[agent]
        assert body["error"]["code"] == "unauthorized" and headers.get("WWW-Authenticate") == "Bearer"
    partitions = cluster.deployment.partition_of
    assert not {partitions(a) for a in local} & {partitions(a) for a in refused_by_owner}
    # Worker 1 does not know OLD at all; NEW works everywhere.
    assert {get(second, f"/agents/{a}", OLD)[0] for a in AGENTS} == {401}
    for worker in workers:
        assert {get(worker, f"/agents/{a}", NEW)[0] for a in AGENTS} == {200}


def test_a_network_facing_worker_without_tokens_refuses_to_start(tmp_path):
    env = {"GATEWAY_WEB_HOST": "0.0.0.0", "GATEWAY_WEB_AUTH": "on", "GATEWAY_WEB_READ_TOKENS": "",
           "GATEWAY_WEB_ADMIN_TOKENS": "", "GATEWAY_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run([sys.executable, "-m", "gateway_app.cli", "worker"], cwd=REPO,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "StartupRefused" in done.stderr and "GATEWAY_WEB_READ_TOKENS" in done.stderr, done.stderr[-2000:]


def test_auth_off_serves_everyone_and_warns_at_every_start(cluster_factory):
    cluster = cluster_factory(GATEWAY_WEB_AUTH="off", GATEWAY_WEB_HOST="0.0.0.0", GATEWAY_WEB_READ_TOKENS=OLD)
    worker = cluster.worker()
    worker.wait_ready()
    assert get(worker, "/agents/nobody")[0] == 404 and get(worker, "/providers", GARBAGE)[0] == 200
    worker.stop()
    worker = cluster.worker(index=0)
    worker.wait_ready()
    assert get(worker, "/agents/nobody")[0] == 404
    assert worker.log_path.read_text(errors="replace").count("web.auth_off") == 2, worker.tail()
