"""`CredentialResolver`: a credential reference -> the key it names, for one agent and provider.

One resolver per scheme, in a registry. `env`, `file` and `enc` are built in; the network stores
(`aws-sm`, `azure-kv`, `vault`) are registered as "not configured" until their SDK clients are plugged
in, one line each: `resolver.register("vault", VaultResolver(client))` — any object with
`async __call__(ref: CredentialRef, agent_id: str, provider: str) -> Secret`.

Blocking work (file reads, decryption) runs in `asyncio.to_thread`. Resolved keys are cached per
(reference, agent, provider) for `secret_cache_seconds`, so a key rotated in its store is picked up
within that time without a restart. Every failure is `CredentialsUnavailable` naming the reference
(never a resolved value); no failure falls back to another key.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable, Mapping, Protocol

from gateway_app.credentials.errors import CredentialsUnavailable
from gateway_app.credentials.keyring import Keyring
from gateway_app.credentials.refs import CredentialRef, describe_ref, parse_ref
from gateway_app.credentials.secret import Secret
from gateway_app.credentials.vault import VaultResolver

MAX_FILE_BYTES = 64 * 1024


class SchemeResolver(Protocol):
    def __call__(self, ref: CredentialRef, agent_id: str, provider: str) -> Awaitable[Secret]: ...


class EnvResolver:
    """`env:NAME`: the worker's environment (an empty variable counts as missing)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    async def __call__(self, ref: CredentialRef, agent_id: str, provider: str) -> Secret:
        value = self._environ.get(ref.name or "")
        if not value:
            raise CredentialsUnavailable(f"credential reference {ref.raw!r}: variable {ref.name} is not set")
        return Secret(value)


class FileResolver:
    """`file:/path`: the file's UTF-8 text, one trailing newline (or CRLF) stripped."""

    async def __call__(self, ref: CredentialRef, agent_id: str, provider: str) -> Secret:
        return await asyncio.to_thread(self._read, ref)

    @staticmethod
    def _read(ref: CredentialRef) -> Secret:
        path = Path(ref.path or "")
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            raise CredentialsUnavailable(
                f"credential reference {ref.raw!r}: cannot read the file ({exc.strerror or type(exc).__name__})"
            ) from None
        if len(data) > MAX_FILE_BYTES:
            raise CredentialsUnavailable(f"credential reference {ref.raw!r}: file is larger than {MAX_FILE_BYTES} bytes")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise CredentialsUnavailable(f"credential reference {ref.raw!r}: file is not UTF-8 text") from None
        text = text.removesuffix("\n").removesuffix("\r")
        if not text:
            raise CredentialsUnavailable(f"credential reference {ref.raw!r}: file is empty")
        return Secret(text)


class EncResolver:
    """`enc:v1:...`: decrypted with the worker's keyring, for this agent and provider."""

    def __init__(self, keyring: Keyring | None) -> None:
        self._keyring = keyring

    async def __call__(self, ref: CredentialRef, agent_id: str, provider: str) -> Secret:
        if self._keyring is None:
            raise CredentialsUnavailable(f"credential reference {ref.raw!r}: no keyring on this worker (GATEWAY_KEYRING)")
        return await asyncio.to_thread(self._keyring.decrypt, ref, agent_id, provider)


@dataclass(frozen=True)
class NotConfigured:
    """A store this worker has no client for: fails closed."""

    scheme: str

    async def __call__(self, ref: CredentialRef, agent_id: str, provider: str) -> Secret:
        raise CredentialsUnavailable(f"{self.scheme} store is not configured on this worker")


class CredentialResolver:
    """Reference -> `Secret`, by scheme, cached per (reference, agent, provider) for `cache_seconds`."""

    def __init__(
        self,
        *,
        keyring: Keyring | None = None,
        cache_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[tuple[str, str, str], tuple[float, Secret]] = {}
        self._resolvers: dict[str, SchemeResolver] = {
            "env": EnvResolver(environ),
            "file": FileResolver(),
            "enc": EncResolver(keyring),
            "aws-sm": NotConfigured("aws-sm"),
            "azure-kv": NotConfigured("azure-kv"),
            "vault": NotConfigured("vault"),
        }

    @classmethod
    def from_settings(cls, settings: object, **kwargs: object) -> CredentialResolver:
        """From the gateway's `Settings` (`keyring`, `kms_key`, `secret_cache_seconds`); `aws-sm` is
        registered when the AWS SDK environment names a region (`AWS_REGION`...)."""
        from gateway_app.credentials.aws import sm_resolver_from_environment
        from gateway_app.credentials.azure_kv import from_env as azure_kv_from_env
        from gateway_app.credentials.keyring import load_keyring

        resolver = cls(
            keyring=load_keyring(settings),  # KMS-unwrapped when `kms_key` is set; raises at start
            cache_seconds=getattr(settings, "secret_cache_seconds"),
            **kwargs,  # type: ignore[arg-type]
        )
        resolver.register("vault", VaultResolver.from_environ(kwargs.get("environ")) or NotConfigured("vault"))  # type: ignore[arg-type]
        resolver.register("azure-kv", azure_kv_from_env(kwargs.get("environ")))  # type: ignore[arg-type]
        aws_sm = sm_resolver_from_environment(kwargs.get("environ"))  # type: ignore[arg-type]
        if aws_sm is not None:  # a region in the AWS SDK environment; else aws-sm stays NotConfigured
            resolver.register("aws-sm", aws_sm)
        return resolver

    def register(self, scheme: str, resolver: SchemeResolver) -> None:
        """Plug in (or replace) the resolver of one scheme, e.g. a network store's SDK client."""
        self._resolvers[scheme] = resolver

    def invalidate(self, ref: str | None = None) -> None:
        """Forget cached keys: of one reference (every agent and provider), or all of them."""
        if ref is None:
            self._cache.clear()
        else:
            for key in [k for k in self._cache if k[0] == ref]:
                del self._cache[key]

    async def resolve(self, ref: str, *, agent_id: str, provider: str) -> Secret:
        """The key `ref` names for this agent and provider; `CredentialsUnavailable` if it cannot be had."""
        key = (ref, agent_id, provider)
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None and now < cached[0]:
            return cached[1]
        try:
            parsed = parse_ref(ref)
        except ValueError as exc:
            raise CredentialsUnavailable(f"credential reference {describe_ref(ref)} is malformed: {exc}") from None
        resolver = self._resolvers.get(parsed.scheme)
        if resolver is None:
            raise CredentialsUnavailable(f"{parsed.scheme} store is not configured on this worker")
        try:
            secret = await resolver(parsed, agent_id, provider)
        except CredentialsUnavailable:
            self._cache.pop(key, None)
            raise
        except Exception as exc:  # a store client's own error: fail closed, name the reference only
            self._cache.pop(key, None)
            raise CredentialsUnavailable(
                f"credential reference {parsed.raw!r} could not be resolved ({type(exc).__name__})"
            ) from None
        if self._cache_seconds > 0:
            self._cache[key] = (now + self._cache_seconds, secret)
        return secret
