"""The moderation evaluator: its figures on a tiny set, the shipped set, the CLI."""

from __future__ import annotations

import io
import json
from collections import Counter

import pytest

from gateway_app import cli
from gateway_app.moderation.checks import CHECK_NAMES
from gateway_app.moderation.evaluate import DEFAULT_SET, evaluate, format_report, label_sizes, load_set, main

TINY = [
    {"id": "a", "text": "Call me at +44 20 7946 0123.", "labels": ["pii"]},                    # TP
    {"id": "b", "text": "Order 100234567 shipped.", "labels": ["pii"]},                         # FN
    {"id": "c", "text": "Mail me: bob@example.com", "labels": []},                             # FP
    {"id": "d", "text": "The weather is nice today.", "labels": []},                            # TN
    {"id": "e", "text": "", "labels": ["empty"], "refusal": True},                              # empty TP, refusal FP
    {"id": "f", "text": "Here are the steps", "labels": ["truncated"], "finish_reason": "length"},  # TP
]


def write(tmp_path, lines) -> str:
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n", encoding="utf-8")
    return str(path)


def test_evaluate_counts_each_check(tmp_path):
    cases = load_set(write(tmp_path, TINY))
    assert [c.id for c in cases] == ["a", "b", "c", "d", "e", "f"]
    counts = evaluate(cases)
    p = counts["pii"]
    assert (p.tp, p.fp, p.fn, p.tn) == (1, 1, 1, 3)
    assert p.precision == 0.5 and p.recall == 0.5
    assert p.false_positives == ["c"] and p.false_negatives == ["b"]
    r = counts["refusal"]
    assert (r.tp, r.fp, r.fn, r.tn) == (0, 1, 0, 5)
    assert r.precision == 0.0 and r.recall is None  # no positives in the set: recall undefined
    assert (counts["empty"].tp, counts["empty"].tn) == (1, 5)
    assert (counts["truncated"].tp, counts["truncated"].tn) == (1, 5)
    w = counts["wordlist"]
    assert (w.tp, w.fp, w.fn, w.tn) == (0, 0, 0, 6) and w.precision is None


def test_report_lists_sizes_and_figures(tmp_path):
    cases = load_set(write(tmp_path, TINY))
    assert label_sizes(cases) == Counter({"pii": 2, "(clean)": 2, "empty": 1, "truncated": 1})
    report = format_report(cases, evaluate(cases), show_errors=True)
    assert report.splitlines()[0] == "6 replies; per label: pii 2, empty 1, truncated 1, (clean) 2"
    assert "pii             1    1    1    3      0.500    0.500" in report
    assert "wordlist        0    0    0    6          -        -" in report
    assert "pii false positives: c" in report and "pii false negatives: b" in report


def test_the_input_fields_reach_the_checks(tmp_path):
    line = {"id": "x", "text": "Bien sûr ! Voici un résumé rapide de la réunion de ce matin.",
            "labels": ["language"],
            "expected_language": "en", "previous_replies": ["a", "b"], "max_chars": 10,
            "user_message": "Summary please"}
    data = load_set(write(tmp_path, [line]))[0].data
    assert (data.expected_language, data.previous_replies, data.max_chars) == ("en", ("a", "b"), 10)
    assert data.user_message == "Summary please" and data.refused is False


@pytest.mark.parametrize("bad", [
    '{"id": "x", "text": "hi", "labels": ["toxicity"]}',
    '{"id": "x", "labels": []}',
    "not json",
])
def test_bad_lines_are_reported_with_their_number(tmp_path, bad, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "ok", "text": "fine", "labels": []}\n' + bad + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2"):
        load_set(path)
    assert main(["eval", str(path)]) == 2
    assert "line 2" in capsys.readouterr().err


def test_main_prints_the_report(tmp_path):
    out = io.StringIO()
    assert main(["eval", write(tmp_path, TINY), "--errors"], out=out) == 0
    assert "precision" in out.getvalue() and "pii false negatives: b" in out.getvalue()


def test_the_cli_dispatches_moderation_eval(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["moderation", "eval", write(tmp_path, TINY)])
    assert exit_.value.code == 0
    assert "6 replies" in capsys.readouterr().out


def test_the_shipped_set():
    lines = [json.loads(raw) for raw in DEFAULT_SET.read_text(encoding="utf-8").splitlines() if raw.strip()]
    assert len(lines) >= 200
    assert len({line["id"] for line in lines}) == len(lines)
    labels = Counter(label for line in lines for label in line["labels"])
    assert set(labels) <= set(CHECK_NAMES)
    assert set(labels) == set(CHECK_NAMES)  # every check has positives
    assert sum(1 for line in lines if not line["labels"]) >= 80
    other_languages = [line for line in lines if not line["labels"]
                       and (line.get("expected_language") or "en")[:2] != "en"]
    assert len(other_languages) >= 10
    assert load_set(DEFAULT_SET)  # parses with the evaluator's own rules


def test_the_shipped_set_keeps_its_figures():
    """The checks' figures on the shipped set: a change that loses precision or recall shows here."""
    counts = evaluate(load_set(DEFAULT_SET))
    for name, c in counts.items():
        assert c.precision is not None and c.precision >= 0.9, name
        assert c.recall is not None and c.recall >= 0.85, name
