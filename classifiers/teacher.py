"""The teacher (phase P2): sample, ask an LLM (or read labels), parse, cache.

A backend turns requests into label distributions; everything around it (sampling, caching,
parsing, turning distributions into `domain` / `quality_<dim>` labels, counting failures) lives
here so every backend behaves the same. A failed request is counted by kind (`timeout`,
`server_error`, `unparseable`) and leaves that label unset: never a crash, never a made-up label.
"""

from __future__ import annotations

import heapq
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import xxhash
from datatrove.data import Document

from classifiers import prompts
from classifiers.backends import PROMPTING_BACKENDS, get_backend
from classifiers.backends.base import Backend, Request, TeacherError
from classifiers.prompts import DOMAIN_QUESTION
from classifiers.taxonomy import Rubric, Taxonomy
from pipeline.config import TeacherConfig
from pipeline.docio import AtomicParquetWriter, write_json_atomic
from pipeline.errors import ConfigError

# Requests per backend call: the cache is appended after each, so a killed run loses at most one.
_CHUNK = 512


# ---------------------------------------------------------------- answers -> labels


def expected_score(dist: Mapping[str, float]) -> float:
    return sum(int(label) * p for label, p in dist.items())


def labels_from_outcomes(
    outcomes: Mapping[str, Mapping[str, float]], taxonomy: Taxonomy, rubric: Rubric
) -> dict[str, Any]:
    """Per-question distributions of one document -> the metadata keys P3 writes (same names)."""
    record: dict[str, Any] = {}
    if DOMAIN_QUESTION in outcomes:
        to_id = taxonomy.by_letter()
        probs = {to_id[letter]: p for letter, p in outcomes[DOMAIN_QUESTION].items()}
        # ties go to the taxonomy's order, so the label never depends on dict order
        best = max(taxonomy.ids, key=lambda d: (probs.get(d, 0.0), -taxonomy.ids.index(d)))
        record |= {"domain": best, "domain_prob": round(probs[best], 4), "domain_probs": _rounded(probs)}
    scores = {d: expected_score(outcomes[d]) for d in rubric.ids if d in outcomes}
    record |= {f"quality_{d}": round(s, 4) for d, s in scores.items()}
    if len(scores) == len(rubric.ids):
        record["quality"] = round(rubric.aggregate(scores), 4)
    return record


