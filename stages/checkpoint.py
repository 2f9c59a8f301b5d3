"""Phase boundaries: each per-shard phase reads task `rank` of the previous phase and writes its own.

Task files keep their rank across phases, so shard k of P1 is shard k of P3, P5 and P7, and a
rerun of a task overwrites exactly the file it owns.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from time import perf_counter
from types import TracebackType

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from pipeline.docio import DOC_SCHEMA, AtomicParquetWriter, document_row, read_documents, task_file


class TaskStats:
    """A step's per-document stats, kept in plain Python and handed to datatrove once per task.

    datatrove's `track_time()` and `stat_update()` per document cost ~1 s of CPU over the five
    per-document steps of a 23k-document run; totals stay the same, time is reported per task.
    """

    def __init__(self, step: PipelineStep):
        self.step = step
        self.seconds = 0.0
        self.counts: Counter[str] = Counter()

    def __enter__(self) -> TaskStats:
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.seconds:
            self.step.stats.time_stats.update(self.seconds, unit="task")
        for label, value in self.counts.items():
            if value:
                self.step.stat_update(label, value=value)


class PhaseInput(PipelineStep):
    name = "📥 phase input"
    type = "📖 - READER"

    def __init__(self, folder: str | Path):
        super().__init__()
        self.folder = str(folder)

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        count = 0
        try:
            for doc in read_documents(task_file(self.folder, rank)):
                count += 1
                yield doc
        finally:  # one stats update per task: per document it cost more than reading the metadata
            self.stat_update("documents", value=count)


class PhaseOutput(PipelineStep):
    """Terminal step: writes every document of the task to folder/<rank>.parquet (empty file if none)."""

    name = "📤 phase output"
    type = "💽 - WRITER"

    def __init__(self, folder: str | Path):
        super().__init__()
        self.folder = str(folder)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        with TaskStats(self) as stats, AtomicParquetWriter(task_file(self.folder, rank), DOC_SCHEMA) as writer:
            for doc in data:
                start = perf_counter()
                writer.write(document_row(doc))
                stats.seconds += perf_counter() - start
            stats.counts["documents"] = writer.rows
        yield from ()
