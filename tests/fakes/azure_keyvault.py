"""A fake Azure Key Vault (secrets) over TLS, speaking what the official SDK expects.

- TLS with a self-signed certificate for 127.0.0.1 / localhost (`self_signed_cert`), the client given
  its PEM as CA bundle (the SDK refuses bearer tokens over plain http);
- the authentication challenge: a request without the expected bearer token is answered 401 with
  `WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/<tenant>", resource="https://vault.azure.net"`;
- `GET [/<vault>]/secrets/<name>[/<version>]?api-version=...` -> `{"value", "id", "attributes"}`, or
  404 `{"error": {"code": "SecretNotFound", "message": ...}}`.

Vaults are path prefixes (`https://127.0.0.1:<port>/<vault>`, URL template `https://127.0.0.1:<port>/{vault}`);
a request without a prefix addresses the vault `default`. Secrets are set by the test, with versions:
`vault.set_secret("myvault", "openai-key", "sk-...")` returns the new version, which becomes the latest.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import ssl
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.fakes.base import ServerThread

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CHALLENGE = f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", resource="https://vault.azure.net"'
_PATH = re.compile(r"^(?:/(?P<vault>[A-Za-z0-9-]+))?/secrets/(?P<name>[A-Za-z0-9-]+)(?:/(?P<version>[A-Za-z0-9]*))?$")


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A fresh self-signed certificate for 127.0.0.1 and localhost: (cert.pem, key.pem) in `directory`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake key vault")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "fake-kv-cert.pem", directory / "fake-kv-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@dataclass(frozen=True)
class SecretVersion:
    version: str
    value: str
    created: int


class FakeKeyVault:
    """The fake's state and aiohttp app. Accepts only the bearer token `token`."""

    def __init__(self, token: str = "fake-kv-token") -> None:
        self.token = token
        self.secrets: dict[tuple[str, str], list[SecretVersion]] = {}
        self.requests: list[dict[str, Any]] = []  # method, path, query, authorization
        self.tokens_seen: list[str] = []
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self.handle)

    def set_secret(self, vault: str, name: str, value: str, version: str | None = None) -> str:
        version = version or uuid.uuid4().hex
        self.secrets.setdefault((vault, name), []).append(
            SecretVersion(version, value, int(datetime.datetime.now(datetime.timezone.utc).timestamp())))
        return version

    def served(self, name: str) -> int:
        """Successful reads of secret `name` (any vault, any version)."""
        return sum(1 for r in self.requests if r.get("served") == name)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        record: dict[str, Any] = {"method": request.method, "path": request.path,
                                  "query": dict(request.query), "authorization": bool(auth)}
        self.requests.append(record)
        if auth:
            self.tokens_seen.append(auth.removeprefix("Bearer "))
        if auth != f"Bearer {self.token}":
            return web.json_response(
                {"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}},
                status=401, headers={"WWW-Authenticate": CHALLENGE})
        match = _PATH.match(request.path)
        if request.method != "GET" or match is None or "api-version" not in request.query:
            return web.json_response({"error": {"code": "BadParameter", "message": "unsupported request"}}, status=400)
        vault = match["vault"] or "default"
        name, version = match["name"], match["version"] or None
        versions = self.secrets.get((vault, name), [])
        found = versions[-1] if versions and version is None else next(
            (v for v in versions if v.version == version), None)
        if found is None:
            what = f"A secret with (name/id) {name}" + (f"/{version}" if version else "")
            return web.json_response(
                {"error": {"code": "SecretNotFound", "message": f"{what} was not found in this key vault."}}, status=404)
        record["served"] = name
        origin = f"{request.scheme}://{request.host}"
        return web.json_response({
            "value": found.value,
            "id": f"{origin}/secrets/{name}/{found.version}",
            "attributes": {"enabled": True, "created": found.created, "updated": found.created,
                           "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90},
            "tags": {},
        })


class TLSServerThread(ServerThread):
    """`ServerThread` serving HTTPS with `ssl_context`."""

    def __init__(self, app: web.Application, ssl_context: ssl.SSLContext, path: str = "") -> None:
        super().__init__(app, path)
        self.ssl_context = ssl_context

    def _run(self) -> None:
        import asyncio

        asyncio.set_event_loop(self._loop)
        runner = web.AppRunner(self.app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}{self.path}"


class RunningKeyVault:
    """A started fake: `.vault` (state), `.url` (origin), `.ca_bundle` (PEM to trust), `.url_template`, `.env()`."""

    def __init__(self, directory: Path, token: str = "fake-kv-token") -> None:
        self.vault = FakeKeyVault(token)
        self.ca_bundle, key_path = self_signed_cert(directory)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.ca_bundle, key_path)
        self._thread = TLSServerThread(self.vault.app, context)

    def __enter__(self) -> RunningKeyVault:
        self._thread.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.__exit__(*exc)

    @property
    def url(self) -> str:
        return self._thread.url

    @property
    def url_template(self) -> str:
        return self.url + "/{vault}"

    def env(self, token: str | None = None) -> dict[str, str]:
        """The worker environment that points the `azure-kv` store at this fake."""
        return {"AZURE_KEYVAULT_URL_TEMPLATE": self.url_template, "AZURE_KEYVAULT_CA_BUNDLE": str(self.ca_bundle),
                "AZURE_KEYVAULT_STATIC_TOKEN": token or self.vault.token}
