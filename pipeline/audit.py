"""`mixwright audit`: any JSONL / JSONL.gz / Parquet corpus against a benchmark spec.

It reads the corpus with the pipeline's sharded reader, runs `ContaminationFilter` (annotate only)
on the configured engine, and writes the contamination reports into the output folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from decontam.benchmarks import load_benchmarks
from pipeline.config import DecontamConfig, EngineConfig, InputConfig, resolve_path
from pipeline.contamination_report import write_contamination_reports
from pipeline.engine import configure_logging, default_workers, run_steps
from stages.decontam import ContaminationFilter
from stages.reader import ShardReader, cut_shards


def run_audit(
    spec: Path,
    corpus: list[str],
    output: Path,
    config: DecontamConfig,
    engine: EngineConfig,
    text_field: str = "text",
    id_field: str = "id",
    console: Console | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Audit `corpus` (JSONL or Parquet files or globs) against the benchmarks of `spec`."""
    console = console or Console()
    spec = resolve_path(spec).resolve()
    benchmarks = load_benchmarks(spec)  # errors before any work starts
    config = config.model_copy(update={"benchmarks": str(spec), "action": "annotate"})
    input_config = InputConfig(paths=list(corpus), text_field=text_field, id_field=id_field)
    output = Path(output)
    work = output / "audit_work"
    shutil.rmtree(work, ignore_errors=True)  # a rerun must not reuse matches of another spec or corpus
    configure_logging(work / "audit.log")
    shards = cut_shards(input_config, min_shards=default_workers(engine))
    if shards:
        steps = [
            ShardReader(shards, input_config, str(work / "quarantine"), str(work / "counts")),
            ContaminationFilter(config, work / "matches"),
        ]
        run_steps("audit", steps, len(shards), engine, work / "logs", show_progress)
    counts = [json.loads(p.read_text()) for p in sorted((work / "counts").glob("*.json"))]
    scanned = sum(c["documents"] for c in counts)
    extra = {"records": sum(c["records"] for c in counts), "quarantined": sum(c["quarantined"] for c in counts)}
    summary = write_contamination_reports(work / "matches", scanned, benchmarks, output, config, extra)
    _print_summary(console, summary, output)
    return summary


def _print_summary(console: Console, summary: dict[str, Any], output: Path) -> None:
    table = Table(title="Contamination (LCS rule)")
    table.add_column("benchmark", overflow="fold")
    for column in ("items", "too short", "items hit", "docs hit", "item rate"):
        table.add_column(column, justify="right", no_wrap=True)
    for name, b in summary["benchmarks"].items():
        short = "-" if b["items_too_short"] is None else f"{b['items_too_short']:,}"
        table.add_row(
            Text(name), f"{b['items']:,}", short, f"{b['items_hit']:,}", f"{b['docs_hit']:,}", f"{100 * b['rate']:.2f}%"
        )
    console.print(table)
    console.print(
        f"{summary['docs_scanned']:,} documents scanned ({summary.get('quarantined', 0):,} records quarantined), "
        f"{summary['docs_contaminated']:,} contaminated; reports in {output}/contamination.{{parquet,json,html}}",
        markup=False,
    )
