"""AWS behind credential references: the `aws-sm:` store (Secrets Manager) and KMS-wrapped keyrings.

`aws-sm:<secret id>[#field]` (a name or ARN): `get_secret_value` of the current version. Without a
field the whole `SecretString` is the key; with `#field` the `SecretString` is a JSON object and the
key is that field's string value. A `SecretBinary` is read as UTF-8 text (no field).

Both clients are configured by the AWS SDK from its own environment, nothing gateway-specific:
`AWS_REGION` / `AWS_DEFAULT_REGION` (or a profile's region), the default credentials chain (variables,
profile, web identity, container or instance role) and `AWS_ENDPOINT_URL` /
`AWS_ENDPOINT_URL_SECRETS_MANAGER` / `AWS_ENDPOINT_URL_KMS` for a private endpoint. The worker registers
the store only when a region is configured (`sm_resolver_from_environment`); otherwise `aws-sm:`
references fail closed as "not configured".

The blocking SDK calls run in `asyncio.to_thread`; the Secrets Manager client is built lazily (in a
thread: building one reads files) on first use and then shared. Every failure is
`CredentialsUnavailable` naming the reference and the AWS error code, never a value.

KMS envelope (`GATEWAY_KMS_KEY=aws-kms:<key id or ARN>`): each `GATEWAY_KEYRING` entry is then
`kid:<base64 of the KMS ciphertext of a 32-byte data key>`, made by `generate_wrapped_key` and unwrapped
once at start with KMS `Decrypt` under the encryption context
`{"purpose": "ai-gateway-keyring", "kid": <kid>}` (so an entry cannot be relabelled with another key
id). If any entry does not unwrap the keyring is not loaded at all: `KeyringUnavailable` is raised and
the worker does not start — it never runs with part of its keyring.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
from typing import Any, Callable, Mapping

from gateway_app.credentials.errors import CredentialsUnavailable
from gateway_app.credentials.keyring import decode_entry
from gateway_app.credentials.refs import CredentialRef
from gateway_app.credentials.secret import Secret

KMS_PREFIX = "aws-kms:"
KEYRING_PURPOSE = "ai-gateway-keyring"
DATA_KEY_BYTES = 32


class KeyringUnavailable(ValueError):
    """The keyring could not be loaded (a KMS-wrapped entry did not unwrap): the worker must not start."""


def aws_error_code(exc: BaseException) -> str:
    """The AWS error code of an SDK failure (`ResourceNotFoundException`, `AccessDeniedException`...),
    or the exception's type name for failures before a response (no credentials, no connection)."""
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        code = (response.get("Error") or {}).get("Code")
        if code:
            return str(code)
    return type(exc).__name__


def configured_region(environ: Mapping[str, str] | None = None) -> str | None:
    """The region the AWS SDK would use: `AWS_REGION`, `AWS_DEFAULT_REGION`, else its config profile."""
    env = os.environ if environ is None else environ
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        if env.get(name):
            return env[name]
    if environ is not None:
        return None
    try:
        import botocore.session

        return botocore.session.get_session().get_config_variable("region") or None
    except Exception:  # an unreadable config file: treat as no region
        return None


def _client(service: str, region: str | None = None) -> Any:
    import boto3

    return boto3.session.Session().client(service, region_name=region)


class SecretsManagerResolver:
    """The `aws-sm:` scheme resolver: `async (ref, agent_id, provider) -> Secret`."""

    def __init__(self, client_factory: Callable[[], Any] | None = None, *, region: str | None = None) -> None:
        self._factory = client_factory or (lambda: _client("secretsmanager", region))
        self._client: Any = None
        self._lock = threading.Lock()

    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._factory()
            return self._client

    async def __call__(self, ref: CredentialRef, agent_id: str, provider: str) -> Secret:
        return await asyncio.to_thread(self._fetch, ref)

    def _fetch(self, ref: CredentialRef) -> Secret:
        try:
            response = self._get_client().get_secret_value(SecretId=ref.secret_id)
        except Exception as exc:
            raise CredentialsUnavailable(
                f"credential reference {ref.raw!r}: AWS Secrets Manager failed ({aws_error_code(exc)})"
            ) from None
        text = response.get("SecretString")
        if text is None:
            binary = response.get("SecretBinary")
            if binary is None:
                raise CredentialsUnavailable(f"credential reference {ref.raw!r}: the secret has no value")
            try:
                text = bytes(binary).decode("utf-8")
            except UnicodeDecodeError:
                raise CredentialsUnavailable(
                    f"credential reference {ref.raw!r}: SecretBinary is not UTF-8 text"
                ) from None
        if ref.field is not None:
            text = _field(ref, text)
        if not text:
            raise CredentialsUnavailable(f"credential reference {ref.raw!r}: the secret is empty")
        return Secret(text)


