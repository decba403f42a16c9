"""A local server speaking the Azure OpenAI data-plane API:
`POST /openai/deployments/{deployment}/chat/completions?api-version=...` with an `api-key` header, and the
speech endpoints `.../audio/transcriptions` and `.../audio/speech` under the deployment (as the OpenAI fake's).

Same Chat Completions bodies as OpenAI plus Azure's content-filter annotations
(`prompt_filter_results`, per-choice `content_filter_results`), a filter-only first stream chunk, and
`apim-request-id` / `x-ms-region` headers. The deployment name is echoed as the response's model.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from tests.fakes.base import sse_event
from tests.fakes.openai_server import FakeOpenAI

SAFE = {name: {"filtered": False, "severity": "safe"} for name in ("hate", "self_harm", "sexual", "violence")}


class FakeAzureOpenAI(FakeOpenAI):
    answer_prefix = "fake-azure says:"

    def __init__(self) -> None:
        super().__init__("azure")
        self.deployments: list[str] = []
        self.api_versions: list[str] = []
        self.app.router.add_post("/openai/deployments/{deployment}/chat/completions", self.deployment_chat)
        # The speech endpoints under the deployment (tests.fakes.openai_audio's bodies and answers).
        self.app.router.add_post("/openai/deployments/{deployment}/audio/transcriptions",
                                 self.deployment(self.audio.transcriptions))
        self.app.router.add_post("/openai/deployments/{deployment}/audio/speech", self.deployment(self.audio.speech))

    def deployment(self, handler):
        async def under_deployment(request: web.Request) -> web.StreamResponse:
            if not request.query.get("api-version"):
                return self.error(404, message="Resource not found")
            self.deployments.append(request.match_info["deployment"])
            return await handler(request)
        return under_deployment

    def authorized(self, request: web.Request) -> bool:
        return bool(request.headers.get("api-key"))

    def headers(self) -> dict[str, str]:
        return {"apim-request-id": str(uuid.uuid4()), "x-ms-region": "East US",
                "x-request-id": str(uuid.uuid4())}

    def error(self, status: int, retry_after: bool = True, message: str | None = None) -> web.Response:
        body = {"error": {"code": str(status), "message": message or f"injected fault {status}"}}
        headers = self.headers()
        if status == 429 and retry_after:
            headers.update({"retry-after": "1", "retry-after-ms": "1000"})
        return web.json_response(body, status=status, headers=headers)

    def extra_body(self) -> dict[str, Any]:
        return {"prompt_filter_results": [{"prompt_index": 0, "content_filter_results": SAFE}]}

    def extra_choice(self) -> dict[str, Any]:
        return {"content_filter_results": SAFE}

    async def deployment_chat(self, request: web.Request) -> web.StreamResponse:
        if not self.authorized(request):
            return self.error(401, message="Access denied due to invalid subscription key.")
        version = request.query.get("api-version")
        if not version:
            return self.error(404, message="Resource not found")
        body = await request.json()
        self.deployments.append(request.match_info["deployment"])
        self.api_versions.append(version)
        return await self.answer(request, {**body, "model": request.match_info["deployment"]})

    def chunks(self, completion_id: str, model: str, text: str, usage: dict[str, Any],
               include_usage: bool) -> list[bytes]:
        first = sse_event({"choices": [], "created": 0, "id": "", "model": "", "object": "",
                           "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": SAFE}]})
        return [first, *super().chunks(completion_id, model, text, usage, include_usage)]
