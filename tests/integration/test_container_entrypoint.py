"""The image's entrypoint, without a container runtime: the Dockerfile's builder stage replayed into a
fresh virtual environment, then its runtime stage's ENV, WORKDIR and ENTRYPOINT + CMD run against the
local broker. The worker gets ready, its HEALTHCHECK passes, and SIGTERM (what `docker stop` and
Kubernetes send to PID 1) stops it with exit status 0 within the grace period.

Nothing is re-typed from the Dockerfile: the RUN lines are executed as written (so the two cannot
drift), with the paths the Dockerfile introduces (/opt/venv, its WORKDIRs, its VOLUME) moved under a
temporary directory. Dependencies come from the package index through pip's cache, as on CI."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from devtools.kafka_local import free_port
from devtools.workers import Deployment
from gateway_app.settings import Settings
from tests.deploy.dockerfile import REPO, Stage, copy_sources, entrypoint_argv, env_pairs, expand, \
    healthcheck_command, stages

INSTALLS = ["pip install --require-hashes --no-deps -r requirements.lock", "pip install --no-deps ."]
# What the Docker build context leaves out of the copied folders (see .dockerignore).
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "*.egg-info")


class Rootfs:
    """The image's file system, for the paths the Dockerfile creates: each lives under a temporary root."""

    def __init__(self, root: Path, all_stages: list[Stage]) -> None:
        self.root = root
        paths = {stage.env()["VIRTUAL_ENV"] for stage in all_stages if "VIRTUAL_ENV" in stage.env()}
        for stage in all_stages:
            paths |= {w.args for w in stage.all("WORKDIR")}
            paths |= {v.strip('[]" ') for volume in stage.all("VOLUME") for v in volume.args.split(",")}
        alternatives = "|".join(re.escape(p) for p in sorted(paths, key=len, reverse=True))
        self.pattern = re.compile(rf"(?<![\w/.])({alternatives})(?=/|:|$)")

    def relocate(self, value: str) -> str:
        return self.pattern.sub(lambda m: str(self.root) + m[1], value)

    def path(self, container_path: str) -> Path:
        return Path(self.relocate(container_path))


def base_environment(shims: Path) -> dict[str, str]:
    """This process's environment less what would make the replay use the repository instead of the
    image's own files; `python` is the base image's interpreter (this one, or the one it was made from)."""
    shims.mkdir(exist_ok=True)
    (shims / "python").symlink_to(sys.executable)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PATH"] = f"{shims}{os.pathsep}{env.get('PATH', '')}"
    return env


def replay_builder(stage: Stage, rootfs: Rootfs, env: dict[str, str]) -> list[str]:
    """Run the builder stage's instructions in order; returns the RUN lines it ran."""
    cwd = rootfs.root  # "/" until a WORKDIR
    cwd.mkdir(parents=True, exist_ok=True)
    ran: list[str] = []
    for instruction in stage.instructions:
        if instruction.keyword == "ENV":
            for key, value in env_pairs(instruction.args):
                # pip's cache only saves time (every file is still checked against the lock's hashes): the
                # image has no use for one, a test run does.
                if key != "PIP_NO_CACHE_DIR":
                    env[key] = expand(rootfs.relocate(value), env)
        elif instruction.keyword == "WORKDIR":
            cwd = rootfs.path(expand(instruction.args, env))
            cwd.mkdir(parents=True, exist_ok=True)
        elif instruction.keyword == "COPY":
            sources, destination, flags = copy_sources(instruction)
            assert not flags, f"the replay knows no COPY flags: line {instruction.line}"
            target = cwd / destination
            for source in sources:
                if (REPO / source).is_dir():
                    shutil.copytree(REPO / source, target, ignore=IGNORED, dirs_exist_ok=True)
                else:
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(REPO / source, target / Path(source).name)
        elif instruction.keyword == "RUN":
            done = subprocess.run(["sh", "-c", instruction.args], cwd=cwd, env=env, capture_output=True, text=True,
                                  timeout=600)
            assert done.returncode == 0, f"Dockerfile:{instruction.line} {instruction.args}\n{done.stdout[-3000:]}" \
                                         f"\n{done.stderr[-3000:]}"
            ran.append(instruction.args)
        else:
            raise AssertionError(f"the replay knows no {instruction.keyword} (Dockerfile:{instruction.line})")
    return ran


