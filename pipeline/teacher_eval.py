"""`mixwright teacher-eval --labels HUMAN.jsonl RUN`: how well the run's teacher agrees with people.

Human labels have the shape of the `labels` backend's records (one per document, matched by id):
{"id": ..., "domain": "<domain id>", "<dimension id>": 0-5, ...}; any field may be missing.
- domain: accuracy, macro-F1 and the confusion matrix (rows: human, columns: teacher);
- each quality dimension: Spearman, MAE, and F1 of "score >= 3" (FineWeb-Edu's report).
Written to RUN/reports/teacher_eval.{json,html}; the terminal gets tables that fit 80 columns.
"""

from __future__ import annotations

import argparse
import math
from html import escape
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from classifiers.backends.labels_file import read_records
from classifiers.students import domain_metrics, quality_metrics
from classifiers.taxonomy import Rubric, Taxonomy, load_rubric, load_taxonomy
from classifiers.teacher import LABELS_FILE, load_teacher_labels
from pipeline.docio import write_json_atomic, write_text_atomic
from pipeline.errors import ConfigError
from pipeline.rundir import RunDir

THRESHOLD = 3.0  # FineWeb-Edu keeps documents scored >= 3
F1_KEY = f"f1_at_{THRESHOLD:g}"  # the name quality_metrics gives it


def evaluate(
    teacher: dict[str, dict[str, Any]], human: list[dict[str, Any]], taxonomy: Taxonomy, rubric: Rubric
) -> dict[str, Any]:
    """Teacher labels by document id vs human records -> the report (pure; the tests call it)."""
    by_id = {str(r["id"]): r for r in human if "id" in r}
    matched = [doc_id for doc_id in sorted(by_id) if doc_id in teacher]
    report: dict[str, Any] = {"human": len(by_id), "matched": len(matched), "threshold": THRESHOLD}
    pairs = [
        (by_id[d]["domain"], teacher[d]["domain"])
        for d in matched
        if by_id[d].get("domain") in taxonomy.ids and "domain" in teacher[d]
    ]
    if pairs:
        truth, pred = zip(*pairs)
        report["domain"] = domain_metrics(truth, pred) | {"n": len(pairs)}
    report["quality"] = {}
    for dim in rubric.ids:
        pairs = [
            (float(by_id[d][dim]), float(teacher[d][f"quality_{dim}"]))
            for d in matched
            if _score(by_id[d].get(dim)) and f"quality_{dim}" in teacher[d]
        ]
        if pairs:
            truth, pred = zip(*pairs)
            report["quality"][dim] = quality_metrics(truth, pred, THRESHOLD) | {"n": len(pairs)}
    return report


def _score(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value <= 5


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def tables(report: dict[str, Any]) -> list[Table]:
    """Two narrow tables (and the largest confusions) instead of one wide one: fits 80 columns."""
    out = []
    summary = Table(
        title=f"Teacher vs human labels ({report['matched']} of {report['human']} documents)", title_justify="left"
    )
    for column in ("label", "n", "accuracy", "macro-F1"):
        summary.add_column(column, justify="left" if column == "label" else "right")
    if "domain" in report:
        d = report["domain"]
        summary.add_row("domain", str(d["n"]), _fmt(d["accuracy"]), _fmt(d["macro_f1"]))
    out.append(summary)
    quality = Table(title=f"Quality dimensions (F1 of score >= {report['threshold']:g})", title_justify="left")
    for column in ("dimension", "n", "Spearman", "MAE", "F1"):
        quality.add_column(column, justify="left" if column == "dimension" else "right", overflow="fold")
    for dim, q in report["quality"].items():
        quality.add_row(dim, str(q["n"]), _fmt(q["spearman"]), _fmt(q["mae"]), _fmt(q[F1_KEY]))
    out.append(quality)
    confusions = _top_confusions(report)
    if confusions:
        worst = Table(title="Largest confusions (human -> teacher)", title_justify="left")
        worst.add_column("human", overflow="fold")
        worst.add_column("teacher", overflow="fold")
        worst.add_column("documents", justify="right")
        for truth, pred, count in confusions:
            worst.add_row(truth, pred, str(count))
        out.append(worst)
    return out


def _top_confusions(report: dict[str, Any], k: int = 5) -> list[tuple[str, str, int]]:
    matrix = report.get("domain", {}).get("confusion", {})
    cells = [(t, p, n) for t, row in matrix.items() for p, n in row.items() if t != p]
    return sorted(cells, key=lambda c: (-c[2], c[0], c[1]))[:k]


def html_page(report: dict[str, Any], run: str) -> str:
    """A self-contained page (no scripts, no CDN); every text from the data goes through escape()."""
    rows = []
    if "domain" in report:
        d = report["domain"]
        rows.append(
            f"<tr><td>domain</td><td>{d['n']}</td><td>{_fmt(d['accuracy'])}</td><td>{_fmt(d['macro_f1'])}</td></tr>"
        )
    qrows = "".join(
        f"<tr><td>{escape(dim)}</td><td>{q['n']}</td><td>{_fmt(q['spearman'])}</td><td>{_fmt(q['mae'])}</td>"
        f"<td>{_fmt(q[F1_KEY])}</td></tr>"
        for dim, q in report["quality"].items()
    )
    matrix = report.get("domain", {}).get("confusion", {})
    labels = sorted(set(matrix) | {p for row in matrix.values() for p in row})
    head = "".join(f"<th>{escape(label)}</th>" for label in labels)
    body = "".join(
        f"<tr><th>{escape(t)}</th>" + "".join(f"<td>{matrix.get(t, {}).get(p, '')}</td>" for p in labels) + "</tr>"
        for t in labels
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Teacher vs human labels: {escape(run)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin-bottom:2em}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}th:first-child{{text-align:left}}</style></head>
<body><h1>Teacher vs human labels</h1><p>Run: {escape(run)}. {report["matched"]} of {report["human"]}
human-labelled documents matched by id.</p>
<h2>Domain</h2><table><tr><th>label</th><th>n</th><th>accuracy</th><th>macro-F1</th></tr>{"".join(rows)}</table>
<h2>Quality dimensions</h2><table><tr><th>dimension</th><th>n</th><th>Spearman</th><th>MAE</th>
<th>F1 of score &gt;= {report["threshold"]:g}</th></tr>{qrows}</table>
<h2>Domain confusion (rows: human, columns: teacher)</h2><table><tr><th></th>{head}</tr>{body}</table>
</body></html>
"""


def cmd_teacher_eval(args: argparse.Namespace, console: Console) -> int:
    run = RunDir(Path(args.run))
    labels_file = run.annotations / LABELS_FILE
    if not labels_file.is_file():
        raise ConfigError(f"RUN {args.run}: {labels_file} does not exist; run phase P2 (mixwright run) first")
    try:
        human = read_records(Path(args.labels))
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigError(f"--labels {args.labels}: {exc}") from None
    report = evaluate(load_teacher_labels(labels_file, key="id"), human, load_taxonomy(), load_rubric())
    if not report["matched"]:
        raise ConfigError(f"--labels {args.labels}: no record's id matches a document labelled in {args.run}")
    folder = Path(args.output) if args.output else run.reports
    write_json_atomic(folder / "teacher_eval.json", report)
    write_text_atomic(folder / "teacher_eval.html", html_page(report, str(args.run)))
    out = Console()
    for table in tables(report):
        out.print(table)
    console.print(f"written to {folder / 'teacher_eval.json'} and {folder / 'teacher_eval.html'}", soft_wrap=True)
    return 0
