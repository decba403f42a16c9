"""requirements.lock (what the image installs) still matches pyproject.toml. Offline: reads files only.

A runtime dependency added to or narrowed in pyproject without regenerating the lock fails here, not at
`docker build` (where `--require-hashes --no-deps` would install the old set without a word)."""

from __future__ import annotations

import re
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.deploy.dockerfile import LOCK, REPO

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PROJECT = canonicalize_name(PYPROJECT["project"]["name"])
DIRECT = f"{PROJECT} (pyproject.toml)"  # how the lock's `# via` names pyproject itself
REGENERATE = "python -m devtools.lock_requirements"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}\b")


def entries() -> list[dict]:
    """One entry per requirement line: name, version, hashes, and the packages it is there `via`."""
    found: list[dict] = []
    current: dict | None = None
    in_via = False
    for raw in LOCK.read_text().splitlines():
        line = raw.strip()
        if match := PIN.match(line):
            current = {"line": line, "name": canonicalize_name(match[1]), "version": match[2], "hashes": 0,
                       "via": set()}
            found.append(current)
            in_via = False
        elif current is None or not line:
            continue
        elif line.startswith("--hash="):
            current["hashes"] += len(HASH.findall(line))
        elif line.startswith("# via"):
            rest = line[len("# via"):].strip()
            in_via = not rest
            if rest:
                current["via"].add(rest)
        elif in_via and line.startswith("#   "):
            current["via"].add(line[4:].strip())
        elif line.startswith("#"):
            in_via = False
        else:
            raise AssertionError(f"requirements.lock: a line that is neither a pin, a hash nor a comment: {raw!r}")
    return found


def runtime_requirements() -> list[Requirement]:
    return [Requirement(text) for text in PYPROJECT["project"]["dependencies"]]


def test_the_header_says_how_to_regenerate_the_lock():
    header = [line for line in LOCK.read_text().splitlines()[:12] if line.startswith("#")]
    assert any(line.strip("# ").strip() == REGENERATE for line in header), header
    assert (REPO / "devtools" / "lock_requirements.py").exists()


def test_every_line_is_an_exact_pin_with_hashes():
    locked = entries()
    assert locked, "requirements.lock has no pins"
    for entry in locked:
        assert entry["hashes"] >= 1, f"no --hash=sha256: for {entry['line']}"
        Version(entry["version"])  # a real version, not a range or a URL
    names = [entry["name"] for entry in locked]
    assert len(names) == len(set(names)), f"pinned twice: {sorted({n for n in names if names.count(n) > 1})}"
    assert not re.search(r"^\s*(-e|--editable|--index-url|--extra-index-url|-f|--find-links)\b",
                         LOCK.read_text(), re.MULTILINE), "no editable installs or index options in the lock"


def test_every_runtime_dependency_is_pinned_once_within_its_specifier():
    locked = {}
    for entry in entries():
        locked.setdefault(entry["name"], []).append(entry)
    for requirement in runtime_requirements():
        name = canonicalize_name(requirement.name)
        pins = locked.get(name, [])
        assert len(pins) == 1, f"{requirement}: {len(pins)} pins in requirements.lock (regenerate it: {REGENERATE})"
        version = pins[0]["version"]
        assert requirement.specifier.contains(version, prereleases=True), \
            f"{requirement}: the lock pins {version} (regenerate it: {REGENERATE})"
        assert DIRECT in pins[0]["via"], f"{name} is a direct dependency: the lock says via {pins[0]['via']}"


def test_every_locked_package_is_needed_at_run_time():
    """Each pin reaches pyproject's runtime dependencies through the `# via` chain, and a package of the
    test extra is in the lock only as a dependency of a runtime package (opentelemetry-proto, under the
    OTLP exporter, is one)."""
    locked = {entry["name"]: entry for entry in entries()}
    direct = {canonicalize_name(r.name) for r in runtime_requirements()}
    reached, frontier = set(), [name for name in locked if name in direct]
    children: dict[str, set[str]] = {}
    for name, entry in locked.items():
        for parent in entry["via"]:
            children.setdefault(canonicalize_name(parent.split(" (")[0]), set()).add(name)
    while frontier:
        name = frontier.pop()
        if name not in reached:
            reached.add(name)
            frontier.extend(children.get(name, ()))
    assert set(locked) == reached, f"in the lock but needed by no runtime dependency: {sorted(set(locked) - reached)}"

    test_extra = {canonicalize_name(Requirement(r).name) for r in PYPROJECT["project"]["optional-dependencies"]["test"]}
    for name in test_extra & set(locked):
        if name in direct:
            continue
        parents = {canonicalize_name(p.split(" (")[0]) for p in locked[name]["via"]}
        assert DIRECT not in locked[name]["via"] and parents and parents <= set(locked), \
            f"{name} (test extra) is in the lock via {locked[name]['via']}, not through a runtime package"
