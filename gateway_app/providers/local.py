"""`local`: any OpenAI-compatible server (vLLM, Ollama, LM Studio, llama.cpp server).

`LOCAL_LLM_BASE_URL` (e.g. `http://127.0.0.1:11434/v1`), `LOCAL_LLM_API_KEY` (optional: most local
servers ignore it). A profile may point one agent at another server with `options.base_url`, but only
to an entry of `LOCAL_LLM_ALLOWED_HOSTS` (comma-separated `host` = any port, or `host:port`): a profile
must not be able to make the gateway call arbitrary addresses.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Mapping
from urllib.parse import urlsplit

import openai

from gateway_app.providers import openai_compat
from gateway_app.providers.base import ChatRequest, ProviderNotConfigured
from gateway_app.providers.clients import ClientConfig

PLACEHOLDER_KEY = "not-needed"  # the SDK insists on a key; local servers accept any


def allowed_hosts(environ: Mapping[str, str] = os.environ) -> frozenset[str]:
    raw = environ.get("LOCAL_LLM_ALLOWED_HOSTS", "")
    return frozenset(h.strip().lower() for h in raw.split(",") if h.strip())


def resolve_base_url(configured: str | None, override: str | None, allowed: frozenset[str]) -> str:
    """The base URL this request may use: the configured one, or an override to an allowed host."""
    if override:
        parts = urlsplit(override)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ProviderNotConfigured(f"options.base_url {override!r} is not an http(s) URL")
        host = parts.hostname.lower()
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if host not in allowed and f"{host}:{port}" not in allowed:
            raise ProviderNotConfigured(
                f"options.base_url {host}:{port} is not in LOCAL_LLM_ALLOWED_HOSTS")
        return override
    if not configured:
        raise ProviderNotConfigured("LOCAL_LLM_BASE_URL is not set")
    return configured


class LocalProvider(openai_compat.CompatibleProvider):
    name = "local"
    usage_required = False  # some local servers do not report usage; their calls are billed 0 tokens
    missing_endpoint = "LOCAL_LLM_BASE_URL is not set"

    def __init__(self, timeout: float = 60.0) -> None:
        super().__init__(timeout)
        self.allowed_hosts = allowed_hosts()  # policy, not a client setting; read once all the same

    def read_config(self, environ: Mapping[str, str]) -> ClientConfig:
        return ClientConfig.of(environ.get("LOCAL_LLM_BASE_URL"), environ.get("LOCAL_LLM_API_KEY") or PLACEHOLDER_KEY)

    def config_for(self, request: ChatRequest) -> ClientConfig:
        """Per request: a profile's `options.base_url`, if its host is allowed; one client per server."""
        override = request.options.get("base_url")
        if not override:
            return self.config
        base_url = resolve_base_url(self.config.endpoint, override, self.allowed_hosts)
        return dataclasses.replace(self.config, endpoint=base_url)

    def build_client(self, config: ClientConfig) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(api_key=config.secret(), base_url=config.endpoint, max_retries=0,
                                  timeout=self.timeout)
