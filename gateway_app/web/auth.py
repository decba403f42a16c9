"""Bearer-token access to the operator views: who may see what, decided as plain data.

Levels (`Access`):
- `open`: `/health` and `/ready` (liveness and readiness probes). They show counters and states,
  never a token, a key or a profile.
- `read`: every other view (`/providers`, `/agents/{id}`, `/agents/{id}/usage`). A view declares
  nothing: `read` is the default.
- `admin`: what any view that changes state will require. A request other than GET/HEAD/OPTIONS
  needs an admin token whatever the view declares. Admin tokens also grant read.

Tokens: `GATEWAY_WEB_READ_TOKENS` and `GATEWAY_WEB_ADMIN_TOKENS`, several of each so that they rotate
without downtime (add the new one on every worker, move the callers, remove the old one). A request
sends `Authorization: Bearer <token>`; the token is compared in constant time with every configured
token. No header or one that is not `Bearer <token>`, or a token that is not configured: 401 with
`WWW-Authenticate: Bearer`. A valid token of too low a level: 403.

When it is enforced (`mode_for`):
- `GATEWAY_WEB_AUTH=off`: never; a warning `web.auth_off` is logged at every start.
- tokens configured: always, whatever the host.
- no tokens and `GATEWAY_WEB_HOST` a loopback address (127.0.0.0/8, ::1, localhost), e.g. a
  developer's `make run`: no token is asked, but only callers on the same machine are served (the web
  server listens on every interface whatever the host setting, so the caller's address is checked;
  any other caller gets 403). Logged at info as `web.auth_local_only`.
- no tokens and any other host: the worker refuses to start (`StartupRefused` says what to set).

Requests that a worker forwards to the agent's owner carry the caller's `Authorization` header and are
checked again by the owner.
"""

from __future__ import annotations

import enum
import hmac
import ipaddress
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from pydantic import SecretStr

from gateway_app.settings import Settings

SAFE_METHODS = frozenset({"get", "head", "options"})


class Access(enum.IntEnum):
    """What a view requires; a higher level includes the lower ones."""

    OPEN = 0
    READ = 1
    ADMIN = 2


class Mode(enum.Enum):
    ENFORCED = "enforced"
    LOCAL_ONLY = "local_only"  # no tokens, loopback host: same-machine callers only
    OFF = "off"


class StartupRefused(RuntimeError):
    """The worker's web configuration would serve its views to the network without any token."""


@dataclass(frozen=True)
class Denied:
    status: int
    code: str
    message: str
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


def _unauthorized(message: str) -> Denied:
    return Denied(401, "unauthorized", message, {"WWW-Authenticate": "Bearer"})


def _forbidden(message: str) -> Denied:
    return Denied(403, "forbidden", message)


def _raw(token: str) -> bytes:
    # Bytes, not str: compare_digest refuses non-ASCII strings. `surrogatepass` so that no header value
    # raises (the server decodes headers with surrogate escapes).
    return token.encode("utf-8", "surrogatepass")


def is_loopback(host: str) -> bool:
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1, a dual-stack server's IPv4 peer
    return (mapped or address).is_loopback


def bearer_token(authorization: str | None) -> str | None:
    """The token of `Bearer <token>` (scheme case-insensitive), or None for anything else."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or any(c.isspace() for c in token):
        return None
    return token


def required_access(declared: Access, method: str) -> Access:
    """What a request needs: the view's level, and at least admin for anything that may change state."""
    return declared if method.lower() in SAFE_METHODS else max(declared, Access.ADMIN)


@dataclass(frozen=True)
class Policy:
    mode: Mode
    read_tokens: tuple[bytes, ...] = field(default=(), repr=False)
    admin_tokens: tuple[bytes, ...] = field(default=(), repr=False)

    @classmethod
    def of(cls, mode: Mode, read: Iterable[SecretStr] = (), admin: Iterable[SecretStr] = ()) -> "Policy":
        def raw(tokens: Iterable[SecretStr]) -> tuple[bytes, ...]:
            return tuple(_raw(t.get_secret_value()) for t in tokens if t.get_secret_value().strip())

        return cls(mode, raw(read), raw(admin))

    def level_of(self, token: str) -> Access | None:
        """The level a token grants, or None. Every configured token is compared (no early exit)."""
        given = _raw(token)
        admin = [hmac.compare_digest(given, t) for t in self.admin_tokens]
        read = [hmac.compare_digest(given, t) for t in self.read_tokens]
        if any(admin):
            return Access.ADMIN
        if any(read):
            return Access.READ
        return None

    def check(self, required: Access, authorization: str | None, peer: str | None = None) -> Denied | None:
        """None if the request may proceed, else why not. `peer` is the caller's address."""
        if required is Access.OPEN or self.mode is Mode.OFF:
            return None
        if self.mode is Mode.LOCAL_ONLY:
            if peer is not None and is_loopback(peer):
                return None
            return _forbidden("no web tokens are configured: these views serve local callers only")
        if not authorization:
            return _unauthorized("a bearer token is required")
        token = bearer_token(authorization)
        if token is None:
            return _unauthorized("the Authorization header must be 'Bearer <token>'")
        level = self.level_of(token)
        if level is None:
            return _unauthorized("invalid bearer token")
        if level < required:
            return _forbidden(f"this request needs a {required.name.lower()} token")
        return None


def mode_for(settings: Settings) -> Mode:
    """How the views are guarded; raises `StartupRefused` for a network-facing worker without tokens."""
    if settings.web_auth == "off":
        return Mode.OFF
    if any(t.get_secret_value().strip() for t in [*settings.web_read_tokens, *settings.web_admin_tokens]):
        return Mode.ENFORCED
    if is_loopback(settings.web_host):
        return Mode.LOCAL_ONLY
    raise StartupRefused(
        f"GATEWAY_WEB_HOST={settings.web_host!r} is not a loopback address and no web tokens are configured: "
        "set GATEWAY_WEB_READ_TOKENS (and GATEWAY_WEB_ADMIN_TOKENS for state-changing views), or bind to "
        "127.0.0.1, or set GATEWAY_WEB_AUTH=off to serve every view to anyone who can reach the port")


def policy_for(settings: Settings) -> Policy:
    return Policy.of(mode_for(settings), settings.web_read_tokens, settings.web_admin_tokens)


def startup_message(settings: Settings, mode: Mode) -> tuple[str, str] | None:
    """(level, line) to log at each start for a mode that is not plainly enforced."""
    if mode is Mode.OFF:
        return "warning", (f"web.auth_off host={settings.web_host} port={settings.web_port}: GATEWAY_WEB_AUTH=off, "
                           "every operator view is open to anyone who can reach the port")
    if mode is Mode.LOCAL_ONLY:
        return "info", (f"web.auth_local_only host={settings.web_host}: no web tokens configured, operator views "
                        "are served to callers on this machine only")
    return None