def _rounded(probs: Mapping[str, float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in sorted(probs.items())}


# ---------------------------------------------------------------- sample


def sample_hash(uid: int, seed: int) -> int:
    return xxhash.xxh64_intdigest(str(uid).encode(), seed=seed)


def select_sample(docs: Iterable[Document], k: int, seed: int) -> list[Document]:
    """Bottom-k by hash(seed, uid): the same k documents whatever the order or sharding of `docs`.

    Streaming in O(k) memory. It is mergeable: the bottom-k of per-shard bottom-k's is the global one,
    so shards can preselect in parallel. `uid` is the key because ids may repeat in real data.
    """
    heap: list[tuple[int, int, Document]] = []  # max-heap through negated keys
    for doc in docs:
        uid = int(doc.metadata["uid"])
        key = (-sample_hash(uid, seed), -uid)
        if len(heap) < k:
            heapq.heappush(heap, (*key, doc))
        elif key > heap[0][:2]:
            heapq.heapreplace(heap, (*key, doc))
    return [doc for *_, doc in sorted(heap, key=lambda item: (-item[0], -item[1]))]


# ---------------------------------------------------------------- cache


class AnnotationCache:
    """Answers keyed by (text hash, model, prompt hash), one append-only JSONL file per model.

    Only parsed answers are stored: failures are asked again on the next run.
    """

    def __init__(self, cache_dir: str | Path, model: str):
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("_") or "model"
        self.path = Path(cache_dir) / f"{slug}-{xxhash.xxh64_hexdigest(model)}.jsonl"
        self._answers: dict[tuple[str, str], dict[str, float]] = {}
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    item = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a killed run
                    continue
                self._answers[(item["text"], item["prompt"])] = item["probs"]

    def get(self, text: str, prompt: str) -> dict[str, float] | None:
        return self._answers.get((text, prompt))

    def put_many(self, items: Iterable[tuple[str, str, dict[str, float]]]) -> None:
        lines = []
        for text, prompt, probs in items:
            self._answers[(text, prompt)] = probs
            lines.append(json.dumps({"text": text, "prompt": prompt, "probs": probs}, sort_keys=True))
        if lines:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as fh:
                fh.write("\n".join(lines) + "\n")

    def __len__(self) -> int:
        return len(self._answers)


# ---------------------------------------------------------------- annotate


@dataclass
class Annotations:
    labels: dict[int, dict[str, Any]]  # uid -> {"id", "domain", "domain_prob", "domain_probs", "quality_<dim>", "quality"}
    errors: Counter = field(default_factory=Counter)  # "<kind>" and "<question>:<kind>" -> count
    asked: int = 0  # requests sent to the backend
    cached: int = 0  # requests answered from the cache

    def report(self) -> dict[str, Any]:
        complete = sum(1 for r in self.labels.values() if "quality" in r and "domain" in r)
        return {
            "documents": len(self.labels),
            "complete": complete,
            "asked": self.asked,
            "cached": self.cached,
            "errors": dict(sorted(self.errors.items())),
        }


def annotate(
    sample: Sequence[Document],
    teacher: TeacherConfig,
    taxonomy: Taxonomy,
    rubric: Rubric,
    cache_dir: str | Path,
    backend: Backend | None = None,
    max_chars: int = 4000,
    **backend_options: Any,
) -> Annotations:
    """Label `sample` with the configured teacher. `backend` overrides the one built from `teacher`."""
    if teacher.backend == "labels" and backend is None:
        if not teacher.labels_path:
            raise ConfigError("teacher.labels_path is required when teacher.backend is 'labels'")
        from classifiers.backends.labels_file import read_labels

        labels, errors = read_labels(teacher.labels_path, sample, taxonomy, rubric)
        return Annotations(labels=labels, errors=errors)
    backend = backend or build_backend(teacher, **backend_options)
    system = prompts.system_prompt(taxonomy, rubric)
    qs = prompts.questions(taxonomy, rubric, teacher.mode)
    hashes = {q.id: prompts.prompt_hash(system, q, teacher.mode, max_chars) for q in qs}
    cache = AnnotationCache(cache_dir, backend.model)
    result = Annotations(labels={})
    answers: dict[int, dict[str, dict[str, float]]] = {}
    pending: list[tuple[str, Request]] = []  # (text hash, request), a document's questions adjacent
    for doc in sample:
        uid, th = int(doc.metadata["uid"]), prompts.text_hash(doc.text)
        answers[uid] = {}
        result.labels[uid] = {"id": doc.id}
        document = prompts.truncate(doc.text, max_chars)
        for q in qs:
            hit = cache.get(th, hashes[q.id])
            if hit is not None:
                answers[uid][q.id] = hit
                result.cached += 1
            else:
                pending.append((th, Request(uid, q, prompts.messages(system, document, q))))
    for start in range(0, len(pending), _CHUNK):
        chunk = pending[start : start + _CHUNK]
        outcomes = backend.ask([r for _, r in chunk], teacher.mode)
        result.asked += len(chunk)
        fresh = []
        for (th, request), outcome in zip(chunk, outcomes, strict=True):
            if isinstance(outcome, TeacherError):
                result.errors[outcome.kind] += 1
                result.errors[f"{request.question.id}:{outcome.kind}"] += 1
                continue
            answers[request.doc_key][request.question.id] = outcome
            fresh.append((th, hashes[request.question.id], outcome))
        cache.put_many(fresh)
    for uid, per_question in answers.items():
        result.labels[uid] |= labels_from_outcomes(per_question, taxonomy, rubric)
    return result


def build_backend(teacher: TeacherConfig, **options: Any) -> Backend:
    """The backend named by `teacher.backend`, from the registry."""
    if teacher.backend not in PROMPTING_BACKENDS:
        raise ConfigError(f"teacher.backend {teacher.backend!r} has no prompting backend")
    if not teacher.model:
        raise ConfigError(f"teacher.model is required when teacher.backend is {teacher.backend!r}")
    if teacher.backend == "endpoint":
        if not teacher.url:
            raise ConfigError("teacher.url is required when teacher.backend is 'endpoint' (e.g. http://host:8000/v1)")
        options = {"url": teacher.url} | options
    return get_backend(teacher.backend)(model=teacher.model, **options)


# ---------------------------------------------------------------- teacher labels file

LABELS_FILE = "teacher_labels.parquet"
REPORT_FILE = "report.json"
_LABEL_SCHEMA = pa.schema([("uid", pa.int64()), ("id", pa.string()), ("labels", pa.string())])


def save_annotations(annotations: Annotations, folder: str | Path) -> Path:
    """RUN/annotations/teacher_labels.parquet (sorted by uid) and report.json with the error counts."""
    folder = Path(folder)
    path = folder / LABELS_FILE
    with AtomicParquetWriter(path, _LABEL_SCHEMA) as writer:
        for uid in sorted(annotations.labels):
            record = dict(annotations.labels[uid])
            doc_id = record.pop("id")
            writer.write({"uid": uid, "id": doc_id, "labels": json.dumps(record, sort_keys=True)})
    write_json_atomic(folder / REPORT_FILE, annotations.report())
    return path


def load_teacher_labels(path: str | Path) -> dict[int, dict[str, Any]]:
    table = pq.read_table(path, columns=["uid", "labels"]).to_pydict()
    return {uid: json.loads(labels) for uid, labels in zip(table["uid"], table["labels"])}
