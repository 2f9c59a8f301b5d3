"""`mixwright audit`: any JSONL / JSONL.gz / Parquet corpus against one or more benchmark specs.

It reads the corpus with the pipeline's sharded reader, runs `ContaminationFilter` (annotate only)
on the configured engine, and writes the contamination reports into the output folder.

The work is split over documents and over benchmark items: task `rank` reads shard `rank % S` and
checks it against item partition `rank // S` (S shards, `parts` partitions of every parts-th item).
Each (document, item) pair is checked by exactly one task and a match does not depend on the other
items of the index, so the merged matches equal those of one partition. Ranks run partition by
partition, so a worker holds one partition's index at a time.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Sequence
from glob import glob, has_magic
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from decontam.benchmarks import load_specs
from pipeline.config import DecontamConfig, EngineConfig, InputConfig, resolve_path
from pipeline.contamination_report import write_contamination_reports
from pipeline.engine import configure_logging, default_workers, ensure_ray, run_steps
from pipeline.errors import ConfigError
from stages.decontam import ContaminationFilter
from stages.progress import DocProgress, counted_docs
from stages.reader import ShardReader, cut_shards, expand_inputs

# Item partitions cost CPU: each one reads and tokenizes the corpus again, and on 2,000 real documents
# against the 35k items of the 7 shared test sets the scan took ~1.4x the CPU time of one index with 2
# partitions, 1.7x with 3 and 1.8x with 4 (the build time does not change). They save memory: that
# index takes 387 MB (2 partitions: 173 MB each), and every worker holds one. So items are split
# only to fill the workers, or to keep all the workers' indexes within MEMORY_SHARE of the memory.
INDEX_BYTES_PER_ITEM = 11_000
MEMORY_SHARE = 0.25


def item_partitions(items: int, shards: int, workers: int, memory: float) -> int:
    """The automatic partition count for `items` benchmark items, `shards` corpus shards, `workers`
    workers and `memory` bytes of memory (of the machine or the Ray cluster)."""
    fill = math.ceil(workers / max(shards, 1))  # fewer shards than workers: items give each worker a task
    fit = math.ceil(items * INDEX_BYTES_PER_ITEM * workers / (MEMORY_SHARE * memory))
    return max(1, min(max(fill, fit), items))


def engine_memory(engine: EngineConfig) -> float:
    """Bytes of memory the workers share: the Ray cluster's, or this machine's."""
    if engine.kind == "ray":
        import ray

        ensure_ray(engine)
        return float(ray.cluster_resources().get("memory", 0)) or _machine_memory()
    return _machine_memory()


def _machine_memory() -> float:
    return float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def _spec_files(patterns: Sequence[str | Path]) -> list[Path]:
    """Spec paths and globs to absolute paths, each file once, in the order given."""
    files: list[Path] = []
    for pattern in map(str, patterns):
        if has_magic(pattern):
            found = sorted(glob(os.path.expanduser(pattern), recursive=True))
            if not found:
                raise ConfigError(f"audit --benchmarks: expected spec files, found nothing matching {pattern!r}")
            files += [Path(f).resolve() for f in found]
        else:
            files.append(resolve_path(pattern).resolve())  # a missing file: load_specs names it
    if not files:
        raise ConfigError("audit --benchmarks: expected at least one benchmark spec file, found none")
    return list(dict.fromkeys(files))


def run_audit(
    specs: Path | Sequence[Path],
    corpus: list[str],
    output: Path,
    config: DecontamConfig,
    engine: EngineConfig,
    text_field: str = "text",
    id_field: str = "id",
    console: Console | None = None,
    show_progress: bool = True,
    parts: int | None = None,
) -> dict[str, Any]:
    """Audit `corpus` (JSONL or Parquet files or globs) against the benchmarks of the `specs` files,
    with `parts` item partitions (None: `item_partitions`)."""
    console = console or Console()
    specs = _spec_files([specs] if isinstance(specs, (str, Path)) else specs)
    if parts is not None and parts < 1:
        raise ConfigError(f"audit --item-partitions: expected a whole number >= 1, found {parts}")
    # Every input error before any work starts: specs, benchmark files, name collisions, corpus paths.
    benchmarks = load_specs(specs)
    try:
        expand_inputs(list(corpus))
    except ConfigError as exc:
        raise ConfigError(f"audit CORPUS: {str(exc).removeprefix('input.paths: ')}") from None
    spec_names = ", ".join(map(str, specs))
    config = config.model_copy(update={"benchmarks": spec_names, "action": "annotate"})
    input_config = InputConfig(paths=list(corpus), text_field=text_field, id_field=id_field)
    output = Path(output)
    work = output / "audit_work"
    shutil.rmtree(work, ignore_errors=True)  # a rerun must not reuse matches of another spec or corpus
    configure_logging(work / "audit.log")
    workers = default_workers(engine)
    shards = cut_shards(input_config, min_shards=workers)
    items = sum(len(b.texts) for b in benchmarks)
    parts = min(parts or item_partitions(items, len(shards), workers, engine_memory(engine)), max(items, 1))
    if shards:
        tasks = len(shards) * parts
        steps = [
            # rank r reads shards[r % S] and checks item partition r // S
            ShardReader(shards * parts, input_config, str(work / "quarantine"), str(work / "counts")),
            ContaminationFilter(
                config,
                work / "matches",
                specs=[str(s) for s in specs],
                item_parts=[(rank // len(shards), parts) for rank in range(tasks)],
            ),
            DocProgress(work / "progress"),
        ]

        def docs() -> float:  # documents fully audited: each one is read by `parts` tasks
            return counted_docs(work / "progress") / parts

        run_steps("audit", steps, tasks, engine, work / "logs", show_progress, docs=docs)
    # The input counts of each shard, from its partition-0 task.
    counts = [json.loads((work / "counts" / f"{rank:05d}.json").read_text()) for rank in range(len(shards))]
    scanned = sum(c["documents"] for c in counts)
    extra = {
        "specs": [str(s) for s in specs],
        "records": sum(c["records"] for c in counts),
        "quarantined": sum(c["quarantined"] for c in counts),
        "item_partitions": parts,
    }
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
    if short := summary.get("too_short"):
        console.print(
            f"{len(short):,} items can never match (under {summary['settings']['min_tokens']} tokens; "
            f'"too short" above): listed in {output}/contamination.json (too_short) and contamination.html',
            markup=False,
        )
