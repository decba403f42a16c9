"""Just enough of the Dockerfile syntax to check our Dockerfile and to replay it outside a container.

Stages, their instructions (continuation lines joined, comment lines dropped as Docker drops them, even
inside a continuation), ENV pairs, exec-form arguments, and `$VAR` / `${VAR}` expansion. No heredocs,
no ARG substitution in FROM: the Dockerfile uses neither, and the tests fail if it starts to.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
LOCK = REPO / "requirements.lock"

_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case
    args: str
    line: int  # where it starts, for messages


@dataclass
class Stage:
    base: str
    name: str | None
    line: int
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def env(self, inherited: dict[str, str] | None = None) -> dict[str, str]:
        """The stage's ENV values, expanded as Docker expands them: against earlier ENV of the stage and
        what the base image sets (`inherited`, e.g. its PATH). Only the stage's own keys are returned."""
        values = dict(inherited or {})
        own: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for key, value in env_pairs(instruction.args):
                values[key] = own[key] = expand(value, values)
        return own


def logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, instruction text) with continuations joined and comment lines dropped."""
    result: list[tuple[int, str]] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not parts and (not stripped or stripped.startswith("#")):
            continue
        if parts and stripped.startswith("#"):
            continue
        if not parts:
            start = number
        if stripped.endswith("\\"):
            parts.append(stripped[:-1].strip())
            continue
        parts.append(stripped)
        result.append((start, " ".join(p for p in parts if p)))
        parts = []
    if parts:
        result.append((start, " ".join(p for p in parts if p)))
    return result


def parse(text: str) -> list[Stage]:
    stages: list[Stage] = []
    for number, line in logical_lines(text):
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name, line=number))
        elif not stages:
            if keyword != "ARG":
                raise ValueError(f"line {number}: {keyword} before the first FROM")
        else:
            stages[-1].instructions.append(Instruction(keyword, args, number))
    return stages


def stages() -> list[Stage]:
    return parse(DOCKERFILE.read_text())


def env_pairs(args: str) -> list[tuple[str, str]]:
    """`ENV A=1 B="x y"` -> [("A", "1"), ("B", "x y")]; the legacy `ENV A 1` form too."""
    words = shlex.split(args, posix=True)
    if words and "=" not in words[0]:
        return [(words[0], " ".join(words[1:]))]
    pairs = []
    for word in words:
        key, eq, value = word.partition("=")
        if not eq:
            raise ValueError(f"ENV word without '=': {word!r}")
        pairs.append((key, value))
    return pairs


def expand(value: str, env: dict[str, str]) -> str:
    return _VARIABLE.sub(lambda m: env.get(m.group(1) or m.group(2), ""), value)


def exec_form(args: str) -> list[str]:
    """The JSON array of an exec-form instruction (ENTRYPOINT, CMD, HEALTHCHECK's CMD)."""
    value = json.loads(args)
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise ValueError(f"not an exec-form array: {args!r}")
    return value


def copy_sources(instruction: Instruction) -> tuple[list[str], str, dict[str, str]]:
    """COPY's (sources, destination, --flags)."""
    words = shlex.split(instruction.args)
    flags = dict(w[2:].partition("=")[::2] for w in words if w.startswith("--"))
    paths = [w for w in words if not w.startswith("--")]
    return paths[:-1], paths[-1], flags


def healthcheck_command(stage: Stage) -> list[str] | None:
    instruction = stage.last("HEALTHCHECK")
    if instruction is None or instruction.args.upper() == "NONE":
        return None
    _, _, command = instruction.args.partition("CMD")
    return exec_form(command.strip())


def entrypoint_argv(stage: Stage) -> list[str]:
    """What the container runs with no arguments: ENTRYPOINT followed by CMD (both exec form)."""
    entrypoint = stage.last("ENTRYPOINT")
    cmd = stage.last("CMD")
    return (exec_form(entrypoint.args) if entrypoint else []) + (exec_form(cmd.args) if cmd else [])
