"""`mixwright report RUN`: the run's reports as terminal tables."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from pipeline.domain_mix import domain_mix_tables
from pipeline.rundir import RunDir

# Below this width the funnel's reasons leave the table for lines of their own.
WIDE = 110


def _reasons(stage: dict) -> str:
    reasons = sorted(stage["reasons"].items(), key=lambda item: -item[1])[:3]
    return ", ".join(f"{reason} {n:,}" for reason, n in reasons)


def funnel_table(funnel: dict, width: int = WIDE) -> list[RenderableType]:
    """The funnel as one table on a wide terminal; at 80 columns, a table of counts with each
    stage's top reasons stacked below it, so no header or number is ever cut."""
    wide = width >= WIDE
    table = Table(title="Funnel: where every input document went", title_justify="left")
    table.add_column("stage", overflow="fold")
    for column in ("in", "kept", "rejected", "quarantined"):
        table.add_column(column, justify="right", no_wrap=True)
    if wide:
        table.add_column("top reasons", overflow="fold")
    below: list[RenderableType] = []
    for stage in funnel["stages"]:
        counts = [f"{stage[key]:,}" for key in ("in", "kept", "rejected", "quarantined")]
        table.add_row(Text(stage["name"]), *counts, *([Text(_reasons(stage))] if wide else []))
        if not wide and stage["reasons"]:
            below.append(Text(f"  {stage['name']}: {_reasons(stage)}", overflow="fold"))
    return [table, *below]


def language_table(funnel: dict) -> Table | None:
    """Per language: documents identified, kept in the mixture, and the stage that dropped most."""
    stages = [stage for stage in funnel["stages"] if "languages" in stage]
    if not stages:
        return None
    table = Table(title="By language (from language ID on)", title_justify="left")
    table.add_column("language", overflow="fold")
    for column in ("identified", "kept", "kept %"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("most dropped by", overflow="fold")
    first, last = stages[0]["languages"], stages[-1]["languages"]
    for language in sorted(first, key=lambda lang: -first[lang]["in"]):
        identified, kept = first[language]["in"], last.get(language, {}).get("kept", 0)
        worst = max(stages, key=lambda stage: stage["languages"].get(language, {}).get("rejected", 0))
        dropped = worst["languages"].get(language, {}).get("rejected", 0)
        table.add_row(
            Text(language),
            f"{identified:,}",
            f"{kept:,}",
            f"{100 * kept / identified:.1f}" if identified else "-",
            Text(f"{worst['name']} ({dropped:,})" if dropped else "-"),
        )
    return table


def conservation_line(funnel: dict) -> str:
    c = funnel["conservation"]
    verdict = "[green]holds[/green]" if c["holds"] else "[bold red]DOES NOT HOLD[/bold red]"
    return (
        f"conservation: input {c['input']:,} = kept {c['kept']:,} + rejected {c['rejected']:,} "
        f"+ quarantined {c['quarantined']:,}: {verdict}"
    )


def dedup_line(report: dict) -> str:
    p = report["parameters"]
    return (
        f"dedup: {report['removed']:,} of {report['documents_in']:,} documents removed as near-duplicates, "
        f"{report['clusters']:,} clusters (largest {max(map(int, report['cluster_size_histogram']), default=0)}); "
        f"{p['bands']} bands x {p['rows']} rows, threshold ~{p['lsh_threshold']}"
    )


def contamination_table(summary: dict) -> Table:
    table = Table(
        title=f"Contamination: {summary['docs_contaminated']:,} of {summary['docs_scanned']:,} documents",
        title_justify="left",
    )
    table.add_column("benchmark", overflow="fold")
    for column in ("items", "items hit", "docs hit", "items hit %"):
        table.add_column(column, justify="right", no_wrap=True)
    for name, b in sorted(summary["benchmarks"].items()):
        table.add_row(
            Text(name), f"{b['items']:,}", f"{b['items_hit']:,}", f"{b['docs_hit']:,}", f"{100 * b['rate']:.1f}"
        )
    return table


def print_report(run_dir: Path, console: Console) -> int:
    """Print every report the run has; returns the exit code (2 when the folder is not a run)."""
    run = RunDir(run_dir)
    funnel_path = run.reports / "funnel.json"
    if not funnel_path.is_file():
        console.print(f"error: {run_dir} has no reports/funnel.json: not a finished mixwright run")
        return 2
    funnel = json.loads(funnel_path.read_text())
    for renderable in funnel_table(funnel, console.width):
        console.print(renderable)
    languages = language_table(funnel)
    if languages is not None:
        console.print(languages)
    console.print(conservation_line(funnel))
    if (run.mixture / "manifest.json").is_file():
        for table in domain_mix_tables(run.root):
            console.print(table)
    dedup_path = run.reports / "dedup.json"
    if dedup_path.is_file():
        console.print(dedup_line(json.loads(dedup_path.read_text())))
    contamination_path = run.reports / "contamination.json"
    if contamination_path.is_file():
        console.print(contamination_table(json.loads(contamination_path.read_text())))
    for name in ("domain_mix.html", "contamination.html"):
        if (run.reports / name).is_file():
            console.print(f"report: {run.reports / name}")
    if run.mixture.is_dir():
        console.print(f"mixture: {run.mixture}")
    return 0
