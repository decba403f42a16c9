"""Web views. Per-agent views are routed to the worker that owns the agent's partition of
`gateway-agent-events` (topic_route hashes the raw key exactly as the intake's producer did; the
`table_route` decorator would hash a JSON-encoded key and pick the wrong worker: faust #514)."""

from __future__ import annotations

from typing import Any

import faust
from faust.web import Request, Response, View

from agents_tables import profiles as profile_rows
from agents_tables.tables import GatewayTables
from gateway_app.flow.processor import MessageFlow
from gateway_app.settings import Settings
from gateway_app.topics import GatewayTopics


def _error(view: View, status: int, code: str, message: str) -> Response:
    return view.json({"error": {"code": code, "message": message}}, status=status)


def readiness(app: faust.App) -> dict[str, Any]:
    assigned = len(app.consumer.assignment()) if app.consumer else 0
    recovered = app.tables.recovery.completed.is_set()
    return {
        "ready": bool(assigned) and recovered and not app.rebalancing,
        "assigned_partitions": assigned,
        "tables_recovered": recovered,
        "rebalancing": bool(app.rebalancing),
    }


def register(app: faust.App, settings: Settings, topics: GatewayTopics, tables: GatewayTables, flow: MessageFlow):
    @app.page("/health")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    @app.page("/ready")
    class Ready(View):
        async def get(self, request: Request) -> Response:
            state = readiness(app)
            return self.json(state, status=200 if state["ready"] else 503)

    @app.page("/agents/{agent_id}")
    class AgentProfileView(View):
        @app.topic_route(topic=topics.agent_events, match_info="agent_id")
        async def get(self, request: Request, agent_id: str) -> Response:
            profile = profile_rows.live(tables.profiles.get(agent_id))
            if profile is None:
                return _error(self, 404, "agent_not_found", f"no profile for agent {agent_id!r}")
            return self.json(profile)

    @app.page("/agents/{agent_id}/usage")
    class AgentUsageView(View):
        @app.topic_route(topic=topics.agent_events, match_info="agent_id")
        async def get(self, request: Request, agent_id: str) -> Response:
            profile = profile_rows.live(tables.profiles.get(agent_id))
            if profile is None:
                return _error(self, 404, "agent_not_found", f"no profile for agent {agent_id!r}")
            return self.json(flow.usage(agent_id, profile))
