"""Domain-mix report: RUN/reports/domain_mix.json, a self-contained domain_mix.html, terminal tables.

Everything is read back from files the run wrote (mixture/manifest.json, reports/funnel.json), so
the report can be rebuilt for any finished run. The HTML inlines plotly.js (works offline). Text
from documents and configs is HTML-escaped everywhere, chart labels included: plotly renders
labels as a subset of HTML, and it already writes its JSON with `<`, `>` and `/` as \\u escapes,
so no string can close the page's <script> blocks.
"""

from __future__ import annotations

import json
import os
from html import escape
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots
from rich.table import Table
from rich.text import Text

from pipeline.docio import write_json_atomic, write_text_atomic
from pipeline.rundir import RunDir


def build_domain_mix(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The report's data: per-domain before/target/after, the funnel and quality histograms."""
    run = RunDir(Path(run_dir))
    manifest_path = run.mixture / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path} is missing: the mixture phase (P7) has not finished for this run")
    manifest = json.loads(manifest_path.read_text())
    funnel_path = run.reports / "funnel.json"
    funnel = json.loads(funnel_path.read_text()) if funnel_path.is_file() else None
    domains = [
        {"domain": name, **row}
        for name, row in sorted(manifest["domains"].items(), key=lambda item: -item[1]["tokens_before"])
    ]
    return {
        "seed": manifest["seed"],
        "mode": manifest["mode"],
        "selection": manifest["selection"],
        "config_hash": manifest["config_hash"],
        "warnings": manifest["warnings"],
        "totals": manifest["totals"],
        "quality_edges": manifest["quality_edges"],
        "domains": domains,
        "funnel": funnel,
    }


def _shares_figure(mix: dict[str, Any]) -> go.Figure:
    labels = [escape(row["domain"]) for row in mix["domains"]]
    figure = go.Figure()
    for key, title in (("share_before", "before"), ("target_share", "target"), ("share_after", "after")):
        values = [100 * (row[key] or 0.0) for row in mix["domains"]]
        figure.add_bar(name=title, x=labels, y=values, hovertemplate="%{x}: %{y:.2f}%<extra>" + title + "</extra>")
    figure.update_layout(title="Token share per domain (%)", barmode="group", yaxis_title="% of tokens")
    return figure


def _funnel_figure(funnel: dict[str, Any]) -> go.Figure:
    stages = [escape(stage["name"]) for stage in funnel["stages"]]
    figure = go.Figure()
    figure.add_bar(name="kept", x=stages, y=[stage["kept"] for stage in funnel["stages"]])
    figure.add_bar(name="rejected", x=stages, y=[stage["rejected"] for stage in funnel["stages"]])
    figure.update_layout(title="Documents per stage", barmode="stack", yaxis_title="documents")
    return figure


def _quality_figure(mix: dict[str, Any]) -> go.Figure:
    edges = mix["quality_edges"]
    bins = [f"{lo:g}-{hi:g}" for lo, hi in zip(edges[:-1], edges[1:])] + ["unscored"]
    labels = [escape(row["domain"]) for row in mix["domains"]]
    figure = make_subplots(rows=1, cols=2, subplot_titles=("before", "after"), shared_yaxes=True)
    for col, key in ((1, "quality_hist_before"), (2, "quality_hist_after")):
        fractions = []
        for row in mix["domains"]:
            hist = row[key] or {"counts": [0] * (len(bins) - 1), "missing": 0}
            counts = hist["counts"] + [hist["missing"]]
            total = sum(counts) or 1
            fractions.append([n / total for n in counts])
        figure.add_trace(
            go.Heatmap(z=fractions, x=bins, y=labels, coloraxis="coloraxis", hovertemplate="%{y} %{x}: %{z:.1%}<extra></extra>"),
            row=1,
            col=col,
        )
    figure.update_layout(
        title="Quality distribution per domain (fraction of the domain's documents)",
        coloraxis={"colorscale": "Blues"},
        height=max(320, 28 * len(labels) + 160),
    )
    return figure


def _table_html(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _domain_rows(mix: dict[str, Any]) -> list[list[str]]:
    return [
        [
            row["domain"],
            f"{row['docs_before']:,}",
            f"{row['tokens_before']:,}",
            _pct(row["share_before"]),
            _pct(row["target_share"]),
            "-" if row["rate"] is None else f"{row['rate']:.3f}",
            "-" if row["quality_cutoff"] is None else f"{row['quality_cutoff']:g}",
            f"{row['docs_after']:,}",
            f"{row['tokens_after']:,}",
            _pct(row["share_after"]),
            f"{row['downsampled_away']:,}",
            f"{row['upsampled_copies']:,}",
        ]
        for row in mix["domains"]
    ]


_DOMAIN_HEADER = [
    "domain", "docs before", "tokens before", "share before", "target", "rate", "quality cutoff",
    "docs after", "tokens after", "share after", "sampled away", "repeat copies",
]  # fmt: skip
_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
    "td:first-child,th:first-child{text-align:left}.warn{color:#a33}"
)


def render_html(mix: dict[str, Any]) -> str:
    figures = [_shares_figure(mix)]
    if mix["funnel"] is not None:
        figures.append(_funnel_figure(mix["funnel"]))
    figures.append(_quality_figure(mix))
    # plotly.js is inlined once, with the first chart; the others reuse it.
    charts = [
        figure.to_html(full_html=False, include_plotlyjs=index == 0, config={"responsive": True})
        for index, figure in enumerate(figures)
    ]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>mixwright domain mix</title>',
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Domain mix</h1>",
        f"<p>mode {escape(str(mix['mode']))}, selection {escape(str(mix['selection']))}, seed "
        f"{escape(str(mix['seed']))}, config {escape(str(mix['config_hash']))}</p>",
    ]
    parts += [f'<p class="warn">{escape(w)}</p>' for w in mix["warnings"]]
    parts += [_table_html(_DOMAIN_HEADER, _domain_rows(mix)), charts[0]]
    if mix["funnel"] is not None:
        reasons = [
            [stage["name"], reason, f"{n:,}"]
            for stage in mix["funnel"]["stages"]
            for reason, n in sorted(stage["reasons"].items(), key=lambda item: (-item[1], item[0]))
        ]
        parts += ["<h2>Funnel</h2>", charts[1], _table_html(["stage", "reason", "documents"], reasons)]
    parts += ["<h2>Quality</h2>", charts[-1], "</body></html>"]
    return "\n".join(parts)


def write_domain_mix(run_dir: str | os.PathLike) -> Path:
    """Writes RUN/reports/domain_mix.json and domain_mix.html; returns the HTML path."""
    mix = build_domain_mix(run_dir)
    reports = RunDir(Path(run_dir)).reports
    write_json_atomic(reports / "domain_mix.json", mix)
    html_path = reports / "domain_mix.html"
    write_text_atomic(html_path, render_html(mix))
    return html_path


def domain_mix_tables(run_dir: str | os.PathLike) -> list[Table]:
    """The domain mix as rich tables for `mixwright report` (domain names are never read as markup)."""
    mix = build_domain_mix(run_dir)
    table = Table(title="Domain mix: before, target, after", title_justify="left")
    for column in _DOMAIN_HEADER:
        table.add_column(column, justify="left" if column == "domain" else "right")
    for row in _domain_rows(mix):
        table.add_row(*(Text(cell) for cell in row))
    tables = [table]
    if mix["warnings"]:
        warnings = Table(title="Mixture warnings", title_justify="left", show_header=False)
        warnings.add_column("warning")
        for warning in mix["warnings"]:
            warnings.add_row(Text(warning, style="yellow"))
        tables.append(warnings)
    return tables
