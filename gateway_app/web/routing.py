"""Send a per-agent request to the worker that owns the agent's partition of `gateway-agent-events`.

Written here rather than with faust's `topic_route`: that one hashes with the *producer's* metadata,
which does not know a topic the worker has not produced to yet (500 on a fresh worker), and
`table_route` hashes a JSON-encoded key (faust #514). We hash the raw agent id with the consumer's
metadata, exactly as the intake's producer partitioned it (murmur2).

A forwarded request carries the caller's `Authorization` header: the owner checks it again (web.auth),
and a refusal of the owner (e.g. a token not yet configured there) reaches the caller as it is.
"""

from __future__ import annotations

from typing import Awaitable, Callable, Mapping

import faust
from faust.web import Request, Response, View
from yarl import URL

LocalHandler = Callable[[], Awaitable[Response]]

FORWARDED_HEADERS = ("Authorization",)
RETURNED_HEADERS = ("WWW-Authenticate",)


def forwarded_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The caller's headers that go with a request forwarded to the owner."""
    return {name: headers[name] for name in FORWARDED_HEADERS if name in headers}


def owner_url(app: faust.App, topic: str, key: bytes) -> str | None:
    partition = app.consumer.key_partition(topic, key)
    if partition is None:
        return None
    for url, topics in app.assignor.external_topic_distribution.items():
        if partition in topics.get(topic, ()):
            return url
    return None


def _same_node(app: faust.App, url: str) -> bool:
    ours, theirs = URL(str(app.conf.canonical_url)), URL(url)
    return (ours.host, ours.port) == (theirs.host, theirs.port)


async def routed(view: View, request: Request, topic: str, key: str, local: LocalHandler) -> Response:
    app = view.app
    url = owner_url(app, topic, key.encode())
    if url is None:
        return view.json({"error": {"code": "not_ready", "message": "partition owner unknown"}}, status=503)
    if _same_node(app, url):
        return await local()
    target = request.url.with_host(URL(url).host).with_port(URL(url).port)
    async with app.http_client.get(target, headers=forwarded_headers(request.headers)) as response:
        body = await response.read()
        back = {name: response.headers[name] for name in RETURNED_HEADERS if name in response.headers}
        return view.bytes(body, content_type=response.content_type, status=response.status, headers=back)
