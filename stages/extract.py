"""Main-text extraction from HTML documents (WARC input), with a reason for every document it drops.

datatrove's `Trafilatura` extractor does the extraction. datatrove's own `BaseExtractor.run` only
counts the documents it drops; this step writes each one to rejected/extract/ with why, so the funnel
and conservation count them. Documents that are not HTML (JSONL or Parquet input) pass through.

The per-document timeout is a CPU-time timer (ITIMER_PROF) in the task's own process, not datatrove's
`ExtractorSandbox`: the sandbox forks a child inside the worker, and the engine runs each rank as a
plain Ray task where a fork can deadlock (ray#28328). CPU time, not wall time, so that a loaded
machine does not turn slow pages into timeouts (seen: 4 of 65 pages at 5 s wall on a machine at load
13), and the output does not depend on the load. A timer interrupts Python code only, which is where
trafilatura spends its time; lxml calls are bounded by the page size.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.extractors import Trafilatura
from datatrove.pipeline.filters.base_filter import BaseFilter

from pipeline.docio import RejectWriter
from stages.warc import HTML_TYPES

EXTRACT_STAGE = "extract"


class HtmlExtractor(BaseFilter):
    name = "⛏ html extractor"

    def __init__(self, exclusion_writer: RejectWriter, timeout_s: float = 5.0):
        """`timeout_s`: CPU seconds per page (trafilatura takes ~0.05 s on a typical page)."""
        super().__init__(exclusion_writer)
        # No trafilatura `deduplicate`: its LRU cache of paragraphs lives as long as the process, so a
        # page's text would depend on which pages the same worker extracted before (task placement).
        # Exact and URL dedup remove repeated pages later, deterministically.
        self.extractor = Trafilatura(timeout=timeout_s, deduplicate=False)
        self._timed = False

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        with _alarm_handler() as timed:
            self._timed = timed
            yield from super().run(data, rank, world_size)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        payload_type = doc.metadata.get("payload_type")
        if payload_type is None:
            return True
        if payload_type not in HTML_TYPES and payload_type != "text/plain":
            doc.metadata["reject_details"] = {"payload_type": payload_type}
            return False, "non_html"
        if payload_type == "text/plain":  # WET conversion records are already text
            return bool(doc.text.strip()) or (False, "empty")
        try:
            if self._timed:
                signal.setitimer(signal.ITIMER_PROF, self.extractor.timeout)
            try:
                text = self.extractor.extract(doc.text)
            finally:
                if self._timed:
                    signal.setitimer(signal.ITIMER_PROF, 0)
        except _Timeout:
            doc.metadata["reject_details"] = {"timeout_s": self.extractor.timeout}
            return False, "timeout"
        except Exception as exc:  # any trafilatura/lxml error is this document's, never the run's
            doc.metadata["reject_details"] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
            return False, "extract_error"
        if not text or not text.strip():
            return False, "empty"
        doc.text = text
        return True


class _Timeout(Exception):
    pass


def _raise_timeout(signum: int, frame: Any) -> None:
    raise _Timeout


@contextmanager
def _alarm_handler() -> Iterator[bool]:
    """Installs the timeout handler for the run; yields False where signals are unavailable (not the
    main thread), and documents are then extracted without a time limit."""
    if threading.current_thread() is not threading.main_thread():
        yield False
        return
    previous = signal.signal(signal.SIGPROF, _raise_timeout)
    try:
        yield True
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)
