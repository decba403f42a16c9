"""Views that answer for the whole cluster ask every other worker for its own part (`scope=local`) and
put the parts together. Each worker knows the others' web addresses from the consumer group's
assignment (the address every worker announces, `GATEWAY_WEB_HOST` and port), so a worker that has not
joined the group yet is not asked.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Mapping

import aiohttp
import faust
from faust.web import Request
from yarl import URL

from gateway_app.web.routing import forwarded_headers

log = logging.getLogger(__name__)
ASK_SECONDS = 5.0  # how long the worker asked waits for each other worker's part


def same_node(app: faust.App, url: str) -> bool:
    ours, theirs = URL(str(app.conf.canonical_url)), URL(url)
    return (ours.host, ours.port) == (theirs.host, theirs.port)


def other_workers(app: faust.App) -> list[str]:
    return [url for url in app.assignor.external_topic_distribution if not same_node(app, url)]


async def ask(app: faust.App, url: str, request: Request, path: str, query: Mapping[str, str]) -> dict[str, Any]:
    """One worker's local part of `path`: its JSON with `url` and `ok: true`, or `ok: false` when it did
    not answer in time or refused (logged)."""
    target = URL(url).with_path(path).with_query({**query, "scope": "local"})
    try:
        async with asyncio.timeout(ASK_SECONDS):
            async with app.http_client.get(target, headers=forwarded_headers(request.headers)) as response:
                if response.status != 200:
                    log.warning("cluster.worker_refused path=%s url=%s status=%s", path, url, response.status)
                    return {"url": url, "ok": False}
                return {**await response.json(), "url": url, "ok": True}
    except (asyncio.TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
        log.warning("cluster.worker_unanswered path=%s url=%s error=%r", path, url, exc)
        return {"url": url, "ok": False}


async def gather(app: faust.App, request: Request, path: str, query: Mapping[str, str],
                 local: dict[str, Any]) -> list[dict[str, Any]]:
    """This worker's part (`local`, already computed) and every other worker's."""
    mine = {**local, "url": str(app.conf.canonical_url), "ok": True}
    others = await asyncio.gather(*(ask(app, url, request, path, query) for url in other_workers(app)))
    return [mine, *others]
