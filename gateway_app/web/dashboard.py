"""The live dashboard: `GET /dashboard` (the page), `GET /dashboard/static/{name}` (its script, style and
the vendored chart library) and `GET /dashboard/data` (the figures, cluster-wide, as JSON).

Any worker serves it. `/dashboard/data` asks every other worker for its metric samples and today's
usage per agent (`scope=local`), adds them up (`observability.dashboard`) and answers with rates over the
last `WINDOW_SECONDS`; `partial: true` when a worker did not answer. The page polls it every two seconds
(no reload, no build step: plain files under `web/static/`).

Access: the page and its static files are `open` (they hold no figure); the data is `read`, like every
other view. Behind tokens, the page asks for a read token once and sends it as a bearer token (kept in
the tab's session storage only).
"""

from __future__ import annotations

from datetime import datetime, timezone
from importlib import resources
from typing import Any

import faust
from faust.web import Request, Response

from agents_tables.usage import group
from gateway_app.observability import dashboard as figures
from gateway_app.observability.metrics import WorkerState
from gateway_app.pipeline.stage import Services
from gateway_app.web import cluster
from gateway_app.web.auth import Access
from gateway_app.web.usage import owned_partitions, sum_rows

STATIC = resources.files("gateway_app.web") / "static"
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8"}
# What `/dashboard/static/{name}` serves: these names only (no path is ever built from the request).
ASSETS = ("dashboard.js", "dashboard.css", "uPlot.iife.min.js", "uPlot.min.css")
PAGE_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"}


def asset(name: str) -> tuple[bytes, str]:
    path = STATIC / name
    return path.read_bytes(), CONTENT_TYPES[name[name.rindex("."):]]


def register(app: faust.App, guarded: type, services: Services, dispatcher: Any, topic: str) -> None:
    history = figures.History()

    def local_part() -> dict[str, Any]:
        services.metrics.watch(WorkerState.of(app, services, dispatcher))
        today = datetime.now(timezone.utc).date().isoformat()
        partitions = owned_partitions(app, topic)
        entries = services.stores.usage.local_entries(today, today) if partitions else ()
        return {"samples": figures.local_samples(services.metrics.registry), "partitions": partitions,
                "agents": group(entries, "agent")}

    def cluster_figures(parts: list[dict[str, Any]]) -> dict[str, Any]:
        window = history.add({part["url"]: figures.samples_of(part.get("samples", ())) for part in parts if part["ok"]})
        agents = sum_rows([row for part in parts for row in part.get("agents", ())], ("agent_id",))
        covered = {p for part in parts for p in part.get("partitions", ())}
        missing = sorted(set(range(services.settings.topic_partitions)) - covered)
        return {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "partial": bool(missing) or not all(part["ok"] for part in parts),
                "missing_partitions": missing,
                "workers": [{"url": part["url"], "ok": part["ok"], "partitions": part.get("partitions", [])}
                            for part in parts],
                **figures.summarize(window, agents)}

    @app.page("/dashboard")
    class DashboardPage(guarded):
        access = Access.OPEN

        async def get(self, request: Request) -> Response:
            body, content_type = asset("dashboard.html")
            return self.bytes(body, content_type=content_type.split(";")[0], headers=PAGE_HEADERS)

    @app.page("/dashboard/static/{name}")
    class DashboardAsset(guarded):
        access = Access.OPEN

        async def get(self, request: Request, name: str) -> Response:
            if name not in ASSETS:
                return self.json({"error": {"code": "not_found", "message": "no such file"}}, status=404)
            body, content_type = asset(name)
            return self.bytes(body, content_type=content_type.split(";")[0],
                              headers={"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"})

    @app.page("/dashboard/data")
    class DashboardData(guarded):
        async def get(self, request: Request) -> Response:
            if request.query.get("scope") == "local":
                return self.json(local_part())
            parts = await cluster.gather(app, request, "/dashboard/data", {}, local_part())
            return self.json(cluster_figures(parts))
