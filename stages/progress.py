"""Live document counts of a phase's tasks, for a progress display in documents per second.

`DocProgress` passes documents through and keeps `progress_dir/<rank>` at the number it has seen,
rewritten at most once per INTERVAL_S (and at the end); `counted_docs` sums those files. Task
completion markers only move when a whole task ends, which for a few large shards is at the end.
"""

from __future__ import annotations

import time
from pathlib import Path

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from pipeline.docio import write_text_atomic

INTERVAL_S = 1.0
_CHECK_EVERY = 64  # documents between clock reads


class DocProgress(PipelineStep):
    name = "📈 progress"
    type = "📊 - STATS"

    def __init__(self, progress_dir: str | Path):
        super().__init__()
        self.progress_dir = str(progress_dir)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        path = Path(self.progress_dir) / f"{rank:05d}"
        count, last = 0, time.monotonic()
        for doc in data:
            yield doc
            count += 1
            if count % _CHECK_EVERY == 0 and time.monotonic() - last >= INTERVAL_S:
                write_text_atomic(path, str(count))
                last = time.monotonic()
        write_text_atomic(path, str(count))


def counted_docs(progress_dir: str | Path) -> int:
    """Documents the DocProgress steps writing into `progress_dir` have seen so far."""
    total = 0
    for path in Path(progress_dir).glob("[0-9]*"):
        try:
            total += int(path.read_text() or 0)
        except (OSError, ValueError):  # replaced between glob and read: the next poll counts it
            continue
    return total
