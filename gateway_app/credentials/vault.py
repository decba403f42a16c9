"""`vault:<mount>/<path>#<field>`: a field of a KV v2 secret in HashiCorp Vault or OpenBao, via `hvac`.

Configured from the SDK's own environment: `VAULT_ADDR` (the store is registered only when it is set),
`VAULT_TOKEN` and optionally `VAULT_NAMESPACE`; TLS settings (`VAULT_CACERT`, `VAULT_CAPATH`,
`VAULT_CLIENT_CERT`, `VAULT_CLIENT_KEY`) are read by `hvac` itself. One client per worker, reused; its
blocking calls run in `asyncio.to_thread`. The newest version of the secret is read (a deleted newest
version counts as not found); caching and rotation are the `CredentialResolver`'s business.

Every failure is `CredentialsUnavailable` naming the reference and the kind of error (forbidden, not
found, missing field, unreachable, ...), never a value and never the store's own message.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Mapping

from gateway_app.credentials.errors import CredentialsUnavailable
from gateway_app.credentials.refs import CredentialRef
from gateway_app.credentials.secret import Secret

TIMEOUT_SECONDS = 10


class VaultResolver:
    """Resolves `vault:` references with one `hvac.Client` (anything with `secrets.kv.v2`)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> VaultResolver | None:
        """From `VAULT_ADDR`, `VAULT_TOKEN`, `VAULT_NAMESPACE`; None when `VAULT_ADDR` is not set."""
        env = os.environ if environ is None else environ
        addr = env.get("VAULT_ADDR")
        if not addr:
            return None
        import hvac  # only workers that use the store need the SDK importable

        client = hvac.Client(
            url=addr,
            token=env.get("VAULT_TOKEN") or None,
            namespace=env.get("VAULT_NAMESPACE") or None,
            timeout=TIMEOUT_SECONDS,
        )
        return cls(client)

    async def __call__(self, ref: CredentialRef, agent_id: str, provider: str) -> Secret:
        return await asyncio.to_thread(self._read, ref)

    def _read(self, ref: CredentialRef) -> Secret:
        import hvac.exceptions as hvac_errors
        import requests

        def fail(kind: str) -> CredentialsUnavailable:
            return CredentialsUnavailable(f"credential reference {ref.raw!r}: vault {kind}")

        try:
            response = self._client.secrets.kv.v2.read_secret_version(
                path=ref.path, mount_point=ref.mount, raise_on_deleted_version=True
            )
        except (hvac_errors.Forbidden, hvac_errors.Unauthorized):
            raise fail("access forbidden (permission denied or invalid token)") from None
        except hvac_errors.InvalidPath:
            raise fail("secret not found") from None
        except (hvac_errors.VaultDown, hvac_errors.VaultNotInitialized):
            raise fail("store is sealed or not initialised") from None
        except requests.exceptions.RequestException as exc:
            raise fail(f"store is unreachable ({type(exc).__name__})") from None
        except hvac_errors.VaultError as exc:
            raise fail(f"request failed ({type(exc).__name__})") from None
        try:
            data = response["data"]["data"]
        except (KeyError, TypeError):
            raise fail("answer is not a KV v2 secret (is the mount KV version 2?)") from None
        if not isinstance(data, Mapping) or ref.field not in data:
            raise fail(f"secret has no field {ref.field!r}")
        value = data[ref.field]
        if not isinstance(value, str) or not value:
            raise fail(f"field {ref.field!r} is empty or not a string")
        return Secret(value)
