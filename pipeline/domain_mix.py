"""Domain-mix report of a mixture: per group (domain, or any `group_by`), the share before, the
target and the share after, the tokens added by repeats, the documents sampled away with their
quality, and why a target could not be met. RUN/reports/domain_mix.{json,html} for the main
mixture, RUN/mixtures/<name>/domain_mix.{json,html} for a named one; rich tables for the terminal.

Everything is read back from files the run wrote (the mixture's manifest.json, reports/funnel.json),
so the report can be rebuilt for any finished run. The HTML inlines plotly.js (works offline). Text
from documents and configs is HTML-escaped everywhere, chart labels included: plotly renders
labels as a subset of HTML, and it already writes its JSON with `<`, `>` and `/` as \\u escapes,
so no string can close the page's <script> blocks.
"""

from __future__ import annotations

import json
import os
import shutil
from html import escape
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots
from rich.table import Table
from rich.text import Text

from pipeline.docio import write_json_atomic, write_text_atomic
from pipeline.rundir import RunDir


def build_mix_report(mixture_dir: str | os.PathLike, funnel: dict[str, Any] | None = None) -> dict[str, Any]:
    """One mixture's report data: per-group before/target/after, the domain rollup, token files."""
    manifest_path = Path(mixture_dir) / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{manifest_path} is missing: the mixture phase (P7) has not finished for this run")
    manifest = json.loads(manifest_path.read_text())
    groups = [
        {"group": name, **row}
        for name, row in sorted(manifest["groups"].items(), key=lambda item: (-item[1]["tokens_before"], item[0]))
    ]
    keep = ("seed", "mode", "selection", "config_hash", "warnings", "totals", "quality_edges", "group_by", "tokenized")
    report = {key: manifest.get(key) for key in keep}
    return {**report, "groups": groups, "domains": manifest["domains"], "funnel": funnel}


