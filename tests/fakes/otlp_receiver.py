"""A local OpenTelemetry collector's trace receiver: OTLP over HTTP/protobuf (`POST /v1/traces`,
`application/x-protobuf`, optionally gzip-compressed), decoded with `opentelemetry-proto`'s
`ExportTraceServiceRequest`. Every span it receives is kept as a `ReceivedSpan` (ids in hex, attributes
and its resource's attributes as plain Python values). Run it with `tests.fakes.base.ServerThread`;
point a worker at it with `OTEL_EXPORTER_OTLP_ENDPOINT=<its url>`.

Anything else than an `application/x-protobuf` POST is answered 415, a body that does not decode 400,
as a collector does.
"""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

SPAN_KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


@dataclass(frozen=True)
class ReceivedSpan:
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str  # INTERNAL | SERVER | CLIENT | PRODUCER | CONSUMER
    attributes: dict[str, Any]
    resource: dict[str, Any] = field(repr=False)
    status_code: int = 0  # 0 unset, 1 ok, 2 error
    start_ns: int = 0


def value_of(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(value_of(v) for v in value.array_value.values)
    if kind == "kvlist_value":
        return {kv.key: value_of(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


def attributes_of(pairs) -> dict[str, Any]:
    return {kv.key: value_of(kv.value) for kv in pairs}


class OTLPReceiver:
    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.requests = 0
        self._lock = threading.Lock()
        self.app = web.Application()
        self.app.router.add_post("/v1/traces", self.traces)

    async def traces(self, request: web.Request) -> web.Response:
        if request.content_type != "application/x-protobuf":
            return web.Response(status=415, text="only application/x-protobuf")
        body = await request.read()
        if request.headers.get("Content-Encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        try:
            export = ExportTraceServiceRequest.FromString(body)
        except DecodeError:
            return web.Response(status=400, text="not an ExportTraceServiceRequest")
        received = []
        for resource_spans in export.resource_spans:
            resource = attributes_of(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(ReceivedSpan(
                        trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex() or None, name=span.name,
                        kind=SPAN_KINDS.get(span.kind, str(span.kind)), attributes=attributes_of(span.attributes),
                        resource=resource, status_code=span.status.code, start_ns=span.start_time_unix_nano))
        with self._lock:
            self.spans.extend(received)
            self.requests += 1
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        """The spans of one trace received so far, in start order."""
        with self._lock:
            return sorted((s for s in self.spans if s.trace_id == trace_id), key=lambda s: s.start_ns)
