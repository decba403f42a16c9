"""Web views. Any worker answers; per-agent views are forwarded to the worker that owns the agent
(see web.routing). Every view is guarded (see web.auth): `read` unless it declares otherwise; only
`/health` and `/ready` are open, and they show no token, key or profile."""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, ClassVar

import faust
from faust.web import Request, Response, View

from agents_tables import windows
from gateway_app.contract.events import AgentProfile
from gateway_app.observability import metrics
from gateway_app.pipeline.dispatcher import Dispatcher
from gateway_app.pipeline.stage import Services
from gateway_app.settings import Settings
from gateway_app.topics import GatewayTopics
from gateway_app.web import auth, conversations, dashboard, moderation, stream
from gateway_app.web import usage as usage_views
from gateway_app.web.auth import Access
from gateway_app.web.routing import routed

log = logging.getLogger(__name__)


def _error(view: View, status: int, code: str, message: str) -> Response:
    return view.json({"error": {"code": code, "message": message}}, status=status)


def readiness(app: faust.App, warmed: bool = True) -> dict[str, Any]:
    """Ready once it has joined the group, recovered its tables, warmed up (moderation lists, provider
    SDKs) and is not rebalancing. A worker can be ready with no partitions: the group has more workers
    than the assignor gives partitions to."""
    assigned = len(app.consumer.assignment()) if app.consumer else 0
    recovered = app.tables.recovery.completed.is_set()
    joined = app.consumer_generation_id > 0
    return {
        "ready": joined and recovered and warmed and not app.rebalancing,
        "joined": joined,
        "assigned_partitions": assigned,
        "tables_recovered": recovered,
        "rebalancing": bool(app.rebalancing),
        "warmed_up": warmed,
    }


def usage(services: Services, dispatcher: Dispatcher, profile: AgentProfile) -> dict[str, Any]:
    """The agent's current rate window against its limits, and how many of its messages wait."""
    window_ms = int(services.settings.rate_window_seconds * 1000)
    limits = windows.Limits.of(profile.rate_limits)
    win = windows.current(services.stores.windows.get(profile.agent_id), int(time.time() * 1000), window_ms)
    return {
        "agent_id": profile.agent_id,
        "window": {"start_ms": win.start_ms, "length_ms": window_ms},
        "tracked": limits.any,  # windows are counted only for agents with a limit (billing counts them all)
        "requests": win.requests if limits.any else None,
        "tokens": win.tokens if limits.any else None,
        "limits": {"rpm": limits.rpm, "tpm": limits.tpm},
        "backlog": dispatcher.backlog(profile.agent_id),
        "cache": services.stores.cache.stats(profile.agent_id).as_json() if profile.cache else None,
    }


def cache_summary(counters: dict[str, int]) -> dict[str, Any]:
    """This worker's response cache since it started (per agent: `/agents/{id}/usage`)."""
    hits, misses = counters.get("cache_hits", 0), counters.get("cache_misses", 0)
    return {"hits": hits, "misses": misses, "hit_ratio": round(hits / (hits + misses), 4) if hits + misses else None,
            "saved_cost_usd": f"{counters.get('cache_saved_microusd', 0) / 1_000_000:.6f}"}


def check(policy: auth.Policy, declared: Access, request: Request) -> auth.Denied | None:
    required = auth.required_access(declared, request.method)
    return policy.check(required, request.headers.get("Authorization"), getattr(request, "remote", None))


def register(app: faust.App, settings: Settings, topics: GatewayTopics, services: Services, dispatcher: Dispatcher):
    policy = auth.policy_for(settings)  # raises StartupRefused: a network-facing worker without tokens

    @app.task
    async def announce_web_auth() -> None:  # at every start, once logging is set up
        message = auth.startup_message(settings, policy.mode)
        if message is not None:
            getattr(log, message[0])(message[1])

    class Guarded(View):
        """A view that checks its caller first. `access`: what a GET needs (state changes need admin)."""

        access: ClassVar[Access] = Access.READ

        async def dispatch(self, request: Any) -> Any:
            denied = check(policy, self.access, request)
            if denied is not None:
                log.info("web.denied status=%d code=%s method=%s path=%s", denied.status, denied.code,
                         request.method, request.path)
                return self.json(denied.body, status=denied.status, headers=dict(denied.headers))
            return await super().dispatch(request)

    @app.page("/health")
    class Health(Guarded):
        access = Access.OPEN

        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok", "pending_messages": len(dispatcher.in_progress),
                              "counters": services.counters, "cache": cache_summary(services.counters),
                              "stages": dispatcher.pipeline.stage_names,
                              "plugins": services.plugins.as_list(),
                              "delivery": app.consumer.delivery_counts(),
                              "restore": app.tables.recovery.restore_stats()})

    @app.page("/ready")
    class Ready(Guarded):
        access = Access.OPEN

        async def get(self, request: Request) -> Response:
            state = readiness(app, services.warmed.is_set())
            return self.json(state, status=200 if state["ready"] else 503)

    @app.page("/providers")
    class ProvidersView(Guarded):
        """This worker's provider endpoints: circuit breaker, 429 pause, caps. Each worker has its own; with
        cluster-wide caps, also this worker's leases and the pauses announced to it (`leases`)."""

        async def get(self, request: Request) -> Response:
            leases = services.caller.leases
            return self.json({"endpoints": services.caller.endpoints.snapshot(time.monotonic()),
                              "leases": None if leases is None else leases.snapshot()})

    @app.page("/metrics")
    class MetricsView(Guarded):
        """This worker's Prometheus metrics (`read`: scrapers send a bearer token). Each worker serves its own."""

        async def get(self, request: Request) -> Response:
            return await metrics.serve(self, request, app, services, dispatcher)

    topic = topics.agent_events.get_topic_name()

    def profile_or_404(view: View, agent_id: str, render: Callable[[AgentProfile], Any]) -> Response:
        profile = services.stores.profiles.live(agent_id)
        if profile is None:
            return _error(view, 404, "agent_not_found", f"no profile for agent {agent_id!r}")
        return view.json(render(profile))

    @app.page("/agents/{agent_id}")
    class AgentProfileView(Guarded):
        async def get(self, request: Request, agent_id: str) -> Response:
            async def local() -> Response:
                return profile_or_404(self, agent_id, lambda profile: profile.model_dump(mode="json"))

            return await routed(self, request, topic, agent_id, local)

    @app.page("/agents/{agent_id}/usage")
    class AgentUsageView(Guarded):
        async def get(self, request: Request, agent_id: str) -> Response:
            try:  # ?from=&to=&group_by=: the usage rows (web.usage)
                query = usage_views.Query.of(request.query, usage_views.AGENT_GROUPS, "day")
            except usage_views.BadQuery as exc:
                return _error(self, 400, "invalid_query", str(exc))

            async def local() -> Response:
                return profile_or_404(self, agent_id, lambda profile: {
                    **usage(services, dispatcher, profile), "budget": usage_views.budget_state(services, profile),
                    **usage_views.agent_usage(services, agent_id, query)})

            return await routed(self, request, topic, agent_id, local)

    conversations.register(app, Guarded, services, topic)
    moderation.register(app, Guarded, services, topic)
    usage_views.register(app, Guarded, services, topic)  # GET /usage (cluster-wide)
    stream.register(app, settings, Guarded)  # GET /rooms/{room_id}/stream (Server-Sent Events)
    dashboard.register(app, Guarded, services, dispatcher, topic)  # GET /dashboard, /dashboard/data
