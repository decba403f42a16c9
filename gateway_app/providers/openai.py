"""`openai`: OpenAI Chat Completions.

`OPENAI_API_KEY` (required), `OPENAI_BASE_URL` and `OPENAI_ORG_ID` (optional): the SDK's own variables.
"""

from __future__ import annotations

import os
from typing import AsyncIterator

import openai

from gateway_app.providers import openai_compat
from gateway_app.providers.base import ChatRequest, ChatResult, ProviderNotConfigured, StreamEvent

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAIProvider:
    name = "openai"

    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self._clients = openai_compat.client_cache()

    def endpoint(self, request: ChatRequest) -> str:
        return os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL

    def _client(self, request: ChatRequest) -> openai.AsyncOpenAI:
        key = os.environ.get("OPENAI_API_KEY")
        if not key:
            raise ProviderNotConfigured("OPENAI_API_KEY is not set")
        base_url, organization = self.endpoint(request), os.environ.get("OPENAI_ORG_ID") or None
        return self._clients.get((base_url, key, organization), lambda: openai.AsyncOpenAI(
            api_key=key, base_url=base_url, organization=organization, max_retries=0, timeout=self.timeout))

    async def complete(self, request: ChatRequest) -> ChatResult:
        return await openai_compat.complete(self._client(request), request)

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        return openai_compat.stream(self._client(request), request)

    async def aclose(self) -> None:
        await self._clients.aclose()
