"""Phase boundaries: each per-shard phase reads task `rank` of the previous phase and writes its own.

Task files keep their rank across phases, so shard k of P1 is shard k of P3, P5 and P7, and a
rerun of a task overwrites exactly the file it owns.
"""

from __future__ import annotations

from pathlib import Path

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from pipeline.docio import DOC_SCHEMA, AtomicParquetWriter, document_row, read_documents, task_file


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
        with AtomicParquetWriter(task_file(self.folder, rank), DOC_SCHEMA) as writer:
            for doc in data:
                with self.track_time():
                    writer.write(document_row(doc))
        self.stat_update("documents", value=writer.rows)
        yield from ()