def build_domain_mix(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The main mixture's report data, with the run's funnel."""
    run = RunDir(Path(run_dir))
    funnel_path = run.reports / "funnel.json"
    funnel = json.loads(funnel_path.read_text()) if funnel_path.is_file() else None
    return build_mix_report(run.mixture, funnel)


def mean_quality(hist: dict[str, Any] | None, edges: list[float]) -> float | None:
    """Mean quality of a histogram's scored documents (bin midpoints); None when it has none."""
    if not hist or not sum(hist["counts"]):
        return None
    mids = [(lo + hi) / 2 for lo, hi in zip(edges[:-1], edges[1:])]
    return sum(m * n for m, n in zip(mids, hist["counts"])) / sum(hist["counts"])


def _shares_figure(mix: dict[str, Any]) -> go.Figure:
    labels = [escape(row["group"]) for row in mix["groups"]]
    figure = go.Figure()
    for key, title in (("share_before", "before"), ("target_share", "target"), ("share_after", "after")):
        values = [100 * (row[key] or 0.0) for row in mix["groups"]]
        figure.add_bar(name=title, x=labels, y=values, hovertemplate="%{x}: %{y:.2f}%<extra>" + title + "</extra>")
    title = f"Token share per group ({escape(' / '.join(mix['group_by']))}, %)"
    figure.update_layout(title=title, barmode="group", yaxis_title="% of tokens")
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
    labels = [escape(row["group"]) for row in mix["groups"]]
    panels = (
        ("before", "quality_hist_before"),
        ("sampled away", "quality_hist_sampled_away"),
        ("after", "quality_hist_after"),
    )
    figure = make_subplots(rows=1, cols=3, subplot_titles=[title for title, _ in panels], shared_yaxes=True)
    for col, (_, key) in enumerate(panels, start=1):
        fractions = []
        for row in mix["groups"]:
            hist = row[key] or {"counts": [0] * (len(bins) - 1), "missing": 0}
            counts = hist["counts"] + [hist["missing"]]
            total = sum(counts) or 1
            fractions.append([n / total for n in counts])
        figure.add_trace(
            go.Heatmap(
                z=fractions, x=bins, y=labels, coloraxis="coloraxis", hovertemplate="%{y} %{x}: %{z:.1%}<extra></extra>"
            ),
            row=1,
            col=col,
        )
    figure.update_layout(
        title="Quality distribution per group (fraction of the group's documents)",
        coloraxis={"colorscale": "Blues"},
        height=max(320, 28 * len(labels) + 160),
    )
    return figure


def table_html(header: list[str] | tuple[str, ...], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _quality(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


# Where one table does not fit the terminal, the group table is shown as shares, then counts.
_SHARE_COLUMNS = ("group", "share before", "target", "share after", "rate", "quality cutoff")
_COUNT_COLUMNS = (
    "group", "docs before", "docs after", "tokens after", "repeat tokens", "sampled away", "their quality",
)  # fmt: skip


def _cells(row: dict[str, Any], edges: list[float]) -> dict[str, str]:
    return {
        "group": row["group"],
        "docs before": f"{row['docs_before']:,}",
        "tokens before": f"{row['tokens_before']:,}",
        "share before": pct(row["share_before"]),
        "target": pct(row["target_share"]),
        "rate": "-" if row["rate"] is None else f"{row['rate']:.3f}",
        "quality cutoff": "-" if row["quality_cutoff"] is None else f"{row['quality_cutoff']:g}",
        "docs after": f"{row['docs_after']:,}",
        "tokens after": f"{row['tokens_after']:,}",
        "share after": pct(row["share_after"]),
        "repeat tokens": f"{row['repeat_tokens']:,}",
        "sampled away": f"{row['downsampled_away']:,}",
        "their quality": _quality(mean_quality(row["quality_hist_sampled_away"], edges)),
    }


_GROUP_HEADER = [
    "group", "docs before", "tokens before", "share before", "target", "rate", "quality cutoff",
    "docs after", "tokens after", "share after", "repeat tokens", "sampled away", "their quality",
]  # fmt: skip


def _group_rows(mix: dict[str, Any]) -> list[list[str]]:
    return [[_cells(row, mix["quality_edges"])[column] for column in _GROUP_HEADER] for row in mix["groups"]]


def _notes(mix: dict[str, Any]) -> list[tuple[str, str]]:
    """(group, why its target could not be met), for the groups that have a reason."""
    return [(row["group"], row["note"]) for row in mix["groups"] if row.get("note")]


PAGE_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
    "td:first-child,th:first-child{text-align:left}.warn{color:#a33}"
)


def _tokenized_html(tokenized: dict[str, Any]) -> str:
    rows = [[group, f"{g['documents']:,}", f"{g['tokens']:,}"] for group, g in sorted(tokenized["groups"].items())]
    return (
        f"<h2>Token files</h2><p>{escape(tokenized['format'])} format in {escape(tokenized['folder'])}/, tokenizer "
        f"{escape(tokenized['tokenizer'])}: {tokenized['total_tokens']:,} tokens</p>"
        + table_html(["group", "documents", "tokens"], rows)
    )


def render_html(mix: dict[str, Any], title: str = "Domain mix") -> str:
    figures = [_shares_figure(mix)]
    if mix["funnel"] is not None:
        figures.append(_funnel_figure(mix["funnel"]))
    figures.append(_quality_figure(mix))
    # plotly.js is inlined once, with the first chart; the others reuse it.
    charts = [
        figure.to_html(full_html=False, include_plotlyjs=index == 0, config={"responsive": True})
        for index, figure in enumerate(figures)
    ]
    totals = mix["totals"]
    parts = [
        "<!DOCTYPE html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>mixwright {escape(title)}</title>',
        f"<style>{PAGE_STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<p>grouped by {escape(' / '.join(mix['group_by']))}; mode {escape(str(mix['mode']))}, selection "
        f"{escape(str(mix['selection']))}, seed {escape(str(mix['seed']))}, "
        f"config {escape(str(mix['config_hash']))}</p>",
        f"<p>{totals['tokens_before']:,} tokens before, {totals['tokens_after']:,} after, of which "
        f"{totals['repeat_tokens']:,} from repeats; {totals['docs_before'] - totals['originals_after']:,} documents "
        "sampled away (their mean quality per group in the last column)</p>",
    ]
    parts += [f'<p class="warn">{escape(w)}</p>' for w in mix["warnings"]]
    parts += [table_html(_GROUP_HEADER, _group_rows(mix))]
    if _notes(mix):
        parts += ["<h2>Why a target was not met</h2>", table_html(["group", "reason"], _notes(mix))]
    parts.append(charts[0])
    if mix["tokenized"]:
        parts.append(_tokenized_html(mix["tokenized"]))
    if mix["funnel"] is not None:
        reasons = [
            [stage["name"], reason, f"{n:,}"]
            for stage in mix["funnel"]["stages"]
            for reason, n in sorted(stage["reasons"].items(), key=lambda item: (-item[1], item[0]))
        ]
        parts += ["<h2>Funnel</h2>", charts[1], table_html(["stage", "reason", "documents"], reasons)]
    parts += ["<h2>Quality</h2>", charts[-1], "</body></html>"]
    return "\n".join(parts)


def _write_report(mix: dict[str, Any], folder: Path, title: str) -> Path:
    write_json_atomic(folder / "domain_mix.json", mix)
    html_path = folder / "domain_mix.html"
    write_text_atomic(html_path, render_html(mix, title))
    return html_path


def write_domain_mix(run_dir: str | os.PathLike) -> Path:
    """Writes RUN/reports/domain_mix.json and domain_mix.html; returns the HTML path."""
    return _write_report(build_domain_mix(run_dir), RunDir(Path(run_dir)).reports, "Domain mix")


def write_mixture_report(mixture_dir: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """A named mixture's domain_mix.{json,html} in `folder` (its own mixture folder)."""
    return _write_report(build_mix_report(mixture_dir), Path(folder), f"Mixture {Path(mixture_dir).name}")


def _column_widths(column: str, rows: list[dict[str, str]]) -> tuple[int, int]:
    """A number column's (narrowest, preferred) width: its longest cell, never folded, with the
    header wrapped at its longest word, or on one line."""
    cell = max((len(row[column]) for row in rows), default=1)
    return max(cell, *map(len, column.split())), max(cell, len(column))


def _rich_tables(
    title: str, columns: tuple[str, ...] | list[str], rows: list[dict[str, str]], width: int
) -> list[Table]:
    """The group column plus as many number columns as fit `width` per table: numbers are never
    folded or cut, so a narrow terminal gets more tables instead ("(1/2)" in their titles).
    Widths are set, not left to rich, whose shrinking can overshoot the terminal by a column."""
    numbers = [column for column in columns if column != "group"]
    widths = {column: _column_widths(column, rows) for column in numbers}
    longest_group = max((len(row["group"]) for row in rows), default=5)
    # 1 for the left border, 3 per column for its padding and right border
    widest = max((narrow for narrow, _ in widths.values()), default=0)
    group_width = max(5, min(24, longest_group, width - 1 - 3 - 3 - widest))
    room = width - 1 - (group_width + 3)
    chunks: list[list[str]] = [[]]
    for column in numbers:
        if chunks[-1] and sum(widths[c][0] + 3 for c in [*chunks[-1], column]) > room:
            chunks.append([])
        chunks[-1].append(column)
    tables = []
    for index, chunk in enumerate(chunks, 1):
        part = f" ({index}/{len(chunks)})" if len(chunks) > 1 else ""
        table = Table(title=title + part, title_justify="left")
        preferred = sum(widths[c][1] + 3 for c in chunk) <= room
        chosen = [widths[column][int(preferred)] for column in chunk]
        # spare room goes to the group names, up to their full length
        spare = width - 1 - 3 - sum(w + 3 for w in chosen)
        table.add_column("group", overflow="fold", width=max(group_width, min(longest_group, spare)))
        for column, column_width in zip(chunk, chosen):
            table.add_column(column, justify="right", overflow="fold", width=column_width)
        for row in rows:
            table.add_row(*(Text(row[column]) for column in ["group", *chunk]))
        tables.append(table)
    return tables


def mix_tables(mix: dict[str, Any], width: int, title: str = "Domain mix") -> list[Table]:
    """Rich tables of one mixture that fit `width` (group names are never read as markup): one
    table where all columns fit, else shares then counts, each split further where needed; then
    the reasons targets were not met, and the warnings."""
    cells = [_cells(row, mix["quality_edges"]) for row in mix["groups"]]
    heading = f"{title} by {' / '.join(mix['group_by'])}"
    tables = _rich_tables(f"{heading}: before, target, after", _GROUP_HEADER, cells, width)
    if len(tables) > 1:
        tables = [
            *_rich_tables(f"{heading}: token shares", _SHARE_COLUMNS, cells, width),
            *_rich_tables(f"{heading}: documents and tokens", _COUNT_COLUMNS, cells, width),
        ]
    if _notes(mix):
        notes = Table(title="Why a target was not met", title_justify="left")
        notes.add_column("group", overflow="fold")
        notes.add_column("reason", overflow="fold")
        for group, note in _notes(mix):
            notes.add_row(Text(group), Text(note))
        tables.append(notes)
    if mix["warnings"]:
        warnings = Table(title="Mixture warnings", title_justify="left", show_header=False)
        warnings.add_column("warning", overflow="fold")
        for warning in mix["warnings"]:
            warnings.add_row(Text(warning, style="yellow"))
        tables.append(warnings)
    return tables


def domain_mix_tables(run_dir: str | os.PathLike, width: int | None = None) -> list[Table]:
    """The main mixture as rich tables for `mixwright report`, sized for `width` (default: the terminal)."""
    return mix_tables(build_domain_mix(run_dir), width or shutil.get_terminal_size().columns)