def _field(ref: CredentialRef, text: str) -> str:
    try:
        document = json.loads(text)
    except ValueError:
        raise CredentialsUnavailable(
            f"credential reference {ref.raw!r}: the secret is not a JSON object, it has no field {ref.field!r}"
        ) from None
    if not isinstance(document, dict):
        raise CredentialsUnavailable(
            f"credential reference {ref.raw!r}: the secret is not a JSON object, it has no field {ref.field!r}"
        )
    if ref.field not in document:
        raise CredentialsUnavailable(f"credential reference {ref.raw!r}: the secret has no field {ref.field!r}")
    value = document[ref.field]
    if not isinstance(value, str):
        raise CredentialsUnavailable(f"credential reference {ref.raw!r}: field {ref.field!r} is not a string")
    return value


def sm_resolver_from_environment(environ: Mapping[str, str] | None = None) -> SecretsManagerResolver | None:
    """A Secrets Manager resolver when the SDK environment names a region, else None (not configured)."""
    region = configured_region(environ)
    return SecretsManagerResolver(region=region) if region else None


# KMS envelope for the keyring.


def kms_key_id(setting: str) -> str:
    """`aws-kms:<key id or ARN or alias>` -> the key id; `ValueError` for anything else."""
    if not isinstance(setting, str) or not setting.startswith(KMS_PREFIX) or not setting[len(KMS_PREFIX):].strip():
        raise ValueError(f"kms_key must be {KMS_PREFIX}<key id, ARN or alias>")
    return setting[len(KMS_PREFIX):].strip()


def encryption_context(kid: str) -> dict[str, str]:
    return {"purpose": KEYRING_PURPOSE, "kid": kid}


def _kms_client(key_id: str) -> Any:
    # A key ARN names its region (arn:aws:kms:<region>:<account>:key/<id>); otherwise the SDK's.
    parts = key_id.split(":")
    region = parts[3] if key_id.startswith("arn:") and len(parts) > 4 and parts[3] else None
    return _client("kms", region)


def generate_wrapped_key(kid: str, kms_key: str, *, client: Any = None) -> str:
    """A new keyring entry `kid:<base64 of the KMS ciphertext of a 32-byte data key>` under `kms_key`
    (`aws-kms:<key id>`): KMS `GenerateDataKey` (AES_256), the plaintext key is dropped at once."""
    from gateway_app.credentials.keyring import valid_key_id

    if not valid_key_id(kid):
        raise ValueError("key id must be 1-64 letters, digits, '_', '.' or '-'")
    key_id = kms_key_id(kms_key)
    kms = client if client is not None else _kms_client(key_id)
    response = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext=encryption_context(kid))
    return f"{kid}:{base64.b64encode(response['CiphertextBlob']).decode('ascii')}"


def unwrap_entries(entries: list[tuple[str, str]], kms_key: str, *, client: Any = None) -> list[tuple[str, bytes]]:
    """(kid, base64 KMS ciphertext) -> (kid, 32-byte data key) with KMS `Decrypt`; `KeyringUnavailable`
    naming the key id and AWS error code if any entry does not unwrap (nothing is returned then)."""
    key_id = kms_key_id(kms_key)
    kms = client if client is not None else _kms_client(key_id)
    keys: list[tuple[str, bytes]] = []
    for kid, encoded in entries:
        blob = decode_entry(kid, encoded, KeyringUnavailable)
        try:
            response = kms.decrypt(CiphertextBlob=blob, KeyId=key_id, EncryptionContext=encryption_context(kid))
        except Exception as exc:
            raise KeyringUnavailable(
                f"keyring: key {kid!r} could not be unwrapped with KMS key {key_id!r} ({aws_error_code(exc)}); "
                "the worker does not start with part of its keyring"
            ) from None
        plain = response.get("Plaintext") or b""
        if len(plain) != DATA_KEY_BYTES:
            raise KeyringUnavailable(f"keyring: unwrapped key {kid!r} is not {DATA_KEY_BYTES} bytes")
        keys.append((kid, bytes(plain)))
    return keys
