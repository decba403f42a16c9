"""`openai`: OpenAI Chat Completions.

`OPENAI_API_KEY` (required), `OPENAI_BASE_URL` and `OPENAI_ORG_ID` (optional): the SDK's own variables.
"""

from __future__ import annotations

import os

import openai

from gateway_app.providers import openai_compat
from gateway_app.providers.base import ChatRequest, ProviderNotConfigured

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAIProvider(openai_compat.CompatibleProvider):
    name = "openai"

    def endpoint(self, request: ChatRequest) -> str:
        return os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL

    async def _client(self, request: ChatRequest) -> openai.AsyncOpenAI:
        key = os.environ.get("OPENAI_API_KEY")
        if not key:
            raise ProviderNotConfigured("OPENAI_API_KEY is not set")
        base_url, organization = self.endpoint(request), os.environ.get("OPENAI_ORG_ID") or None
        return await self._clients.get((base_url, key, organization), lambda: openai.AsyncOpenAI(
            api_key=key, base_url=base_url, organization=organization, max_retries=0, timeout=self.timeout))
