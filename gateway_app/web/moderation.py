"""`GET /agents/{agent_id}/rooms/{room_id}/moderation`: the signals active for the agent in the room
(expired ones are not shown: they no longer act, whether or not the sweep removed them yet), and how many
recent replies the repetition check keeps. Answered by the agent's owner."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import faust
from faust.web import Request, Response

from gateway_app.pipeline.stage import Services
from gateway_app.web.routing import routed


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds")


def register(app: faust.App, guarded: type, services: Services, topic: str) -> None:
    @app.page("/agents/{agent_id}/rooms/{room_id}/moderation")
    class RoomModerationView(guarded):
        async def get(self, request: Request, agent_id: str, room_id: str) -> Response:
            async def local() -> Response:
                now_ms = int(time.time() * 1000)
                row = services.stores.moderation.get(agent_id, room_id)
                signals = row.active(now_ms) if row else ()
                return self.json({
                    "agent_id": agent_id, "room_id": room_id,
                    "signals": [{"signal_id": s.signal_id, "signal": s.kind.value, "severity": s.severity.value,
                                 "score": s.score, "categories": list(s.categories), "applied_at": iso(s.applied_ms),
                                 "expires_at": iso(s.expires_ms)} for s in signals],
                    "recent_replies": len(row.replies) if row else 0,
                })

            return await routed(self, request, topic, agent_id, local)
