"""Per-agent provider credentials: referenced in profiles, never carried by value.

- `secret`: `Secret`, a key held in memory that never prints, logs, pickles or serialises its value;
- `refs`: parsing of credential references, and the plaintext-key finder for input events;
- `keyring`: the key-encryption keys behind `enc:v1:` references (AES-256-GCM, bound to agent + provider);
- `resolver`: `CredentialResolver`, reference -> `Secret`, per scheme, with a time-bounded cache;
- `errors`: `CredentialsUnavailable`, how every failure to get a key fails closed.
"""

from __future__ import annotations

from gateway_app.credentials.errors import CredentialsUnavailable
from gateway_app.credentials.keyring import Keyring, generate_key
from gateway_app.credentials.refs import (
    CredentialRef,
    find_plaintext_secrets,
    find_plaintext_secrets_in_message,
    looks_like_plaintext_key,
    parse_ref,
    redact_plaintext,
)
from gateway_app.credentials.resolver import CredentialResolver
from gateway_app.credentials.secret import Secret, fingerprint

__all__ = [
    "CredentialRef", "CredentialResolver", "CredentialsUnavailable", "Keyring", "Secret",
    "find_plaintext_secrets", "find_plaintext_secrets_in_message", "fingerprint", "generate_key",
    "looks_like_plaintext_key", "parse_ref", "redact_plaintext",
]
