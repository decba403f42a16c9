"""`azure`: Azure OpenAI. The profile's `model` names the deployment.

`AZURE_OPENAI_API_KEY` and `AZURE_OPENAI_ENDPOINT` (required), `OPENAI_API_VERSION` (the SDK's variable;
default below): requests go to `{endpoint}/openai/deployments/{model}/chat/completions?api-version=...`.
"""

from __future__ import annotations

import os

import openai

from gateway_app.providers import openai_compat
from gateway_app.providers.base import ChatRequest, ProviderNotConfigured

DEFAULT_API_VERSION = "2024-10-21"  # the current GA data-plane version


class AzureOpenAIProvider(openai_compat.CompatibleProvider):
    name = "azure"

    def endpoint(self, request: ChatRequest) -> str:
        endpoint = os.environ.get("AZURE_OPENAI_ENDPOINT")
        if not endpoint:
            raise ProviderNotConfigured("AZURE_OPENAI_ENDPOINT is not set")
        return f"{endpoint.rstrip('/')}/openai/deployments/{request.model}"

    async def _client(self, request: ChatRequest) -> openai.AsyncAzureOpenAI:
        key = os.environ.get("AZURE_OPENAI_API_KEY")
        if not key:
            raise ProviderNotConfigured("AZURE_OPENAI_API_KEY is not set")
        endpoint = self.endpoint(request).split("/openai/deployments/")[0]
        version = os.environ.get("OPENAI_API_VERSION") or DEFAULT_API_VERSION
        # One client per endpoint+key: the SDK puts the deployment (the request's model) into the path.
        return await self._clients.get((endpoint, key, version), lambda: openai.AsyncAzureOpenAI(
            api_key=key, azure_endpoint=endpoint, api_version=version, max_retries=0, timeout=self.timeout))
