"""The keyring behind `enc:v1:` references: key-encryption keys, AES-256-GCM.

`GATEWAY_KEYRING` is `kid1:<base64 of 32 bytes>,kid2:<base64 of 32 bytes>` (or `file:/path` of a file
holding that): the first key encrypts, every key decrypts, so a key is rotated in by putting a new one
first, re-encrypting the references (`Keyring.rotate`), then dropping the old one.

An `enc:v1:<kid>:<base64url(nonce + ciphertext + tag)>` reference is bound to its agent and provider:
the GCM associated data is `f"{agent_id}\\x1f{provider}"`, so a blob copied into another agent's or
another provider's profile does not decrypt. Every failure is `CredentialsUnavailable`, whose reason
names the key id at most, never key material.

Envelope encryption: with `GATEWAY_KMS_KEY=aws-kms:<key id>` each entry's base64 is instead the KMS
ciphertext of the 32-byte key (`credentials.aws.generate_wrapped_key`), unwrapped once at start
(`load_keyring`). If any entry does not unwrap (no access to the KMS key, a wrong encryption context,
KMS unreachable) loading fails with `KeyringUnavailable` and the worker does not start: it never runs
with part of its keyring.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from gateway_app.credentials.errors import CredentialsUnavailable
from gateway_app.credentials.refs import CredentialRef, parse_ref
from gateway_app.credentials.secret import Secret

KEY_BYTES = 32
NONCE_BYTES = 12
_KID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def generate_key(key_id: str | None = None) -> str:
    """A new keyring entry `kid:<base64 of 32 random bytes>` (key id: `k` + UTC date-time if not given)."""
    if key_id is None:
        from datetime import datetime, timezone

        key_id = "k" + datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
    if not _KID.fullmatch(key_id):
        raise ValueError("key id must be 1-64 letters, digits, '_', '.' or '-'")
    return f"{key_id}:{base64.b64encode(os.urandom(KEY_BYTES)).decode()}"


def decode_entry(key_id: str, encoded: str, error: type[Exception]) -> bytes:
    """A keyring entry's base64 (a key, or a KMS-wrapped one) as bytes; `error` says what it is not."""
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise error(f"keyring: key {key_id!r} is not valid base64") from None


def associated_data(agent_id: str, provider: str) -> bytes:
    return f"{agent_id}\x1f{provider}".encode("utf-8")


