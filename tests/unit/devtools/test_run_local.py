"""`make run`/`make demo` stop their worker like a supervisor: SIGTERM, then SIGKILL after the grace."""

import subprocess
import sys

from devtools.run_local import stop_worker

IGNORES_SIGTERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
STOPS_ON_SIGTERM = "import time; print('up', flush=True); time.sleep(60)"


def _start(code: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "up"  # the handler is installed before we signal
    return proc


def test_a_worker_that_ignores_sigterm_is_killed_after_the_grace(capsys):
    proc = _start(IGNORES_SIGTERM)
    stop_worker(proc, grace=0.5)
    assert proc.returncode == -9
    assert "did not stop within" in capsys.readouterr().out


def test_a_worker_that_stops_on_sigterm_is_not_killed(capsys):
    proc = _start(STOPS_ON_SIGTERM)
    stop_worker(proc, grace=10)
    assert proc.returncode == -15
    assert capsys.readouterr().out == ""
