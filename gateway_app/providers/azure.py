"""`azure`: Azure OpenAI. The profile's `model` names the deployment.

`AZURE_OPENAI_API_KEY` and `AZURE_OPENAI_ENDPOINT` (required), `OPENAI_API_VERSION` (the SDK's variable;
default below): requests go to `{endpoint}/openai/deployments/{model}/chat/completions?api-version=...`.
"""

from __future__ import annotations

from typing import Mapping

import openai

from gateway_app.providers import openai_compat
from gateway_app.providers.base import ChatRequest
from gateway_app.providers.clients import ClientConfig, sdk_http_client

DEFAULT_API_VERSION = "2024-10-21"  # the current GA data-plane version


class AzureOpenAIProvider(openai_compat.CompatibleProvider):
    name = "azure"
    missing_key = "AZURE_OPENAI_API_KEY is not set"
    missing_endpoint = "AZURE_OPENAI_ENDPOINT is not set"

    def read_config(self, environ: Mapping[str, str]) -> ClientConfig:
        endpoint = (environ.get("AZURE_OPENAI_ENDPOINT") or "").rstrip("/")
        return ClientConfig.of(endpoint, environ.get("AZURE_OPENAI_API_KEY"),
                               api_version=environ.get("OPENAI_API_VERSION") or DEFAULT_API_VERSION)

    def endpoint(self, request: ChatRequest) -> str:
        # Per request: the deployment (the request's model) is part of the path, not of the client.
        return f"{super().endpoint(request)}/openai/deployments/{request.model}"

    def build_client(self, config: ClientConfig) -> openai.AsyncAzureOpenAI:
        # One client per endpoint+key: the SDK puts the deployment (the request's model) into the path.
        return openai.AsyncAzureOpenAI(api_key=config.secret(), azure_endpoint=config.endpoint,
                                       api_version=config.setting("api_version"), max_retries=0, timeout=self.timeout,
                                       http_client=sdk_http_client(openai, self.http_transport, timeout=self.timeout))
