"""The peer of the peers section: the LiteLLM proxy, and an HTTP load generator for it.

- `install`: a virtual environment of its own under the repo's `.cache/` with `litellm[proxy]` at a pinned
  version (reused when present). Never a project dependency: the gateway does not import it.
- `Proxy`: `litellm --config` with one model name mapped to `openai/gpt-4o-mini` on the bench's fake
  OpenAI server, nothing that phones home (telemetry off, the bundled model cost map, no database, no
  spend logs, no callbacks), in a session of its own so its whole process tree is measured and stopped.
- `python -m devtools.bench.peer_proxy URL MODEL closed CONCURRENCY COUNT` or `... open RATE COUNT`: N
  concurrent aiohttp clients (closed loop, saturation), or request i sent at start + i / RATE whatever
  happens (open loop); prints `{"rate": requests/s first send to last answer, "latencies": [s, ...],
  "errors": n}`. In a process of its own: its CPU is not the proxy's nor the bench's.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from devtools.bench.cpu import tree_cpu
from devtools.kafka_local import free_port
from devtools.workers import REPO

VERSION = "1.80.17"  # pinned: later versions (1.110.x) do not install here
MODEL = "bench-model"
BODY = {"model": MODEL, "max_tokens": 64,
        "messages": [{"role": "user", "content": "How long does shipping to Lisbon take for an order placed today?"}]}
# What a LiteLLM install reads at start-up and would otherwise fetch or send: the cost map from the
# network, telemetry; no DATABASE_URL, so no spend logs or key database.
QUIET_ENV = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_TELEMETRY": "False", "LITELLM_LOG": "ERROR",
             "DISABLE_SCHEMA_UPDATE": "true"}


def install() -> Path:
    """The virtual environment's directory, created and filled on first use."""
    venv = REPO / ".cache" / "bench-peers" / f"litellm-{VERSION}"
    if (venv / "bin" / "litellm").exists():
        return venv
    print(f"installing litellm[proxy]=={VERSION} into its own virtual environment (once)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"litellm[proxy]=={VERSION}"], check=True)
    return venv


def _config(api_base: str) -> str:
    return "\n".join([
        "model_list:",
        f"  - model_name: {MODEL}",
        "    litellm_params:",
        "      model: openai/gpt-4o-mini",
        f"      api_base: {api_base}",
        "      api_key: sk-bench-dummy",
        "litellm_settings:",
        "  telemetry: false",
        "  turn_off_message_logging: true",
        "  callbacks: []",
        "general_settings:",
        "  disable_spend_logs: true",
        "  disable_error_logs: true",
        ""])


class Proxy:
    """One LiteLLM proxy with `workers` worker processes, ready to answer."""

    def __init__(self, venv: Path, api_base: str, workers: int, tmp: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = tmp / f"litellm-{self.port}.yaml"
        config.write_text(_config(api_base))
        self.log_path = tmp / f"litellm-{self.port}.log"
        cmd = [str(venv / "bin" / "litellm"), "--config", str(config), "--host", "127.0.0.1", "--port",
               str(self.port), "--telemetry", "False"] + (["--num_workers", str(workers)] if workers > 1 else [])
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=tmp, env={**os.environ, **QUIET_ENV}, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        self.started = time.monotonic()

    def wait_ready(self, timeout: float = 120) -> float:
        while time.monotonic() - self.started < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"litellm exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(self.url + "/health/liveliness", timeout=2) as response:
                    if response.status == 200:
                        return time.monotonic() - self.started
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"litellm not live after {timeout}s:\n{self.tail()}")

    def cpu(self) -> float:
        return tree_cpu(self.proc.pid)

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def load(url: str, mode: str, amount: float, count: int) -> dict:
    """Runs the load generator in its own process and returns what it printed."""
    out = subprocess.run([sys.executable, "-m", "devtools.bench.peer_proxy", url, MODEL, mode, str(amount),
                          str(count)], cwd=REPO, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"HTTP load failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout)


async def _generate(url: str, mode: str, amount: float, count: int) -> dict:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    body = json.dumps(BODY).encode()
    headers = {"Authorization": "Bearer sk-bench-dummy", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one() -> None:
            nonlocal errors
            started = time.monotonic()
            try:
                async with session.post(url + "/v1/chat/completions", data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                        return
            except aiohttp.ClientError:
                errors += 1
                return
            latencies.append(time.monotonic() - started)

        start = time.monotonic()
        if mode == "closed":
            remaining = iter(range(count))

            async def client() -> None:
                for _ in remaining:  # the clients share one iterator: `count` requests in all
                    await one()

            await asyncio.gather(*(client() for _ in range(int(amount))))
        else:
            tasks = []
            for i in range(count):
                delay = start + i / amount - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one()))
            await asyncio.gather(*tasks)
        elapsed = time.monotonic() - start
    return {"rate": len(latencies) / elapsed, "latencies": latencies, "errors": errors}


if __name__ == "__main__":
    target, _model, how, level, total = sys.argv[1:6]
    print(json.dumps(asyncio.run(_generate(target, how, float(level), int(total)))))
