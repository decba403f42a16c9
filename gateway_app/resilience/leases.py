"""A worker's side of the cluster-wide provider caps: leases asked of each endpoint's owner and spent
locally, and the 429 pauses every worker shares (rules: `capacity`; the owner: `agents_tables.capacity`).

`reserve` is called before each provider attempt. It spends one request and the call's token estimate
from the endpoint's lease for the current window, asking the owner for a new lease when this one is spent
(one ask per endpoint at a time, shared by every call waiting for it). It returns how long to wait
instead: the endpoint's pause, the end of a window the owner says is full, or a short retry when the
owner did not answer in time (its partition may be moving to another worker).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from typing import Awaitable, Callable

from gateway_app.resilience import capacity
from gateway_app.resilience.capacity import Ask, Grant, Lease, PauseAnnouncement, PauseNotice
from gateway_app.resilience.endpoints import Caps

log = logging.getLogger(__name__)
Send = Callable[[str, bytes], Awaitable[object]]  # (endpoint, record) -> onto gateway-provider-capacity


def worker_name() -> str:
    """Unique per process: a restarted worker must not take the answers to its predecessor's asks."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class LeaseClient:
    def __init__(self, send: Send, window_seconds: float, share: float, ask_timeout: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.send, self.clock = send, clock
        self.window_seconds, self.share, self.ask_timeout = window_seconds, share, ask_timeout
        self.worker = worker_name()
        self.listening = asyncio.Event()  # the answers' topic is read from its end: asks may go out
        self.leases: dict[str, Lease] = {}
        self.full_until: dict[str, float] = {}  # endpoint -> end of a window the owner said is full
        self.paused_until: dict[str, float] = {}  # endpoint -> wall-clock end of its 429 pause
        self._asking: dict[str, asyncio.Event] = {}  # endpoint -> set when its ask in flight is over
        self._pending: dict[str, asyncio.Future[Grant]] = {}  # request id -> its answer
        self.asks = self.grants_received = 0
        self.ask_seconds_total = self.ask_seconds_max = 0.0  # ask sent -> grant read, answered asks only

    def paused_for(self, endpoint: str) -> float:
        return max(0.0, self.paused_until.get(endpoint, 0.0) - self.clock())

    async def reserve(self, endpoint: str, caps: Caps, tokens: int) -> tuple[float, int | None]:
        """(0, window) once a call of about `tokens` tokens is counted against the window's caps; else
        (seconds to wait, None)."""
        while True:
            now = self.clock()
            if (pause := self.paused_for(endpoint)) > 0:
                return pause, None
            if caps.rpm is None and caps.tpm is None:
                return 0.0, None
            window = capacity.window_of(now, self.window_seconds)
            lease = self.leases.get(endpoint)
            if lease is not None and lease.fits(window, tokens, caps.rpm is not None, caps.tpm is not None):
                lease.spend(tokens)
                return 0.0, window
            if self.full_until.get(endpoint, 0.0) > now:
                return self.full_until[endpoint] - now, None
            asking = self._asking.get(endpoint)
            if asking is not None:  # another call asked already: its answer may be enough for this one too
                try:
                    await asyncio.wait_for(asking.wait(), self.ask_timeout * 2)
                except TimeoutError:
                    return self.ask_timeout / 4, None
                continue
            grant = await self._ask(endpoint, caps, tokens, window)
            if grant is None:
                return self.ask_timeout / 4, None

    async def _ask(self, endpoint: str, caps: Caps, tokens: int, window: int) -> Grant | None:
        ask = Ask(uuid.uuid4().hex, self.worker, endpoint, window,
                  requests=capacity.lease_size(caps.rpm, self.share),
                  tokens=0 if caps.tpm is None else max(tokens, capacity.lease_size(caps.tpm, self.share)),
                  rpm=caps.rpm, tpm=caps.tpm)
        answer: asyncio.Future[Grant] = asyncio.get_running_loop().create_future()
        over = self._asking[endpoint] = asyncio.Event()
        self._pending[ask.request_id] = answer
        try:
            await asyncio.wait_for(self.listening.wait(), self.ask_timeout)
            self.asks += 1
            sent = time.monotonic()
            await self.send(endpoint, capacity.encode(ask))
            grant = await asyncio.wait_for(answer, self.ask_timeout)
            took = time.monotonic() - sent
            self.ask_seconds_total += took
            self.ask_seconds_max = max(self.ask_seconds_max, took)
            return grant
        except TimeoutError:
            log.warning("capacity.ask_unanswered endpoint=%s seconds=%.1f (its owner may be moving)", endpoint,
                        self.ask_timeout)
            return None
        finally:
            self._pending.pop(ask.request_id, None)
            if self._asking.get(endpoint) is over:
                del self._asking[endpoint]
            over.set()  # the calls that waited for this ask look again

    def on_answer(self, raw: bytes) -> None:
        """A record of `gateway-provider-grants`: a grant (ours or not) or a pause announcement."""
        try:
            answer = capacity.decode_answer(raw)
        except (ValueError, TypeError, KeyError) as exc:
            log.error("capacity.bad_answer error=%r", exc)
            return
        if isinstance(answer, PauseAnnouncement):
            self._paused(answer.endpoint, answer.until)
            return
        self._paused(answer.endpoint, answer.paused_until)
        if answer.worker != self.worker:
            return
        waiting = self._pending.get(answer.request_id)
        if waiting is None or waiting.done():
            return  # an answer that came too late: its capacity lapses with its window
        self.grants_received += 1
        self._apply(answer)
        waiting.set_result(answer)

    def _apply(self, grant: Grant) -> None:
        if not grant.requests and not grant.tokens:
            self.full_until[grant.endpoint] = capacity.window_end(grant.window, self.window_seconds)
            return
        lease = self.leases.get(grant.endpoint)
        if lease is not None and lease.window == grant.window:
            lease.requests += grant.requests
            lease.tokens += grant.tokens
        else:
            self.leases[grant.endpoint] = Lease(grant.window, grant.requests, grant.tokens)

    def _paused(self, endpoint: str, until: float) -> None:
        if until > self.paused_until.get(endpoint, 0.0):
            self.paused_until[endpoint] = until

    def settle(self, endpoint: str, window: int, reserved: int, used: int) -> None:
        lease = self.leases.get(endpoint)
        if lease is not None:
            lease.settle(window, reserved, used)

    async def pause(self, endpoint: str, seconds: float) -> None:
        """A 429: this worker pauses the endpoint now, and tells its owner, who tells every worker."""
        until = self.clock() + seconds
        self._paused(endpoint, until)
        try:
            await self.send(endpoint, capacity.encode(PauseNotice(self.worker, endpoint, until)))
        except Exception as exc:  # the pause holds here all the same
            log.warning("capacity.pause_not_sent endpoint=%s error=%r", endpoint, exc)

    def snapshot(self) -> dict[str, object]:
        now = self.clock()
        answered = self.grants_received
        return {"worker": self.worker, "asks": self.asks, "grants": answered,
                "ask_ms": {"mean": round(self.ask_seconds_total / answered * 1000, 1) if answered else None,
                           "max": round(self.ask_seconds_max * 1000, 1)},
                "leases": {k: {"window": v.window, "requests": v.requests, "tokens": v.tokens}
                           for k, v in sorted(self.leases.items())},
                "paused": {k: round(v - now, 3) for k, v in sorted(self.paused_until.items()) if v > now}}
