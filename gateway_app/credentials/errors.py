"""How a missing or unusable credential ends a message: closed, never with another key."""

from __future__ import annotations

from gateway_app.contract.events import ErrorCode, ReplyStatus
from gateway_app.errors import GatewayError


class CredentialsUnavailable(GatewayError):
    """A credential reference could not be resolved to a key: unknown or unconfigured store, missing
    variable or file, a key id not in the keyring, a ciphertext that does not authenticate (for this
    agent and provider). Not retriable by the call loop; the record goes to the DLQ for replay once the
    store or keyring is fixed. The reason names the reference, never a key or key material."""

    reply_status = ReplyStatus.ERROR
    dead_letter = True
    retriable = False

    def __init__(self, reason: str) -> None:
        super().__init__(ErrorCode.CREDENTIALS_UNAVAILABLE, reason)
