"""`openai`: OpenAI Chat Completions.

`OPENAI_API_KEY` (required), `OPENAI_BASE_URL` and `OPENAI_ORG_ID` (optional): the SDK's own variables.
"""

from __future__ import annotations

from typing import Mapping

import openai

from gateway_app.providers import openai_compat
from gateway_app.providers.clients import ClientConfig, sdk_http_client

DEFAULT_BASE_URL = "https://api.openai.com/v1"


class OpenAIProvider(openai_compat.CompatibleProvider):
    name = "openai"
    missing_key = "OPENAI_API_KEY is not set"

    def read_config(self, environ: Mapping[str, str]) -> ClientConfig:
        return ClientConfig.of(environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL, environ.get("OPENAI_API_KEY"),
                               organization=environ.get("OPENAI_ORG_ID"))

    def build_client(self, config: ClientConfig) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(api_key=config.secret(), base_url=config.endpoint,
                                  organization=config.setting("organization"), max_retries=0, timeout=self.timeout,
                                  http_client=sdk_http_client(openai, self.http_transport, timeout=self.timeout))
