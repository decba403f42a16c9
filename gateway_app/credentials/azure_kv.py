"""`azure-kv:<vault>/<secret>[/<version>]`: Azure Key Vault, through the official `azure-keyvault-secrets` SDK.

The async `SecretClient` (`azure.keyvault.secrets.aio`), one per vault URL (and event loop), reused. It
performs the Key Vault authentication challenge itself (an unauthenticated request first, answered 401
with `WWW-Authenticate: Bearer authorization=..., resource=...`), then asks the credential for a token
of that scope and sends `GET /secrets/<name>[/<version>]`; it refuses bearer tokens over plain http.

Configuration (environment of the worker):

- `AZURE_KEYVAULT_URL_TEMPLATE`  vault URL for a vault name, default `https://{vault}.vault.azure.net`
                                 (e.g. `https://{vault}.vault.azure.cn`, or a local server
                                 `https://127.0.0.1:8443/{vault}`: a path prefix works, requests go to
                                 `<vault url>/secrets/...`);
- `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`, ... the usual `azure-identity` variables: the store uses
                                 `DefaultAzureCredential` (environment, workload identity, managed identity, CLI);
- `AZURE_KEYVAULT_CA_BUNDLE`     a PEM file of CA certificates to verify the vault's TLS certificate with
                                 (a private endpoint behind a private CA, a local server);
- `AZURE_KEYVAULT_STATIC_TOKEN`  FOR TESTS AND LOCAL SERVERS ONLY: a fixed bearer token used instead of
                                 `DefaultAzureCredential`; with it, the check that the challenge's resource
                                 matches the vault's domain is off (a local server is not `*.vault.azure.net`).

The store is active when `AZURE_KEYVAULT_URL_TEMPLATE`, `AZURE_CLIENT_ID` or `AZURE_TENANT_ID` is set;
otherwise `azure-kv:` references fail closed as "not configured" (`from_env` returns `NotConfigured`).

Every failure is `CredentialsUnavailable` naming the reference and the kind of error (not found,
authentication refused, HTTP status, unreachable), never a value and never the SDK's message text.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any, Callable, Mapping

from gateway_app.credentials.errors import CredentialsUnavailable
from gateway_app.credentials.refs import CredentialRef
from gateway_app.credentials.secret import Secret

DEFAULT_URL_TEMPLATE = "https://{vault}.vault.azure.net"
URL_TEMPLATE_ENV = "AZURE_KEYVAULT_URL_TEMPLATE"
CA_BUNDLE_ENV = "AZURE_KEYVAULT_CA_BUNDLE"
log = logging.getLogger(__name__)
# The name of a variable, not a token:
STATIC_TOKEN_ENV = "AZURE_KEYVAULT_STATIC_TOKEN"  # nosec B105
ACTIVATING_ENV = (URL_TEMPLATE_ENV, "AZURE_CLIENT_ID", "AZURE_TENANT_ID")


class StaticTokenCredential:
    """An async token credential that always returns the same bearer token.

    For tests and local Key Vault stand-ins only: a real deployment uses `DefaultAzureCredential`."""

    def __init__(self, token: str, lifetime_seconds: int = 3600) -> None:
        self._token = token
        self._lifetime = lifetime_seconds

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(self._token, int(time.time()) + self._lifetime)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> StaticTokenCredential:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def __repr__(self) -> str:
        return "StaticTokenCredential(**********)"


class AzureKeyVaultResolver:
    """`azure-kv:` resolver: `await resolver(ref, agent_id, provider) -> Secret`.

    `credential`: an async token credential (`azure.identity.aio.DefaultAzureCredential`, or
    `StaticTokenCredential` for tests). `url_template`: `str.format` template with `{vault}`.
    `ca_bundle`: PEM path passed to the SDK as `connection_verify`. `verify_challenge_resource`: the
    SDK's check that the challenge's resource matches the vault's domain (leave on against Azure).
    `client_options`: further `SecretClient` keywords (e.g. `retry_total`)."""

    def __init__(
        self,
        credential: Any,
        *,
        url_template: str = DEFAULT_URL_TEMPLATE,
        ca_bundle: str | None = None,
        verify_challenge_resource: bool = True,
        client_factory: Callable[..., Any] | None = None,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        if "{vault}" not in url_template:
            raise ValueError(f"{URL_TEMPLATE_ENV} must contain '{{vault}}'")
        self._credential = credential
        self._url_template = url_template
        self._ca_bundle = ca_bundle
        self._verify_challenge_resource = verify_challenge_resource
        self._client_factory = client_factory
        self._client_options = dict(client_options or {})
        self._clients: dict[tuple[int, str], Any] = {}

    def vault_url(self, vault: str) -> str:
        return self._url_template.format(vault=vault).rstrip("/")

    def _client(self, vault_url: str) -> Any:
        key = (id(asyncio.get_running_loop()), vault_url)
        client = self._clients.get(key)
        if client is None:
            factory = self._client_factory
            if factory is None:
                from azure.keyvault.secrets.aio import SecretClient

                factory = SecretClient
            options: dict[str, Any] = {"verify_challenge_resource": self._verify_challenge_resource,
                                       **self._client_options}
            if self._ca_bundle:
                options["connection_verify"] = self._ca_bundle
            client = factory(vault_url=vault_url, credential=self._credential, **options)
            self._clients[key] = client
        return client

    async def __call__(self, ref: CredentialRef, agent_id: str, provider: str) -> Secret:
        if not ref.vault or not ref.name:
            raise CredentialsUnavailable(f"credential reference {ref.raw!r}: not an azure-kv reference")
        client = self._client(self.vault_url(ref.vault))
        try:
            secret = await client.get_secret(ref.name, ref.version)
        except CredentialsUnavailable:
            raise
        except Exception as exc:
            raise CredentialsUnavailable(f"credential reference {ref.raw!r}: Azure Key Vault {_kind(exc)}") from None
        value = getattr(secret, "value", None)
        if not isinstance(value, str) or not value:
            raise CredentialsUnavailable(f"credential reference {ref.raw!r}: Azure Key Vault secret is empty")
        return Secret(value)

    async def close(self) -> None:
        """Close the SDK clients (their HTTP sessions) and the credential."""
        clients, self._clients = list(self._clients.values()), {}
        closers = [client.close for client in clients]
        close = getattr(self._credential, "close", None)
        if close is not None:
            closers.append(close)
        for closer in closers:
            try:
                await closer()
            except Exception as exc:  # closing is best effort: a stopping worker goes on stopping
                log.debug("azure_kv.close_failed error=%s", type(exc).__name__)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AzureKeyVaultResolver | None:
        """The store as the environment configures it, or None when it is not configured (see module doc)."""
        env = os.environ if environ is None else environ
        if not any(env.get(name) for name in ACTIVATING_ENV):
            return None
        static_token = env.get(STATIC_TOKEN_ENV)
        if static_token:
            credential: Any = StaticTokenCredential(static_token)
        else:
            from azure.identity.aio import DefaultAzureCredential

            credential = DefaultAzureCredential()
        return cls(
            credential,
            url_template=env.get(URL_TEMPLATE_ENV) or DEFAULT_URL_TEMPLATE,
            ca_bundle=env.get(CA_BUNDLE_ENV) or None,
            verify_challenge_resource=not static_token,
        )


def from_env(environ: Mapping[str, str] | None = None) -> Any:
    """The `azure-kv` resolver to register: `AzureKeyVaultResolver`, or `NotConfigured("azure-kv")`."""
    resolver = AzureKeyVaultResolver.from_env(environ)
    if resolver is None:
        from gateway_app.credentials.resolver import NotConfigured

        return NotConfigured("azure-kv")
    return resolver


def _kind(exc: BaseException) -> str:
    """What went wrong, in words that carry no value (the SDK's messages are not repeated)."""
    try:
        from azure.core import exceptions as azure_errors
    except ImportError:  # pragma: no cover - the SDK is a dependency
        return f"error ({type(exc).__name__})"
    if isinstance(exc, azure_errors.ResourceNotFoundError):
        return "secret not found (404)"
    if isinstance(exc, azure_errors.ClientAuthenticationError):
        status = getattr(exc, "status_code", None)
        return f"authentication refused ({status})" if status else "authentication failed (no token)"
    if isinstance(exc, azure_errors.HttpResponseError):
        status = getattr(exc, "status_code", None)
        code = getattr(getattr(exc, "error", None), "code", None)
        return f"HTTP {status}" + (f" {code}" if code else "")
    if isinstance(exc, (azure_errors.ServiceRequestError, azure_errors.ServiceResponseError)):
        return f"unreachable ({type(exc).__name__})"
    if isinstance(exc, ValueError):
        return "rejected the vault's authentication challenge"
    return f"error ({type(exc).__name__})"