class Keyring:
    """Key-encryption keys by id, in order: the first encrypts, all decrypt."""

    __slots__ = ("_keys", "_order")

    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise ValueError("a keyring needs at least one key")
        self._keys: dict[str, AESGCM] = {}
        self._order: list[str] = []
        for key_id, key in keys:
            if not _KID.fullmatch(key_id):
                raise ValueError("keyring: key id must be 1-64 letters, digits, '_', '.' or '-'")
            if key_id in self._keys:
                raise ValueError(f"keyring: key id {key_id!r} appears twice")
            if len(key) != KEY_BYTES:
                raise ValueError(f"keyring: key {key_id!r} is not {KEY_BYTES} bytes")
            self._keys[key_id] = AESGCM(key)
            self._order.append(key_id)

    @classmethod
    def parse(cls, text: str, kms_key: str | None = None) -> Keyring:
        """From `kid1:<base64>,kid2:<base64>` (whitespace and newlines around entries ignored).

        With `kms_key` (`aws-kms:<key id>`) each base64 is a KMS ciphertext of the 32-byte key, unwrapped
        with KMS `Decrypt` (see `credentials.aws`); if any entry does not unwrap, `KeyringUnavailable`
        (a `ValueError`) is raised and no keyring is made: a worker never runs with part of its keyring."""
        entries = _entries(text)
        if kms_key is not None:
            from gateway_app.credentials.aws import unwrap_entries

            return cls(unwrap_entries(entries, kms_key))
        return cls([(key_id, decode_entry(key_id, encoded, ValueError)) for key_id, encoded in entries])

    @classmethod
    def load(cls, setting: SecretStr | str | None, kms_key: str | None = None) -> Keyring | None:
        """From the `keyring` setting: the keyring itself or `file:/path` of a file holding it; its
        entries KMS-wrapped when `kms_key` is given (the `kms_key` setting, see `parse`).
        None (unset) gives None: `enc:` references then fail closed."""
        if setting is None:
            return None
        text = setting.get_secret_value() if isinstance(setting, SecretStr) else setting
        text = text.strip()
        if text.startswith("file:"):
            path = Path(text[len("file:"):])
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ValueError(f"keyring file {str(path)!r} cannot be read: {exc.strerror}") from None
        return cls.parse(text, kms_key)

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._order)

    @property
    def primary(self) -> str:
        return self._order[0]

    def __repr__(self) -> str:
        return f"Keyring(key_ids={self._order!r})"

    def encrypt(self, agent_id: str, provider: str, plaintext: str | Secret) -> str:
        """An `enc:v1:<primary kid>:<base64url(nonce + ciphertext)>` reference for this agent and provider."""
        value = plaintext.reveal() if isinstance(plaintext, Secret) else plaintext
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self.primary].encrypt(nonce, value.encode("utf-8"), associated_data(agent_id, provider))
        blob = base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode("ascii")
        return f"enc:v1:{self.primary}:{blob}"

    def decrypt(self, ref: str | CredentialRef, agent_id: str, provider: str) -> Secret:
        """The key an `enc:` reference holds; `CredentialsUnavailable` if its key id is not in the ring,
        or it does not authenticate (tampered, or made for another agent or provider)."""
        parsed = _parse_enc(ref)
        aead = self._keys.get(parsed.key_id or "")
        if aead is None:
            raise CredentialsUnavailable(
                f"credential reference is encrypted under key id {parsed.key_id!r}, which is not in this "
                f"worker's keyring ({', '.join(self._order)})"
            )
        payload = parsed.payload or b""
        try:
            plain = aead.decrypt(payload[:NONCE_BYTES], payload[NONCE_BYTES:], associated_data(agent_id, provider))
        except InvalidTag:
            raise CredentialsUnavailable(
                f"credential reference under key id {parsed.key_id!r} does not decrypt for agent {agent_id!r} "
                f"and provider {provider!r} (made for another agent or provider, or altered)"
            ) from None
        try:
            return Secret(plain.decode("utf-8"))
        except UnicodeDecodeError:
            raise CredentialsUnavailable(
                f"credential reference under key id {parsed.key_id!r} does not hold UTF-8 text"
            ) from None

    def rotate(self, ref: str | CredentialRef, agent_id: str, provider: str) -> str:
        """The same key re-encrypted under the primary (first) key; the old reference keeps working
        for as long as its key stays in the ring."""
        return self.encrypt(agent_id, provider, self.decrypt(ref, agent_id, provider))


def valid_key_id(key_id: str) -> bool:
    return bool(_KID.fullmatch(key_id))


def _entries(text: str) -> list[tuple[str, str]]:
    """`kid1:<base64>,kid2:<base64>` -> [(kid, base64)], entries separated by commas or newlines."""
    entries: list[tuple[str, str]] = []
    for entry in (e.strip() for e in text.replace("\n", ",").split(",")):
        if not entry:
            continue
        key_id, colon, encoded = entry.partition(":")
        if not colon:
            raise ValueError("keyring: each entry is kid:<base64 of 32 bytes>")
        entries.append((key_id.strip(), encoded.strip()))
    return entries


def load_keyring(settings: object) -> Keyring | None:
    """The worker's keyring from its `Settings` (`keyring`, unwrapped with `kms_key` when that is set).
    Raises `ValueError` (`KeyringUnavailable` for a KMS failure) at start rather than run without it."""
    return Keyring.load(getattr(settings, "keyring", None), getattr(settings, "kms_key", None))


def _parse_enc(ref: str | CredentialRef) -> CredentialRef:
    if isinstance(ref, CredentialRef):
        parsed = ref
    else:
        try:
            parsed = parse_ref(ref)
        except ValueError as exc:
            raise CredentialsUnavailable(f"malformed encrypted credential reference: {exc}") from None
    if parsed.scheme != "enc":
        raise CredentialsUnavailable(f"credential reference {parsed.raw!r} is not an enc: reference")
    return parsed
