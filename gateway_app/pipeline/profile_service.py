"""Profile sync over HTTP: a fallback to the profile events for an agent the worker has no profile for.

With `GATEWAY_PROFILE_SERVICE_URL` set, a message parked for its agent's profile (admission's
`_wait_for_profile`) also asks `GET {url}/agents/{agent id}` and keeps waiting as before. Concurrent
messages of one agent share one fetch; a definite answer (a profile, a 404, an invalid body) stands for
`REMEMBER_SECONDS`, so a burst of messages for an unknown agent asks once.

Why exact: a fetched profile is not written to the table here. It is published as the very record the
intake forwards for a `profile-updated` event (`ProfileRecord`, origin topic `profile-service`), keyed by
agent id onto `gateway-agent-events`: onto the agent's partition, behind the message that asked for it.
The dispatcher then applies it like any profile event:
- through `ProfileStore.apply`, at one point of the agent's stream: a profile event read later with a
  higher version wins, an equal or lower one is ignored (and the fetched one is ignored if the table
  already holds that version or a newer one, a delete's tombstone included);
- the row is written while its own record is processed, so the changelog has it and a restore from an
  empty data directory has it;
- the lane notify that releases a message parked for a profile event releases this one too;
- a rebalance during the fetch loses nothing: the record reaches whoever owns the partition then.
Writing the table from the message's task would reach the right partition and converge by version too,
but which later messages see the fetched profile would then depend on timing, not on a position in the
stream, and a reprocessing from the committed offset would not see it at all.

A 404, an invalid body (validated exactly like a profile event at the intake, and dead-lettered the way
the intake dead-letters one), an error or an open breaker leave the message waiting for a profile event
until its profile wait ends (then `agent_unavailable` / `agent_unknown`, as without the service). The
service's bearer token is a credential reference, resolved when used and never logged.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlsplit

from gateway_app.contract import ids
from gateway_app.contract.decode import Rejection, StageCheck, decode_profile
from gateway_app.contract.events import AgentProfile, ErrorCode
from gateway_app.contract.internal import Origin, ProfileRecord, encode_agent_event
from gateway_app.credentials.refs import parse_ref
from gateway_app.credentials.resolver import CredentialResolver
from gateway_app.credentials.secret import fingerprint
from gateway_app.forwarding import bad_credential_refs, plaintext_leak
from gateway_app.observability.metrics import GatewayMetrics
from gateway_app.pipeline import records
from gateway_app.pipeline.profile_client import ProfileClient, Result
from gateway_app.publisher import Publisher
from gateway_app.resilience.breaker import CircuitBreaker

log = logging.getLogger(__name__)
SOURCE = "profile-service"  # the origin topic of fetched profiles and of their DLQ records
REMEMBER_SECONDS = 5.0  # a definite answer stands this long: a burst of messages asks once
REMEMBERED_AGENTS = 10_000  # the oldest remembered answers go first
DEFINITE = (Result.OK, Result.NOT_FOUND, Result.INVALID)  # the service's own answer: remembered


@dataclass(frozen=True)
class Invalid:
    rejection: Rejection
    kept: bytes  # the body as a DLQ record may carry it (a key sent by value is redacted)


def validate(agent_id: str, raw: bytes, known_provider: Callable[[str], bool],
             check_stage: StageCheck) -> AgentProfile | Invalid:
    """The intake's checks of a profile event, in its order, plus: the body is this agent's profile."""
    leak = plaintext_leak("profile", raw)
    if leak is not None:
        return Invalid(leak[1], leak[0])
    decoded = decode_profile(raw, known_provider, check_stage)
    problem = decoded if isinstance(decoded, Rejection) else bad_credential_refs(decoded)
    if problem is not None:
        return Invalid(problem, raw)
    if decoded.agent_id != agent_id:
        reason = f"the body is the profile of agent {decoded.agent_id!r}, not of {agent_id!r}"
        return Invalid(Rejection(ErrorCode.INVALID_EVENT, reason, {}), raw)
    return decoded


class ProfileService:
    """Fetches for parked messages (one fetch per agent at a time), publishes what it got as a profile
    record, dead-letters invalid bodies, and counts and logs every outcome."""

    def __init__(self, client: ProfileClient, check: Callable[[str, bytes], AgentProfile | Invalid],
                 publisher: Publisher, metrics: GatewayMetrics, counters: dict[str, int], *,
                 clock: Callable[[], float] = time.monotonic, remember_seconds: float = REMEMBER_SECONDS) -> None:
        self.client, self.check, self.publisher, self.metrics = client, check, publisher, metrics
        self.counters, self.clock, self.remember_seconds = counters, clock, remember_seconds
        self._fetching: dict[str, asyncio.Task] = {}
        self._answered: OrderedDict[str, float] = OrderedDict()  # agent -> until when its answer stands
        for result in Result:
            counters.setdefault(counter_name(result), 0)  # shown by /health from the start

    def request(self, agent_id: str, deadline: float) -> asyncio.Task | None:
        """Start a fetch for the agent (bounded by `deadline`, monotonic), or join the one running; None
        when the service answered for this agent moments ago. The answer arrives as a profile record."""
        running = self._fetching.get(agent_id)
        if running is not None:
            return running
        if self._answered.get(agent_id, 0.0) > self.clock():
            return None
        task = asyncio.create_task(self._run(agent_id, deadline))
        self._fetching[agent_id] = task
        task.add_done_callback(lambda _: self._fetching.pop(agent_id, None))
        return task

    async def _run(self, agent_id: str, deadline: float) -> Result:
        try:
            result = await self._fetch_and_settle(agent_id, deadline)
        except Exception as exc:  # a producer failure, or a bug: this fetch fails, the worker goes on
            log.warning("profile.fetch_failed agent=%s reason=error detail=%s", agent_id, type(exc).__name__,
                        exc_info=True)
            result = Result.ERROR
        self.counters[counter_name(result)] += 1
        self.metrics.profile_fetch(result)
        if result in DEFINITE:
            self._remember(agent_id)
        return result

    async def _fetch_and_settle(self, agent_id: str, deadline: float) -> Result:
        answer = await self.client.fetch(agent_id, deadline)
        if answer.result is not Result.OK:
            self._failed(agent_id, answer.result, answer.detail, answer.attempts)
            return answer.result
        checked = self.check(agent_id, answer.body)
        if isinstance(checked, Invalid):
            rejection = checked.rejection
            self._failed(agent_id, Result.INVALID, f"{rejection.code}: {rejection.reason}", answer.attempts)
            await self._dead_letter(agent_id, checked)
            return Result.INVALID
        record = ProfileRecord(agent_id=agent_id, payload=checked, origin=origin(agent_id, answer.body))
        delivery = await self.publisher.forward(agent_id, encode_agent_event(record))
        await delivery  # on the broker: the dispatcher will read it, after the message that asked
        log.info("profile.fetched agent=%s version=%s attempts=%d", agent_id, checked.version, answer.attempts)
        return Result.OK

    def _failed(self, agent_id: str, result: Result, detail: str, attempts: int) -> None:
        level = logging.INFO if result is Result.NOT_FOUND else logging.WARNING
        log.log(level, "profile.fetch_failed agent=%s reason=%s attempts=%d detail=%s", agent_id, result,
                attempts, detail[:300])

    async def _dead_letter(self, agent_id: str, invalid: Invalid) -> None:
        """Like the intake's record of an invalid profile event; its id is one per agent, body and code."""
        code = invalid.rejection.code
        dead = records.dead_letter(origin(agent_id, invalid.kept), code, invalid.rejection.reason,
                                   agent_id=agent_id)
        dlq_id = ids.dlq_id(f"{SOURCE}/{agent_id}", -1, -1, f"{code}:{fingerprint(invalid.kept)}")
        await self.publisher.dead_letter(dead.model_copy(update={"dlq_id": dlq_id}))

    def _remember(self, agent_id: str) -> None:
        self._answered[agent_id] = self.clock() + self.remember_seconds
        self._answered.move_to_end(agent_id)
        while len(self._answered) > REMEMBERED_AGENTS:
            self._answered.popitem(last=False)

    async def aclose(self) -> None:
        running = list(self._fetching.values())
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        await self.client.aclose()


