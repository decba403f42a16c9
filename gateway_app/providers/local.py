"""`local`: any OpenAI-compatible server (vLLM, Ollama, LM Studio, llama.cpp server).

`LOCAL_LLM_BASE_URL` (e.g. `http://127.0.0.1:11434/v1`), `LOCAL_LLM_API_KEY` (optional: most local
servers ignore it). A profile may point one agent at another server with `options.base_url`, but only
to an entry of `LOCAL_LLM_ALLOWED_HOSTS` (comma-separated `host` = any port, or `host:port`): a profile
must not be able to make the gateway call arbitrary addresses.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import openai

from gateway_app.providers import openai_compat
from gateway_app.providers.base import ChatRequest, ProviderNotConfigured

PLACEHOLDER_KEY = "not-needed"  # the SDK insists on a key; local servers accept any


def allowed_hosts() -> frozenset[str]:
    raw = os.environ.get("LOCAL_LLM_ALLOWED_HOSTS", "")
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

    def endpoint(self, request: ChatRequest) -> str:
        return resolve_base_url(os.environ.get("LOCAL_LLM_BASE_URL"), request.options.get("base_url"),
                                allowed_hosts())

    async def _client(self, request: ChatRequest) -> openai.AsyncOpenAI:
        base_url = self.endpoint(request)
        key = os.environ.get("LOCAL_LLM_API_KEY") or PLACEHOLDER_KEY
        return await self._clients.get((base_url, key), lambda: openai.AsyncOpenAI(
            api_key=key, base_url=base_url, max_retries=0, timeout=self.timeout))
