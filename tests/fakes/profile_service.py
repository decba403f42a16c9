"""A profile service, as the gateway's profile sync over HTTP expects one: `GET /agents/{agent_id}` answers
the profile it holds for the agent (200, the JSON as given: camelCase or snake_case), or 404.

With a `token`, a request without `Authorization: Bearer <token>` gets 401. Every request is kept (the
agent id as the server decoded it, and the Authorization header) so a test can say what was asked and
with which credentials. Run it with `tests.fakes.base.ServerThread(fake.app)`.
"""

from __future__ import annotations

import threading
from typing import Any

from aiohttp import web


class FakeProfileService:
    def __init__(self, token: str | None = None) -> None:
        self.token = token
        self.profiles: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str | None]] = []  # (agent id, Authorization header)
        self._lock = threading.Lock()  # the server runs in its own thread; tests read from theirs
        self.app = web.Application()
        self.app.router.add_get("/agents/{agent_id}", self.agent)

    async def agent(self, request: web.Request) -> web.Response:
        agent_id = request.match_info["agent_id"]
        authorization = request.headers.get("Authorization")
        with self._lock:
            self.requests.append((agent_id, authorization))
            profile = self.profiles.get(agent_id)
        if self.token is not None and authorization != f"Bearer {self.token}":
            return web.json_response({"error": "unauthorized"}, status=401)
        if profile is None:
            return web.json_response({"error": f"no agent {agent_id}"}, status=404)
        return web.json_response(profile)

    def put(self, profile: dict[str, Any]) -> None:
        """Hold this profile for its agent (`agentId` or `agent_id`)."""
        with self._lock:
            self.profiles[profile.get("agentId") or profile["agent_id"]] = profile

    def asked(self) -> list[tuple[str, str | None]]:
        with self._lock:
            return list(self.requests)
