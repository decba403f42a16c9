"""`make run`: bring the gateway up from nothing and show one answered message.

Starts the embedded local Kafka (unless GATEWAY_BROKER_URL points at a reachable broker), starts one
worker with its web views, waits for /ready, runs the demo (profile + message -> reply), then keeps
the worker in the foreground until Ctrl-C (or exits at once with --exit-after-demo).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from devtools.kafka_local import KafkaBroker, port_open

STATE = Path(".local")
STOP_GRACE_SECONDS = 30.0


def broker_address(url: str) -> tuple[str, int]:
    host, _, port = url.split("://", 1)[-1].split(",")[0].partition(":")
    return host, int(port or 9092)


def ensure_broker(url: str) -> KafkaBroker | None:
    host, port = broker_address(url)
    if port_open(host, port):
        print(f"using the Kafka broker at {host}:{port}")
        return None
    print(f"no broker at {host}:{port}: starting the embedded local Kafka (first run fetches its jars)")
    broker = KafkaBroker(port=port, work_dir=STATE / "kafka")
    broker.start()
    return broker


def wait_ready(port: int, worker: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise SystemExit(f"the worker exited with code {worker.returncode}; see {STATE / 'worker.log'}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as response:
                print("worker ready:", json.loads(response.read()))
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"the worker was not ready within {timeout}s; see {STATE / 'worker.log'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--exit-after-demo", action="store_true")
    args = parser.parse_args()
    STATE.mkdir(exist_ok=True)
    url = os.environ.get("GATEWAY_BROKER_URL", "kafka://127.0.0.1:9092")
    web_port = int(os.environ.get("GATEWAY_WEB_PORT", "6066"))
    broker = ensure_broker(url)
    log = open(STATE / "worker.log", "ab")
    worker = subprocess.Popen([sys.executable, "-m", "gateway_app.cli", "worker", "-l", "info"], stdout=log,
                              stderr=subprocess.STDOUT, env={**os.environ, "GATEWAY_BROKER_URL": url})
    try:
        wait_ready(web_port, worker)
        code = subprocess.call([sys.executable, "-m", "gateway_app.cli", "demo"])
        print(f"web views: http://127.0.0.1:{web_port}/agents/demo-echo-agent  (worker log: {STATE / 'worker.log'})")
        if args.exit_after_demo or code != 0:
            return code
        print("the gateway is running; Ctrl-C stops it")
        worker.wait()
        return worker.returncode or 0
    except KeyboardInterrupt:
        return 0
    finally:
        try:
            stop_worker(worker)
        finally:
            if broker is not None:
                broker.stop()


def stop_worker(worker: subprocess.Popen, grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds, as a process supervisor would. Killing loses
    nothing: whatever the worker had not committed is redelivered to the next worker."""
    if worker.poll() is not None:
        return
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        print(f"the worker did not stop within {grace:.0f}s of SIGTERM; killing it (see {STATE / 'worker.log'})")
        worker.kill()
        worker.wait()


if __name__ == "__main__":
    sys.exit(main())
