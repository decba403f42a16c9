"""Credential references, and the finder for keys pasted into events by value.

A profile names its provider key by reference, never by value:

- `env:NAME`                              a variable of the worker's environment;
- `file:/path`                            a file on the worker (a mounted secret), absolute path;
- `aws-sm:<secret id>[#field]`            AWS Secrets Manager (name or ARN; a JSON field of it);
- `azure-kv:<vault>/<secret>[/<version>]` Azure Key Vault;
- `vault:<mount>/<path>#<field>`          HashiCorp Vault (KV);
- `enc:v1:<key id>:<base64url>`           encrypted under the gateway's keyring (see `keyring`).

`parse_ref` turns one into a frozen `CredentialRef` or raises `ValueError`; its reasons never repeat
the value (a value that is not a reference may well be the key itself), at most its fingerprint.

Plaintext finder. Profile events are scanned whole: nothing in a profile is a place for a key.
Message events are scanned in their `metadata` only (`find_plaintext_secrets_in_message`): chat
content is people talking and may legitimately mention "sk-..." text (a user asking about a key
format, pasting an error message), and refusing or rewriting it would be the gateway editing the
conversation. What is flagged:

- anywhere: `sk-...` (`sk-ant-...`, `sk-proj-...`), `Bearer <token>`, AWS access key ids `AKIA...`/`ASIA...`;
- in a field whose name looks like a key, secret, token, password, api_key, credential or authorization
  (snake or camel case; or inside such a field): a long high-entropy string with no whitespace;

except values that are themselves valid credential references.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal, Mapping

from gateway_app.credentials.secret import fingerprint

Scheme = Literal["env", "file", "aws-sm", "azure-kv", "vault", "enc"]
SCHEMES: tuple[Scheme, ...] = ("env", "file", "aws-sm", "azure-kv", "vault", "enc")
MAX_REF_CHARS = 2048

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_AWS_ID = re.compile(r"[A-Za-z0-9/_+=.@:-]+")
_FIELD = re.compile(r"[A-Za-z0-9_.-]+")
_AZURE_VAULT = re.compile(r"[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]")
_AZURE_NAME = re.compile(r"[A-Za-z0-9-]{1,127}")
_AZURE_VERSION = re.compile(r"[A-Za-z0-9]{1,64}")
_VAULT_SEGMENT = re.compile(r"[A-Za-z0-9_.@+-]+")
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_B64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")
ENC_MIN_BYTES = 12 + 16  # nonce + GCM tag


@dataclass(frozen=True, slots=True)
class CredentialRef:
    """One parsed reference; `raw` is the text it was parsed from (and what `str()` gives).

    Which parts are set depends on `scheme`:
    env: `name`; file: `path`; aws-sm: `secret_id`, `field`?; azure-kv: `vault`, `name`, `version`?;
    vault: `mount`, `path`, `field`; enc: `version` ("v1"), `key_id`, `payload` (nonce + ciphertext).
    """

    scheme: Scheme
    raw: str
    name: str | None = None
    path: str | None = None
    secret_id: str | None = None
    vault: str | None = None
    mount: str | None = None
    version: str | None = None
    field: str | None = None
    key_id: str | None = None
    payload: bytes | None = None

    def __str__(self) -> str:
        return self.raw


def parse_ref(raw: str) -> CredentialRef:
    """Parse a credential reference; `ValueError` with the reason if it is not one."""
    if not isinstance(raw, str):
        raise ValueError("a credential reference is a string")
    if not raw:
        raise ValueError("empty credential reference")
    if len(raw) > MAX_REF_CHARS:
        raise ValueError(f"credential reference longer than {MAX_REF_CHARS} characters")
    if raw != raw.strip():
        raise ValueError("credential reference has surrounding whitespace")
    scheme, colon, rest = raw.partition(":")
    if not colon or scheme not in SCHEMES:
        hint = " and looks like a plaintext key" if _KEY_PATTERNS.search(raw) else ""
        raise ValueError(
            f"not a credential reference (fp={fingerprint(raw)}){hint}: expected one of "
            + ", ".join(f"{s}:" for s in SCHEMES)
        )
    if not rest:
        raise ValueError(f"{scheme}: reference has nothing after the scheme")
    return _PARSERS[scheme](raw, rest)


def _env(raw: str, rest: str) -> CredentialRef:
    if not _ENV_NAME.fullmatch(rest):
        raise ValueError("env: expects a variable name (letters, digits, underscore; not starting with a digit)")
    return CredentialRef("env", raw, name=rest)


def _file(raw: str, rest: str) -> CredentialRef:
    if not rest.startswith("/"):
        raise ValueError("file: expects an absolute path (file:/path)")
    if "\x00" in rest or rest.endswith("/"):
        raise ValueError("file: path must name a file")
    return CredentialRef("file", raw, path=rest)


def _aws(raw: str, rest: str) -> CredentialRef:
    secret_id, hash_, field = rest.partition("#")
    if not secret_id or not _AWS_ID.fullmatch(secret_id):
        raise ValueError("aws-sm: expects a secret name or ARN (aws-sm:<secret id>[#field])")
    if hash_ and not _FIELD.fullmatch(field):
        raise ValueError("aws-sm: the field after '#' is empty or has invalid characters")
    return CredentialRef("aws-sm", raw, secret_id=secret_id, field=field if hash_ else None)


def _azure(raw: str, rest: str) -> CredentialRef:
    parts = rest.split("/")
    if len(parts) not in (2, 3):
        raise ValueError("azure-kv: expects azure-kv:<vault>/<secret>[/<version>]")
    vault, name, *version = parts
    if not _AZURE_VAULT.fullmatch(vault):
        raise ValueError("azure-kv: vault name must be 3-24 letters, digits or hyphens, starting with a letter")
    if not _AZURE_NAME.fullmatch(name):
        raise ValueError("azure-kv: secret name must be 1-127 letters, digits or hyphens")
    if version and not _AZURE_VERSION.fullmatch(version[0]):
        raise ValueError("azure-kv: version must be letters and digits")
    return CredentialRef("azure-kv", raw, vault=vault, name=name, version=version[0] if version else None)


def _vault(raw: str, rest: str) -> CredentialRef:
    location, hash_, field = rest.partition("#")
    if not hash_ or not _FIELD.fullmatch(field):
        raise ValueError("vault: expects vault:<mount>/<path>#<field> (the field is required)")
    mount, slash, path = location.partition("/")
    segments = path.split("/") if slash else []
    if not mount or not _VAULT_SEGMENT.fullmatch(mount) or not segments or not all(
        _VAULT_SEGMENT.fullmatch(s) and s not in (".", "..") for s in segments
    ):
        raise ValueError("vault: expects vault:<mount>/<path>#<field> with non-empty path segments")
    return CredentialRef("vault", raw, mount=mount, path=path, field=field)


def _enc(raw: str, rest: str) -> CredentialRef:
    parts = rest.split(":")
    if len(parts) != 3:
        raise ValueError("enc: expects enc:v1:<key id>:<base64url>")
    version, key_id, blob = parts
    if version != "v1":
        raise ValueError("enc: unsupported version (this gateway knows v1)")
    if not _KEY_ID.fullmatch(key_id):
        raise ValueError("enc: key id must be 1-64 letters, digits, '_', '.' or '-'")
    if not _B64URL.fullmatch(blob):
        raise ValueError("enc: payload is not base64url")
    try:
        payload = base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("enc: payload is not base64url") from None
    if len(payload) <= ENC_MIN_BYTES:
        raise ValueError("enc: payload too short to be a nonce and an authenticated ciphertext")
    return CredentialRef("enc", raw, version=version, key_id=key_id, payload=payload)


_PARSERS = {"env": _env, "file": _file, "aws-sm": _aws, "azure-kv": _azure, "vault": _vault, "enc": _enc}


def is_ref(value: str) -> bool:
    try:
        parse_ref(value)
    except ValueError:
        return False
    return True


def describe_ref(raw: str) -> str:
    """How to name a reference in a log line or an error: itself if it parses, else its fingerprint."""
    return raw if isinstance(raw, str) and is_ref(raw) else f"<not a reference, fp={fingerprint(str(raw))}>"


# ---- plaintext keys ------------------------------------------------------------------------------

_KEY_PATTERNS = re.compile(
    r"(?<![A-Za-z0-9])sk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}"   # OpenAI / Anthropic style
    r"|\bBearer\s+[A-Za-z0-9._~+/-]{20,}=*"                    # an Authorization header value
    r"|\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"                          # AWS access key id
)
_SECRET_NAME = re.compile(
    r"(?:^|_)(?:api_?key|apikey|key|keys|secret|secrets|token|access_token|password|passwd|pwd|"
    r"credential|credentials|auth|authorization|private_key|client_secret)(?:_|$)"
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
MIN_SECRET_CHARS = 16
MIN_ENTROPY_BITS = 3.0  # per character; English words run lower, keys (hex 4, base64 ~6) higher
# Keys, tokens and passwords are drawn from this alphabet (hex, base64/base64url, JWTs, common password
# symbols); a JSON-Schema pattern or a sentence in a tool definition under a "token" property is not.
_KEY_ALPHABET = re.compile(r"[A-Za-z0-9_\-+/=.~:!@#%&*?]+")


def looks_like_plaintext_key(value: str) -> bool:
    """True if `value` holds a recognisable provider or cloud key: `sk-...` (incl. `sk-ant-`, `sk-proj-`),
    `Bearer <token>`, `AKIA...`/`ASIA...`. Pure. A valid credential reference is never a plaintext key."""
    return isinstance(value, str) and bool(_KEY_PATTERNS.search(value)) and not is_ref(value)


def looks_high_entropy(value: str) -> bool:
    """A long string of key-like characters (no whitespace) and high per-character entropy."""
    if len(value) < MIN_SECRET_CHARS or not _KEY_ALPHABET.fullmatch(value):
        return False
    counts = Counter(value)
    entropy = -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())
    return entropy >= MIN_ENTROPY_BITS


def secret_field_name(name: str) -> bool:
    """`api_key`, `apiKey`, `client-secret`, `Authorization`, `password`... (not `max_tokens`, `keyword`)."""
    snake = _CAMEL.sub("_", name).replace("-", "_").lower()
    return bool(_SECRET_NAME.search(snake))


def _flagged(value: str, in_secret_field: bool) -> bool:
    if is_ref(value):
        return False
    if _KEY_PATTERNS.search(value):
        return True
    return in_secret_field and looks_high_entropy(value)


def _walk(data: Any, path: str, in_secret_field: bool, found: list[tuple[str, str]]) -> None:
    if isinstance(data, str):
        if _flagged(data, in_secret_field):
            found.append((path, fingerprint(data)))
    elif isinstance(data, Mapping):
        for key, value in data.items():
            _walk(value, _child(path, key), in_secret_field or secret_field_name(str(key)), found)
    elif isinstance(data, (list, tuple)):
        for index, value in enumerate(data):
            _walk(value, f"{path}[{index}]", in_secret_field, found)


def _child(path: str, key: Any) -> str:
    key = str(key)
    return f"{path}.{key}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", key) else f"{path}[{key!r}]"


def find_plaintext_secrets(data: Any) -> list[tuple[str, str]]:
    """Every string in `data` (decoded JSON) that looks like a key by value: (JSON path, fingerprint),
    e.g. `("$.credentials.key_ref", "3f1c0a9b2e44")`. Paths start at `$`. Use on whole profile events."""
    found: list[tuple[str, str]] = []
    _walk(data, "$", False, found)
    return found


def find_plaintext_secrets_in_message(event: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A message event's findings: its `metadata` only (chat content may mention keys; see above)."""
    found: list[tuple[str, str]] = []
    metadata = event.get("metadata") if isinstance(event, Mapping) else None
    if metadata is not None:
        _walk(metadata, "$.metadata", False, found)
    return found


def redaction(value: str) -> str:
    return f"[redacted plaintext secret fp={fingerprint(value)}]"


def redact_plaintext(data: Any) -> Any:
    """A copy of `data` with every value `find_plaintext_secrets` flags replaced by
    `"[redacted plaintext secret fp=<fingerprint>]"`; everything else unchanged (the input is not modified)."""
    return _redact(data, False)


def _redact(data: Any, in_secret_field: bool) -> Any:
    if isinstance(data, str):
        return redaction(data) if _flagged(data, in_secret_field) else data
    if isinstance(data, Mapping):
        return {key: _redact(value, in_secret_field or secret_field_name(str(key))) for key, value in data.items()}
    if isinstance(data, list):
        return [_redact(value, in_secret_field) for value in data]
    if isinstance(data, tuple):
        return tuple(_redact(value, in_secret_field) for value in data)
    return data