def counter_name(result: Result) -> str:
    return f"profile_fetches_{result}"


def origin(agent_id: str, body: bytes) -> Origin:
    """Fetched records have no input record behind them: the agent id and the body stand in for it."""
    return Origin(topic=SOURCE, partition=-1, offset=-1, key_b64=base64.b64encode(agent_id.encode()).decode(),
                  value_b64=base64.b64encode(body).decode(), received_at_ms=int(time.time() * 1000))


def from_settings(settings, publisher: Publisher, counters: dict[str, int], credentials: CredentialResolver | None,
                  known_provider: Callable[[str], bool], check_stage: StageCheck) -> ProfileService | None:
    """The worker's fetcher, or None without `profile_service_url`. Raises ValueError at start for a URL
    that is not http(s) or an auth value that is not a credential reference (the reason never repeats it)."""
    url = settings.profile_service_url
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("GATEWAY_PROFILE_SERVICE_URL must be an http:// or https:// URL")
    if settings.profile_service_auth is not None:
        try:
            parse_ref(settings.profile_service_auth)  # a token by value is refused here, never sent
        except ValueError as exc:
            raise ValueError(f"GATEWAY_PROFILE_SERVICE_AUTH must be a credential reference: {exc}") from None
    client = ProfileClient(url, settings.profile_service_timeout_seconds, settings.retry_policy(),
                           CircuitBreaker(settings.breaker_policy()), credentials=credentials,
                           auth_ref=settings.profile_service_auth)
    return ProfileService(client, lambda agent_id, raw: validate(agent_id, raw, known_provider, check_stage),
                          publisher, publisher.metrics, counters)
