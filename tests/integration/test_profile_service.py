"""Profile sync over HTTP, one worker on a real broker and a local profile service: an agent only the
service knows is answered with the service's profile, which is then in the table like any profile (the
worker's view shows it, and a worker restoring from an empty data directory has it without asking again);
a later profile event of the same version is ignored, one of a higher version wins; an agent the service
does not know gets the usual unknown-agent reply; every request carried the bearer token its reference
names, and no log line did."""

from __future__ import annotations

import asyncio

import pytest

from tests.fakes.base import ServerThread
from tests.fakes.profile_service import FakeProfileService
from tests.integration.harness import Chat, message, profile, profiles_applied, wait_until

TOKEN = "profile-service-token-7c1e93a4"
PROFILE_WAIT = 4.0


@pytest.fixture
def service():
    fake = FakeProfileService(token=TOKEN)
    fake.put(profile("svc-agent", 3, model="echo-service"))  # camelCase, as a profile event would be
    with ServerThread(fake.app) as thread:
        fake.url = thread.url
        yield fake


async def ask(chat: Chat, agent_id: str, timeout: float = 30) -> tuple[dict, dict]:
    msg = message(agent_id)
    await chat.message(msg)
    return msg, (await chat.wait_replies([msg["messageId"]], timeout=timeout))[msg["messageId"]][0]


async def test_an_agent_only_the_service_knows(cluster_factory, service):
    cluster = cluster_factory(partitions=2, GATEWAY_PROFILE_SERVICE_URL=service.url,
                              GATEWAY_PROFILE_SERVICE_AUTH="env:PROFILE_SERVICE_TOKEN",
                              PROFILE_SERVICE_TOKEN=TOKEN, GATEWAY_PROFILE_WAIT_SECONDS=str(PROFILE_WAIT))
    first = cluster.worker()
    await asyncio.to_thread(first.wait_ready)
    async with Chat(cluster.deployment) as chat:
        unknown_task = asyncio.create_task(ask(chat, "nobody", timeout=PROFILE_WAIT + 20))
        _, reply = await ask(chat, "svc-agent")
        assert (reply["status"], reply["model"], reply["profile_version"]) == ("ok", "echo-service", 3), reply
        status, stored = first.get("/agents/svc-agent")
        assert status == 200 and (stored["version"], stored["model"]) == (3, "echo-service"), stored

        unknown, refused = await unknown_task
        assert (refused["status"], refused["error"]["code"]) == ("agent_unavailable", "agent_unknown"), refused
        assert chat.dlq_of(unknown["messageId"])
        counters = first.get("/health")[1]["counters"]
        assert (counters["profile_fetches_ok"], counters["profile_fetches_not_found"]) == (1, 1), counters

        # In the changelog like any profile: a worker with an empty data directory restores it.
        first.stop()
        second = cluster.worker()
        await asyncio.to_thread(second.wait_ready)
        await wait_until(profiles_applied(second, {"svc-agent": 3}), 30, "the fetched profile restored")

        await chat.profile(profile("svc-agent", 3, model="echo-stale"))  # the same version: ignored
        await wait_until(lambda: "profile.ignored_stale agent=svc-agent version=3 stored=3" in second.tail(200),
                         30, "the equal version ignored")
        await chat.profile(profile("svc-agent", 4, model="echo-event"))
        await wait_until(profiles_applied(second, {"svc-agent": 4}), 30, "the profile event applied")
        _, later = await ask(chat, "svc-agent")
        assert (later["status"], later["model"], later["profile_version"]) == ("ok", "echo-event", 4), later

        health = second.get("/health")[1]["counters"]
        assert health["profile_fetches_ok"] == 0  # the second worker never needed the service

    asked = service.asked()
    assert sorted(agent for agent, _ in asked) == ["nobody", "svc-agent"], asked  # once each, no retries
    assert {auth for _, auth in asked} == {f"Bearer {TOKEN}"}
    for worker in (first, second):
        assert TOKEN not in worker.log_path.read_text(errors="replace")
    log = first.log_path.read_text(errors="replace")
    assert "profile.fetched agent=svc-agent version=3" in log
    assert "profile.fetch_failed agent=nobody reason=not_found" in log
