"""`local`: any OpenAI-compatible server (vLLM, Ollama, LM Studio, llama.cpp server).

`LOCAL_LLM_BASE_URL` (e.g. `http://127.0.0.1:11434/v1`), `LOCAL_LLM_API_KEY` (optional: most local
servers ignore it). A profile may point one agent at another server with `options.base_url`, but only
to an entry of `LOCAL_LLM_ALLOWED_HOSTS` (comma-separated `host` = any port, or `host:port`): a profile
must not be able to make the gateway call arbitrary addresses (`ssrf.check_base_url`). A host that is
not allowed is refused without any DNS lookup; when it spells an internal address (in any spelling:
`127.1`, `0x7f000001`, `2852039166`, `[::ffff:169.254.169.254]`) the reason names the address class.

A request to a profile's base URL never carries `LOCAL_LLM_API_KEY` (the environment's key is for the
environment's server): it uses the placeholder key, and its client does not follow redirects.
"""

from __future__ import annotations

import os
from typing import Mapping

import openai

from gateway_app.providers import openai_compat, ssrf
from gateway_app.providers.base import ChatRequest, ProviderNotConfigured
from gateway_app.providers.clients import ClientConfig, sdk_http_client

PLACEHOLDER_KEY = "not-needed"  # the SDK insists on a key; local servers accept any
FROM_PROFILE = "profile"  # `ClientConfig` extra `base_url_from`: the endpoint came from a profile


def allowed_hosts(environ: Mapping[str, str] = os.environ) -> frozenset[str]:
    raw = environ.get("LOCAL_LLM_ALLOWED_HOSTS", "")
    return frozenset(h.strip().lower() for h in raw.split(",") if h.strip())


def resolve_base_url(configured: str | None, override: str | None, allowed: frozenset[str]) -> str:
    """The base URL this request may use: the configured one, or an override to an allowed host.

    No DNS lookup (this runs on the event loop): only an allow-listed host passes, and a host that is
    not is refused whatever it resolves to; `literal_only` decodes address literals for the reason.
    """
    if override:
        return ssrf.check_base_url(override, allowed, ssrf.literal_only,
                                   require_allow_list="LOCAL_LLM_ALLOWED_HOSTS")
    if not configured:
        raise ProviderNotConfigured("LOCAL_LLM_BASE_URL is not set")
    return configured


class LocalProvider(openai_compat.CompatibleProvider):
    name = "local"
    usage_required = False  # some local servers do not report usage; their calls are billed 0 tokens
    missing_endpoint = "LOCAL_LLM_BASE_URL is not set"

    def __init__(self, timeout: float = 60.0, http_transport: str = "aiohttp") -> None:
        super().__init__(timeout, http_transport)
        self.allowed_hosts = allowed_hosts()  # policy, not a client setting; read once all the same

    def read_config(self, environ: Mapping[str, str]) -> ClientConfig:
        return ClientConfig.of(environ.get("LOCAL_LLM_BASE_URL"), environ.get("LOCAL_LLM_API_KEY") or PLACEHOLDER_KEY)

    def config_for(self, request: ChatRequest) -> ClientConfig:
        """Per request: a profile's `options.base_url`, if its host is allowed; one client per server.

        Never with the environment's key: `LOCAL_LLM_API_KEY` goes only to `LOCAL_LLM_BASE_URL`; a profile
        URL gets the agent's own key (its credential reference) or the placeholder.
        """
        override = request.options.get("base_url")
        if not override:
            return super().config_for(request)
        base_url = resolve_base_url(self.config.endpoint, override, self.allowed_hosts)
        key = request.credential.get_secret_value() if request.credential is not None else PLACEHOLDER_KEY
        return ClientConfig.of(base_url, key, base_url_from=FROM_PROFILE)

    def build_client(self, config: ClientConfig) -> openai.AsyncOpenAI:
        options: dict[str, object] = {"timeout": self.timeout}
        if config.setting("base_url_from") == FROM_PROFILE:
            # The SDK's own clients follow redirects (its defaults set `follow_redirects=True`): a checked
            # URL could redirect anywhere. This one does not follow them (a 3xx answer is an error).
            options["follow_redirects"] = False
        http_client = sdk_http_client(openai, self.http_transport, **options)
        return openai.AsyncOpenAI(api_key=config.secret(), base_url=config.endpoint, max_retries=0,
                                  timeout=self.timeout, http_client=http_client)
