"""P3: the students score every document (`StudentScorer`); `QualityFilter` decides on the score.

Scoring only adds metadata (domain, domain_prob, domain_probs, quality_<dim>, quality,
label_source); the threshold lives in the separate deciding step, so it can be retuned without
re-scoring. Documents from the teacher's sample keep the teacher's labels: they are the better
estimate, and the students were fitted to them anyway.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.utils.batching import batched

from pipeline.docio import RejectWriter
from pipeline.worker import file_version, load_once

# fastText predicts a few thousand short documents per second per core: batches amortise the
# Python overhead per call without holding much text in memory.
_BATCH = 512


class StudentScorer(PipelineStep):
    name = "🎓 student scorer"
    type = "📊 - TAGGER"
    _requires_dependencies = [("fasttext", "fasttext-numpy2-wheel")]

    def __init__(self, models_dir: str | Path, teacher_labels: str | Path | dict[int, dict[str, Any]] | None = None):
        super().__init__()
        self.models_dir = str(models_dir)
        # a path stays a path until run(): the step is pickled to every worker
        self.teacher_labels = str(teacher_labels) if isinstance(teacher_labels, Path) else teacher_labels
        self._students: Any = None
        self._teacher: dict[int, dict[str, Any]] | None = None

    def _load(self) -> None:
        from classifiers.students import Students
        from classifiers.teacher import load_teacher_labels

        models = self.models_dir
        self._students = load_once(("students", file_version(models)), lambda: Students(models))
        if isinstance(self.teacher_labels, str):
            path = self.teacher_labels
            self._teacher = load_once(("teacher_labels", file_version(path)), lambda: load_teacher_labels(path))
        else:
            self._teacher = dict(self.teacher_labels or {})

    def _score(self, batch: list[Document]) -> None:
        from classifiers.students import aggregate_quality

        for doc, predicted in zip(batch, self._students.predict([d.text for d in batch])):
            teacher = self._teacher.get(int(doc.metadata["uid"]), {})
            # the teacher's fields win one by one: a failed teacher question leaves the student's
            labels = predicted | {k: v for k, v in teacher.items() if k in predicted}
            if teacher:
                labels["quality"] = aggregate_quality(labels, self._students.weights)
            labels["label_source"] = "teacher" if teacher else "student"
            doc.metadata.update(labels)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if self._students is None:
            self._load()
        for batch in batched(data, _BATCH):
            with self.track_time(unit="batch"):
                self._score(batch)
            for doc in batch:
                self.stat_update(f"domain_{doc.metadata['domain']}", f"source_{doc.metadata['label_source']}")
                yield doc


class QualityFilter(BaseFilter):
    """Drops documents with `quality` below `min_quality` to rejected/quality; None keeps all."""

    name = "🎓 quality filter"

    def __init__(self, min_quality: float | None, exclusion_writer: RejectWriter | None = None):
        super().__init__(exclusion_writer)
        self.min_quality = min_quality

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        if self.min_quality is None or doc.metadata["quality"] >= self.min_quality:
            return True
        doc.metadata["reject_details"] = {"quality": doc.metadata["quality"], "min_quality": self.min_quality}
        return False, "low_quality"
