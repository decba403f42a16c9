"""`gateway moderation eval [path]`: each local check's precision and recall on a labelled set.

The set is JSON Lines, one reply a line:

    {"id": "pii-007", "text": "...", "labels": ["pii"], "finish_reason": "stop", "refusal": false,
     "expected_language": "en", "user_message": "...", "previous_replies": ["..."], "max_chars": 500}

`labels` names the checks that should fire on the line (none for a clean reply); the fields after it are
optional and feed the `CheckInput` (`refusal` is the provider's refusal field). Every check runs on every
line with the default `CheckSettings`; a line's firing check counts as a true positive if it is labelled,
a false positive if not, and so on.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from gateway_app.moderation.checks import CHECK_NAMES, CheckInput, CheckSettings, run_local

DEFAULT_SET = Path(__file__).resolve().parents[2] / "tests" / "moderation_set" / "replies.jsonl"


@dataclass(frozen=True)
class Case:
    id: str
    data: CheckInput
    labels: frozenset[str]


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    false_positives: list[str] = field(default_factory=list)  # ids
    false_negatives: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None


def parse_case(line: dict, number: int) -> Case:
    if not isinstance(line, dict) or not isinstance(line.get("text"), str):
        raise ValueError(f"line {number}: an object with a string `text` is needed")
    labels = line.get("labels", [])
    unknown = set(labels) - set(CHECK_NAMES)
    if unknown:
        raise ValueError(f"line {number}: unknown labels {sorted(unknown)} (checks: {', '.join(CHECK_NAMES)})")
    data = CheckInput(
        text=line["text"],
        finish_reason=line.get("finish_reason"),
        refused=bool(line.get("refusal", False)),
        expected_language=line.get("expected_language"),
        user_message=line.get("user_message"),
        previous_replies=tuple(line.get("previous_replies", ())),
        max_chars=line.get("max_chars"),
    )
    return Case(str(line.get("id", number)), data, frozenset(labels))


def load_set(path: str | Path) -> list[Case]:
    cases: list[Case] = []
    with open(path, encoding="utf-8") as lines:
        for number, raw in enumerate(lines, start=1):
            if raw.strip():
                try:
                    line = json.loads(raw)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"line {number}: not JSON ({exc.msg})") from exc
                cases.append(parse_case(line, number))
    return cases


def evaluate(cases: Iterable[Case], settings: CheckSettings | None = None,
             checks: Sequence[str] = CHECK_NAMES) -> dict[str, Counts]:
    settings = settings or CheckSettings()
    counts = {name: Counts() for name in checks}
    for case in cases:
        for result in run_local(checks, case.data, settings):
            c = counts[result.check]
            expected = result.check in case.labels
            if result.fired and expected:
                c.tp += 1
            elif result.fired:
                c.fp += 1
                c.false_positives.append(case.id)
            elif expected:
                c.fn += 1
                c.false_negatives.append(case.id)
            else:
                c.tn += 1
    return counts


def label_sizes(cases: Iterable[Case]) -> Counter[str]:
    sizes: Counter[str] = Counter()
    for case in cases:
        sizes.update(case.labels or {"(clean)"})
    return sizes


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def format_report(cases: list[Case], counts: dict[str, Counts], show_errors: bool = False) -> str:
    sizes = label_sizes(cases)
    lines = [f"{len(cases)} replies; per label: "
             + ", ".join(f"{name} {sizes[name]}" for name in [*counts, "(clean)"] if sizes[name])]
    lines.append("")
    lines.append(f"{'check':<12} {'TP':>4} {'FP':>4} {'FN':>4} {'TN':>4} {'precision':>10} {'recall':>8}")
    for name, c in counts.items():
        lines.append(f"{name:<12} {c.tp:>4} {c.fp:>4} {c.fn:>4} {c.tn:>4} "
                     f"{_ratio(c.precision):>10} {_ratio(c.recall):>8}")
    if show_errors:
        for name, c in counts.items():
            if c.false_positives:
                lines.append(f"{name} false positives: {' '.join(c.false_positives)}")
            if c.false_negatives:
                lines.append(f"{name} false negatives: {' '.join(c.false_negatives)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    out = sys.stdout if out is None else out
    parser = argparse.ArgumentParser(prog="gateway moderation", description="Moderation checks.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("eval", help="print each local check's precision and recall on a labelled set")
    run.add_argument("path", nargs="?", default=str(DEFAULT_SET), help="JSON Lines set (default: %(default)s)")
    run.add_argument("--errors", action="store_true", help="list the ids of false positives and negatives")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        cases = load_set(args.path)
    except (OSError, ValueError) as exc:
        hint = " (the default set ships with the source tree: pass a set's path)" \
            if isinstance(exc, FileNotFoundError) and args.path == str(DEFAULT_SET) else ""
        print(f"gateway moderation eval: {exc}{hint}", file=sys.stderr)
        return 2
    print(format_report(cases, evaluate(cases), show_errors=args.errors), file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
