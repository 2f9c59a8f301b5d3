"""One step for all heuristic presets: each document is tokenized once, with its own language's rules.

`implementation="fused"` computes every preset's statistics from one tokenization (stages/heuristic_rules.py);
`implementation="datatrove"` calls datatrove's own `filter()` of the same filter objects, which is the
reference the tests and `benchmarks/bench_filter.py` compare against. Either way the presets run in the
configured order, a drop goes to rejected/<preset>/ with datatrove's reason, and C4's rewrite of the
text is kept, exactly as a chain of datatrove filters would do.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from typing import Literal

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter, get_filter_result
from datatrove.utils.typeshelper import StatHints

from pipeline.docio import RejectWriter
from stages.heuristic_rules import RULES, DocText
from stages.word_tokens import FastWordTokenizer

Implementation = Literal["fused", "datatrove"]


@dataclass
class LanguageRules:
    """The presets of one language, in order, as datatrove filter objects built with its parameters."""

    tokenizer_language: str  # datatrove's word tokenizer key, e.g. "en" or "fra_Latn"
    filters: list[tuple[str, BaseFilter]]


class HeuristicFilters(PipelineStep):
    name = "🧹 heuristic filters"
    type = "🔻 - FILTER"

    def __init__(
        self,
        rules: dict[str, LanguageRules],
        default_language: str,
        writers: dict[str, RejectWriter],
        route_by_language: bool,
        implementation: Implementation = "fused",
    ):
        super().__init__()
        self.rules = rules
        self.default_language = default_language
        # One writer per preset, in order: rejected/<preset>/ and the funnel's rows come from these.
        self.writers = writers
        self.route_by_language = route_by_language
        self.implementation = implementation
        self._tokenizers: dict[str, FastWordTokenizer] = {}

    def _language(self, doc: Document) -> str:
        language = doc.metadata.get("language") if self.route_by_language else None
        return language if language in self.rules else self.default_language

    def _tokenizer(self, language: str) -> FastWordTokenizer:
        if language not in self._tokenizers:
            self._tokenizers[language] = FastWordTokenizer(self.rules[language].tokenizer_language)
        return self._tokenizers[language]

    def decide(self, doc: Document) -> tuple[str, str] | None:
        """None to keep `doc`, else (preset, reason); `doc.text` ends as the filters left it."""
        language = self._language(doc)
        rules = self.rules[language]
        if self.implementation == "datatrove":
            for preset, filter_ in rules.filters:
                keep, reason = get_filter_result(filter_.filter(doc))
                if not keep:
                    return preset, reason
            return None
        text = DocText(doc.text, self._tokenizer(language))
        for preset, filter_ in rules.filters:
            keep, reason = get_filter_result(RULES[preset](filter_, text))
            doc.text = text.text
            if not keep:
                return preset, reason
        return None

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        with ExitStack() as stack:
            for writer in self.writers.values():
                stack.enter_context(writer)
            for doc in data:
                self.stat_update(StatHints.total)
                with self.track_time():
                    verdict = self.decide(doc)
                if verdict is None:
                    self.stat_update(StatHints.forwarded)
                    yield doc
                    continue
                preset, reason = verdict
                self.stat_update(StatHints.dropped, f"{preset}/{reason}")
                if reason:
                    doc.metadata["filter_reason"] = reason
                if self.route_by_language:  # rejected/<preset>/ rows say which language's rules dropped them
                    doc.metadata["reject_details"] = {"language": self._language(doc)}
                self.writers[preset].write(doc, rank)