def get_status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def tail(log: Path, lines: int = 60) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else "(no log)"


def test_the_image_entrypoint_starts_gets_ready_and_stops_cleanly_on_sigterm(kafka, tmp_path):
    all_stages = stages()
    builder, runtime = all_stages[0], all_stages[-1]
    rootfs = Rootfs(tmp_path / "rootfs", all_stages)
    started = time.monotonic()
    base_env = base_environment(tmp_path / "shims")
    ran = replay_builder(builder, rootfs, dict(base_env))
    assert [run for run in ran if "pip install" in run] == INSTALLS, ran
    installed = time.monotonic() - started

    # The runtime stage: its ENV over the base image's, the deployment's topics and app id, and this
    # host's free port. GATEWAY_WEB_HOST as the image leaves it (the default): one worker, no tokens.
    venv = rootfs.path(runtime.env()["VIRTUAL_ENV"])
    image_env = {key: rootfs.relocate(value) for key, value in runtime.env({"PATH": base_env["PATH"]}).items()}
    port = free_port()
    deployment = Deployment(kafka.bootstrap, f"gw-{uuid.uuid4().hex[:8]}", partitions=2)
    env = {**base_env, **image_env, **deployment.environment(),
           "GATEWAY_WEB_PORT": str(port)}
    env.pop("GATEWAY_WEB_HOST", None)
    data_dir = Path(env["GATEWAY_DATA_DIR"])
    data_dir.mkdir(parents=True, exist_ok=True)  # the VOLUME, created by the image's RUN as its user
    workdir = rootfs.path(runtime.last("WORKDIR").args)
    workdir.mkdir(parents=True, exist_ok=True)

    argv = entrypoint_argv(runtime)
    program = shutil.which(argv[0], path=env["PATH"])
    assert program and Path(program).parent == venv / "bin", f"{argv[0]} resolves to {program}, not the image's"
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import gateway_app; print(gateway_app.__file__)"],
                           cwd=workdir, env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(venv), f"the worker would import the repository's sources: {where}"

    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([program, *argv[1:]], cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        ready_at = time.monotonic()
        while get_status(port, "/ready") != 200:
            assert proc.poll() is None, f"the entrypoint exited with {proc.returncode}:\n{tail(log)}"
            assert time.monotonic() - ready_at < 120, f"not ready within 120 s:\n{tail(log)}"
            time.sleep(0.5)
        ready = time.monotonic() - ready_at
        assert any(data_dir.iterdir()), "the tables live in GATEWAY_DATA_DIR (the image's VOLUME)"

        health = healthcheck_command(runtime)
        if health is not None:
            done = subprocess.run(health, cwd=workdir, env=env, capture_output=True, text=True, timeout=30)
            assert done.returncode == 0, f"HEALTHCHECK {health} failed:\n{done.stderr[-2000:]}"

        grace = Settings.model_fields["shutdown_grace_seconds"].default
        if "GATEWAY_SHUTDOWN_GRACE_SECONDS" in env:
            grace = float(env["GATEWAY_SHUTDOWN_GRACE_SECONDS"])
        stopping = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)  # to the process alone, as a runtime signals PID 1
        try:
            code = proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running {grace} s after SIGTERM:\n{tail(log)}") from None
        stopped = time.monotonic() - stopping
        assert code == 0, f"exit status {code} after SIGTERM:\n{tail(log)}"
        assert "worker.drained" in log.read_text(errors="replace"), tail(log)
        print(f"\ncontainer entrypoint: install {installed:.1f} s, ready {ready:.1f} s, "
              f"stopped {stopped:.1f} s after SIGTERM (grace {grace:g} s)")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
