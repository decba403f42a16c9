"""A benchmark helper server (the fake OpenAI server, the counting OTLP receiver) run as a subprocess on
a free local port, so that its CPU is not the benchmark process's own. Each serves `GET /counts`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

from devtools.kafka_local import free_port
from devtools.workers import REPO


class ServerProcess:
    """`python -m <module> <port>`, ready once `GET /counts` answers."""

    def __init__(self, module: str, what: str) -> None:
        self.what = what
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", module, str(self.port)],
                                     cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while self.get_counts() is None:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"the {what} did not start")
            time.sleep(0.1)  # polling for the subprocess's port

    def get_counts(self) -> dict | None:
        try:
            with urllib.request.urlopen(self.base + "/counts", timeout=5) as response:
                return json.loads(response.read())
        except OSError:
            return None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
