"""Regenerate `requirements.lock`, the hash-locked runtime dependencies the Dockerfile installs.

    python -m devtools.lock_requirements                          # keep the pins pyproject still allows
    python -m devtools.lock_requirements --upgrade                # every pin to the newest allowed version
    python -m devtools.lock_requirements --upgrade-package aiohttp

Resolves pyproject.toml's `dependencies` (never the `test` extra) for the image's interpreter and
platform: CPython 3.11 on Linux x86_64 with glibc 2.36 (Debian 12), whatever machine runs this. Every
file of each pinned version gets its hash, so pip on any x86_64 Linux can check the one it picks.

uv does the resolution, installed at a fixed version into a throwaway virtual environment for this run
only: it is no project dependency, and a given lock and pyproject resolve the same way on every machine.
Needs the package index. Arguments after the script's own go to `uv pip compile` unchanged.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOCK = "requirements.lock"
UV = "uv==0.13.8"
COMMAND = "python -m devtools.lock_requirements"
# The base image's interpreter and C library (see the Dockerfile's FROM lines).
PYTHON_VERSION = "3.11"
PLATFORM = "x86_64-manylinux_2_36"

EXPLANATION = f"""\
#
# pyproject.toml's runtime dependencies (not the test extra) for CPython {PYTHON_VERSION} on Linux x86_64
# (glibc 2.36, the image's Debian 12), with the hash of every file of each pinned version. The
# Dockerfile installs it with `pip install --require-hashes --no-deps -r {LOCK}`; tests/deploy/
# checks that it still matches pyproject.toml. Edit pyproject.toml, then run the command above.
"""


def compile_args(extra: list[str]) -> list[str]:
    return ["pip", "compile", "pyproject.toml", "--output-file", LOCK, "--generate-hashes",
            "--python-version", PYTHON_VERSION, "--python-platform", PLATFORM,
            # one `# via` line per parent: the tests read them to tell transitive runtime packages apart
            "--annotation-style", "split", "--custom-compile-command", COMMAND, *extra]


def with_explanation(text: str) -> str:
    """uv's header names the command; the lines after it say what the lock is for."""
    lines = text.splitlines(keepends=True)
    at = next((i + 1 for i, line in enumerate(lines) if line.strip() == f"#    {COMMAND}"), 0)
    return "".join(lines[:at]) + EXPLANATION + "".join(lines[at:])


def main(argv: list[str] | None = None) -> int:
    extra = list(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory(prefix="lock-") as tmp:
        env_dir = Path(tmp) / "venv"
        venv.create(env_dir, with_pip=True)
        subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", UV], check=True)
        done = subprocess.run([str(env_dir / "bin" / "uv"), *compile_args(extra)], cwd=REPO)
        if done.returncode != 0:
            return done.returncode
    lock = REPO / LOCK
    lock.write_text(with_explanation(lock.read_text()))
    print(f"wrote {LOCK}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
