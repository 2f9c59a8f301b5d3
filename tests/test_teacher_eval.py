"""`mixwright teacher-eval` (teacher vs human labels) and `mixwright plan --run` (measured teacher speed)."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from classifiers.annotations import Annotations
from classifiers.taxonomy import load_rubric, load_taxonomy
from classifiers.teacher import save_annotations
from pipeline.capacity import measured_teacher_speed
from pipeline.cli import main
from pipeline.teacher_eval import evaluate, tables

TAXONOMY, RUBRIC = load_taxonomy(), load_rubric()
DIMS = RUBRIC.ids


def teacher_labels(n: int) -> dict[str, dict]:
    """Document i: domain i % 3 of the taxonomy, every dimension scored i % 6 (+0.4 on odd documents)."""
    return {
        f"doc{i}": {"domain": TAXONOMY.ids[i % 3], **{f"quality_{d}": (i % 6) + 0.4 * (i % 2) for d in DIMS}}
        for i in range(n)
    }


def human_labels(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        domain = TAXONOMY.ids[i % 3] if i % 5 else TAXONOMY.ids[5]  # every fifth document disagrees
        rows.append({"id": f"doc{i}", "domain": domain, **{d: i % 6 for d in DIMS}})
    return rows + [{"id": "unlabelled-by-teacher", "domain": TAXONOMY.ids[0]}]


def test_metrics_against_hand_counts():
    report = evaluate(teacher_labels(30), human_labels(30), TAXONOMY, RUBRIC)
    assert report["matched"] == 30 and report["human"] == 31
    domain = report["domain"]
    assert domain["n"] == 30 and domain["accuracy"] == pytest.approx(24 / 30)
    assert domain["confusion"][TAXONOMY.ids[5]] == {TAXONOMY.ids[0]: 2, TAXONOMY.ids[1]: 2, TAXONOMY.ids[2]: 2}
    for dim in DIMS:
        q = report["quality"][dim]
        assert q["n"] == 30 and q["mae"] == pytest.approx(0.2) and q["spearman"] > 0.95
        assert q["f1_at_3"] == 1.0  # +0.4 never crosses 3 from below (2.4 < 3), so ">= 3" agrees everywhere


def test_terminal_tables_fit_80_columns():
    report = evaluate(teacher_labels(30), human_labels(30), TAXONOMY, RUBRIC)
    buffer = io.StringIO()
    console = Console(file=buffer, width=80, force_terminal=False)
    for table in tables(report):
        console.print(table)
    lines = buffer.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80
    text = buffer.getvalue()
    assert "0.800" in text and "Spearman" in text and "Largest confusions" in text and "…" not in text


def test_command_writes_json_and_a_safe_html_page(tmp_path, capsys):
    run = tmp_path / "run<b>x</b>"
    labels = teacher_labels(12)
    annotations = Annotations(labels={i: {"id": doc_id, **lab} for i, (doc_id, lab) in enumerate(labels.items())})
    save_annotations(annotations, run / "annotations")
    human = tmp_path / "human.jsonl"
    human.write_text("\n".join(json.dumps(r) for r in human_labels(12)) + "\n")
    assert main(["teacher-eval", "--labels", str(human), str(run)]) == 0
    report = json.loads((run / "reports" / "teacher_eval.json").read_text())
    assert report["matched"] == 12 and report["domain"]["accuracy"] == pytest.approx(9 / 12)
    page = (run / "reports" / "teacher_eval.html").read_text()
    assert "run&lt;b&gt;x&lt;/b&gt;" in page and "<b>x" not in page
    assert "<script" not in page and "http" not in page  # self-contained: no CDN
    assert "macro-F1" in capsys.readouterr().out
    assert main(["teacher-eval", "--labels", str(tmp_path / "missing.jsonl"), str(run)]) == 2
    assert main(["teacher-eval", "--labels", str(human), str(tmp_path / "no-run")]) == 2


def test_plan_uses_the_measured_teacher_speed(tmp_path, capsys):
    report = {"throughput": {"uncached_prompt_tokens_per_s": 40_000.0, "gpus": 2}}
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "report.json").write_text(json.dumps(report))
    assert measured_teacher_speed(tmp_path) == 20_000.0
    assert main(["plan", "--tokens", "1B", "--run", str(tmp_path)]) == 0
    assert "measured" in capsys.readouterr().out
    (tmp_path / "annotations" / "report.json").write_text(json.dumps({"throughput": {"gpus": None}}))
    assert main(["plan", "--tokens", "1B", "--run", str(tmp_path)]) == 2
