"""Usage views: the usage rows (`agents_tables.usage`) added up over a range of UTC days.

- `GET /agents/{agent_id}/usage?from=&to=&group_by=day|provider|model|user`: the agent's rows, answered
  by its owner (with the rate window and cache fields of `views.usage`, and its budget).
- `GET /usage?from=&to=&group_by=agent|provider|model`: every agent's, cluster-wide. The worker asked
  gathers each worker's part (each owns its partitions' agents; `scope=local` asks one worker for its
  own) and says `partial: true`, with the partitions it could not count, when a worker did not answer,
  was not ready (recovering its tables, rebalancing) or some partitions had no owner.

`from` and `to` are dates (YYYY-MM-DD, UTC, both included; default today), at most 366 days apart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Iterable

import faust
from faust.web import Request, Response

from agents_tables.usage import Entry, group, money, total
from gateway_app.contract.events import AgentProfile
from gateway_app.pipeline.stage import Services
from gateway_app.web import cluster

log = logging.getLogger(__name__)
MAX_DAYS = 366
AGENT_GROUPS = ("day", "provider", "model", "user")
CLUSTER_GROUPS = ("agent", "provider", "model")


class BadQuery(ValueError):
    pass


@dataclass(frozen=True)
class Query:
    first: str
    last: str
    group_by: str

    @classmethod
    def of(cls, params: Any, groups: tuple[str, ...], default_group: str) -> "Query":
        today = datetime.now(timezone.utc).date().isoformat()
        try:
            first = date.fromisoformat(params.get("from") or today)
            last = date.fromisoformat(params.get("to") or params.get("from") or today)
        except ValueError as exc:
            raise BadQuery(f"from and to are dates (YYYY-MM-DD): {exc}") from None
        if last < first:
            raise BadQuery("to is before from")
        if (last - first).days >= MAX_DAYS:
            raise BadQuery(f"at most {MAX_DAYS} days at a time")
        group_by = params.get("group_by") or default_group
        if group_by not in groups:
            raise BadQuery(f"group_by is one of {', '.join(groups)}")
        return cls(first.isoformat(), last.isoformat(), group_by)

    def as_json(self) -> dict[str, str]:
        return {"from": self.first, "to": self.last, "group_by": self.group_by}


def grouped(entries: Iterable[Entry], query: Query) -> dict[str, Any]:
    rows = group(entries, query.group_by)
    return {**query.as_json(), "rows": rows, "totals": total(rows)}


def agent_usage(services: Services, agent_id: str, query: Query) -> dict[str, Any]:
    store = services.stores.usage
    entries = store.user_entries(agent_id, query.first, query.last) if query.group_by == "user" \
        else store.agent_entries(agent_id, query.first, query.last)
    return grouped(entries, query)


def budget_state(services: Services, profile: AgentProfile) -> dict[str, Any] | None:
    spec = profile.budget
    if spec is None:
        return None
    today = datetime.now(timezone.utc).date().isoformat()
    reserved, in_flight = services.budgets.in_flight(profile.agent_id)
    store = services.stores.usage
    return {"usd_per_day": None if spec.usd_per_day is None else str(spec.usd_per_day),
            "usd_per_month": None if spec.usd_per_month is None else str(spec.usd_per_month),
            "spent_today_usd": money(store.spent(profile.agent_id, today)),
            "spent_month_usd": money(store.spent_month(profile.agent_id, today)),
            "reserved_usd": money(reserved), "in_flight": in_flight,
            "fallback": None if spec.fallback is None else {"provider": spec.fallback.provider,
                                                           "model": spec.fallback.model}}


def owned_partitions(app: faust.App, topic: str) -> list[int]:
    """The partitions of `topic` this worker owns and has recovered (none while it recovers or rebalances)."""
    if app.rebalancing or not app.tables.recovery.completed.is_set():
        return []
    return sorted(tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic)


def merge(parts: list[dict[str, Any]], query: Query, partitions: int | None) -> dict[str, Any]:
    """The workers' parts as one answer; `partial` when a partition was counted by no worker (or twice)."""
    labels = {"agent": ("agent_id",), "provider": ("provider",), "model": ("provider", "model")}[query.group_by]
    entries, covered, twice = [], set(), set()
    for part in parts:
        owned = set(part.get("partitions", ()))
        twice |= covered & owned
        covered |= owned
        for row in part.get("rows", ()):
            entries.append(row)
    rows = sum_rows(entries, labels)
    missing = sorted(set(range(partitions or 0)) - covered)
    return {**query.as_json(), "rows": rows, "totals": total(rows), "partial": bool(missing or twice or not partitions),
            "missing_partitions": missing, "partitions_counted_twice": sorted(twice),
            "workers": [{"url": p["url"], "ok": p["ok"], "partitions": p.get("partitions", [])} for p in parts]}


def sum_rows(rows: list[dict[str, Any]], labels: tuple[str, ...]) -> list[dict[str, Any]]:
    """Grouped rows of several workers with the same labels added up."""
    by_labels: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        by_labels.setdefault(tuple(row.get(name) for name in labels), []).append(row)
    merged = [{**dict(zip(labels, key)), **total(same)} for key, same in by_labels.items()]
    return sorted(merged, key=lambda row: tuple(row.get(name) or "" for name in labels))


def register(app: faust.App, guarded: type, services: Services, topic: str) -> None:
    def error(view, status: int, code: str, message: str) -> Response:
        return view.json({"error": {"code": code, "message": message}}, status=status)

    def local_part(query: Query) -> dict[str, Any]:
        partitions = owned_partitions(app, topic)
        rows = grouped(services.stores.usage.local_entries(query.first, query.last), query)["rows"] \
            if partitions else []
        return {"partitions": partitions, "rows": rows}

    @app.page("/usage")
    class ClusterUsageView(guarded):
        async def get(self, request: Request) -> Response:
            try:
                query = Query.of(request.query, CLUSTER_GROUPS, "agent")
            except BadQuery as exc:
                return error(self, 400, "invalid_query", str(exc))
            if request.query.get("scope") == "local":
                return self.json(local_part(query))
            parts = await cluster.gather(app, request, "/usage", query.as_json(), local_part(query))
            # The internal topic and the tables have GATEWAY_TOPIC_PARTITIONS partitions (the gateway makes them).
            return self.json(merge(parts, query, services.settings.topic_partitions))
