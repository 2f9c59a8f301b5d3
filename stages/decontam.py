"""P5 decontamination: the exact LCS rule against benchmark test sequences (see decontam/).

`ContaminationFilter` tags every document with `metadata["contamination"]` (its matches, [] when
clean) and, with `action: drop`, sends contaminated ones to rejected/decontam (reason
"contaminated"); with `action: annotate` it keeps them. Every task writes its match rows to
matches_dir/<rank>.parquet, which the audit reports read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.filters.base_filter import BaseFilter

from decontam.benchmarks import item_partition, load_specs
from decontam.index import BenchmarkIndex
from decontam.lcs import Rule
from decontam.tokenize import load_tokenizer
from pipeline.config import DecontamConfig, resolve_path
from pipeline.docio import AtomicParquetWriter, RejectWriter, task_file

MATCH_FIELDS = [
    ("doc_id", pa.string()),
    ("benchmark", pa.string()),
    ("item_id", pa.string()),
    ("lcs", pa.int64()),
    ("window_tokens", pa.int64()),
    ("item_tokens", pa.int64()),
    ("start_char", pa.int64()),
    ("end_char", pa.int64()),
]
MATCH_SCHEMA = pa.schema(MATCH_FIELDS)  # contamination.parquet, as in DESIGN.md
# Task files also keep the matched text, so the HTML report needs no second pass over the corpus.
TASK_MATCH_SCHEMA = pa.schema([*MATCH_FIELDS, ("text", pa.string())])
_TEXT_CHARS = 4000
BATCH_SIZE = 256

# The index of the latest setting and item partition, per worker process: datatrove unpickles the
# step for every task, and building the index for large benchmarks takes seconds. One entry only: an
# audit runs its item partitions one after another, so a worker holds one partition's index at a time.
_INDEXES: dict[tuple[Any, ...], BenchmarkIndex] = {}


def rule_of(config: DecontamConfig) -> Rule:
    return Rule(mode=config.mode, window_factor=config.window_factor, min_tokens=config.min_tokens, ratio=config.ratio)


def benchmark_index(specs: list[Path], config: DecontamConfig, part: int = 0, parts: int = 1) -> BenchmarkIndex:
    """The index of the specs' items, or of item partition `part` of `parts` (see item_partition)."""
    rule = rule_of(config)
    key = (tuple((str(s), s.stat().st_mtime_ns) for s in specs), rule, config.tokenizer, part, parts)
    if key not in _INDEXES:
        _INDEXES.clear()
        benchmarks = item_partition(load_specs(specs), part, parts)
        _INDEXES[key] = BenchmarkIndex(benchmarks, rule, load_tokenizer(config.tokenizer))
    return _INDEXES[key]


class ContaminationFilter(BaseFilter):
    name = "🧪 LCS decontamination"

    def __init__(
        self,
        config: DecontamConfig,
        matches_dir: str | Path,
        exclusion_writer: RejectWriter | None = None,
        specs: list[str] | None = None,
        item_parts: list[tuple[int, int]] | None = None,
    ):
        """`specs` replaces config.benchmarks with several spec files; `item_parts[rank]` is the
        (part, parts) item partition task `rank` checks (default: all items)."""
        # Batches: the index's compiled filter runs once per batch (a call costs ~25 us of checks).
        super().__init__(exclusion_writer, batch_size=BATCH_SIZE)
        self.config = config
        # Resolved now, on the driver: workers may run in another folder.
        self.specs = [str(resolve_path(s).resolve()) for s in (specs or [config.benchmarks])]
        self.item_parts = item_parts
        self.matches_dir = str(matches_dir)
        self._index: BenchmarkIndex | None = None
        self._matches: AtomicParquetWriter | None = None

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        # every run: one process may run several ranks, of different item partitions, on this object
        part, parts = self.item_parts[rank] if self.item_parts else (0, 1)
        self._index = benchmark_index([Path(s) for s in self.specs], self.config, part, parts)
        with AtomicParquetWriter(task_file(self.matches_dir, rank), TASK_MATCH_SCHEMA) as self._matches:
            yield from super().run(data, rank, world_size)

    def filter_batch(self, batch: list[Document]) -> list[bool | tuple[bool, str]]:
        return [
            self._decide(doc, matches) for doc, matches in zip(batch, self._index.scan_many([d.text for d in batch]))
        ]

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return self.filter_batch([doc])[0]

    def _decide(self, doc: Document, matches: list[dict[str, Any]]) -> bool | tuple[bool, str]:
        doc.metadata["contamination"] = matches
        if not matches:
            return True
        self.stat_update("contaminated")
        for match in matches:
            self.stat_update(f"matches_{match['benchmark']}")
            text = doc.text[match["start_char"] : match["end_char"]][:_TEXT_CHARS]
            self._matches.write({"doc_id": doc.id, **match, "text": text})
        if self.config.action == "annotate":
            return True
        top = max(matches, key=lambda m: m["lcs"] / m["item_tokens"])
        doc.metadata["reject_details"] = {**top, "matches": len(matches)}
        return False, "contaminated"
