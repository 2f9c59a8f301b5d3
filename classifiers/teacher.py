"""The teacher (phase P2): sample, ask an LLM (or read labels), parse, cache.

A backend turns requests into answers; everything around it (sampling, answer orders, caching,
the label-mass check, turning answers into `domain` / `quality_<dim>` labels, counting failures,
stopping a run that fails too often) lives here so every backend behaves the same. A failed
request is counted by kind (`timeout`, `server_error`, `unparseable`, `too_long`) and leaves that
label unset: never a crash, never a made-up label.
"""

from __future__ import annotations

import heapq
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import xxhash
from datatrove.data import Document

from classifiers import prompts
from classifiers.annotations import AnnotationCache, Annotations, Progress, letter_bias
from classifiers.backends import PROMPTING_BACKENDS, get_backend
from classifiers.backends.base import Answer, Backend, Outcome, Request, TeacherError
from classifiers.prompts import DOMAIN_QUESTION
from classifiers.taxonomy import Rubric, Taxonomy
from pipeline.config import TeacherConfig
from pipeline.docio import AtomicParquetWriter, write_json_atomic
from pipeline.errors import ConfigError, PhaseFailed

__all__ = ["LABELS_FILE", "Annotations", "annotate", "load_teacher_labels", "save_annotations", "select_sample"]

# The cache is appended every this many answers: a killed run loses at most that many.
_FLUSH_EVERY = 256
# The error-rate stop needs this many answers first, so a few early failures cannot stop a run.
_MIN_FOR_RATE = 50


# ---------------------------------------------------------------- answers -> labels


def expected_score(dist: Mapping[str, float]) -> float:
    return sum(int(label) * p for label, p in dist.items())


def labels_from_outcomes(
    outcomes: Mapping[str, Mapping[str, float]],
    taxonomy: Taxonomy,
    rubric: Rubric,
    letters: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Per-question distributions of one document -> the metadata keys P3 writes (same names).

    `letters` is the letter -> domain map the document was asked with (its answer order)."""
    record: dict[str, Any] = {}
    if DOMAIN_QUESTION in outcomes:
        to_id = letters or taxonomy.by_letter()
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


# ---------------------------------------------------------------- annotate


def cache_identity(teacher: TeacherConfig) -> str:
    """Everything outside the prompt text that changes an answer: a change re-asks, nothing else does.

    The chat template is the model's own, fixed by (model, revision): pin `teacher.revision`."""
    rendering = teacher.api if teacher.backend == "endpoint" else "chat_template"
    return "|".join(
        [
            teacher.backend,
            teacher.model or "",
            teacher.revision or "unpinned",
            rendering,
            json.dumps(teacher.chat_template_kwargs, sort_keys=True),
            "constrained" if teacher.constrain else "free",
        ]
    )


def answer_order(text_hash: str, orders: int) -> int:
    """The document's answer order, from its text: the same text always gets the same order (cache)."""
    return int(text_hash[:8], 16) % orders


def annotate(
    sample: Sequence[Document],
    teacher: TeacherConfig,
    taxonomy: Taxonomy,
    rubric: Rubric,
    cache_dir: str | Path,
    backend: Backend | None = None,
    max_chars: int = 4000,
    progress: Callable[[str], None] | None = None,
    **backend_options: Any,
) -> Annotations:
    """Label `sample` with the configured teacher. `backend` overrides the one built from `teacher`;
    a backend built here is closed (engines shut down, GPUs released) before returning."""
    if teacher.backend == "labels" and backend is None:
        if not teacher.labels_path:
            raise ConfigError("teacher.labels_path is required when teacher.backend is 'labels'")
        from classifiers.backends.labels_file import read_labels

        labels, errors = read_labels(teacher.labels_path, sample, taxonomy, rubric)
        return Annotations(labels=labels, errors=errors)
    orders = [prompts.letter_map(taxonomy, k) for k in range(teacher.permutations)]
    systems = [prompts.system_prompt(taxonomy, rubric, order) for order in orders]
    qs = prompts.questions(taxonomy, rubric, teacher.mode)
    hashes = [{q.id: prompts.prompt_hash(system, q, teacher.mode, max_chars) for q in qs} for system in systems]
    identity = cache_identity(teacher) if backend is None else f"custom|{backend.model}"
    cache = AnnotationCache(cache_dir, identity, backend.model if backend is not None else teacher.model or "")
    result = Annotations(labels={}, min_label_mass=teacher.min_label_mass if teacher.mode == "logprobs" else 0.0)
    answers: dict[int, dict[str, dict[str, float]]] = {}
    order_of: dict[int, int] = {}
    pending: list[tuple[str, str, Request]] = []  # (text hash, prompt hash, request), a document's questions adjacent
    for doc in sample:
        uid, th = int(doc.metadata["uid"]), prompts.text_hash(doc.text)
        order_of[uid] = k = answer_order(th, len(orders))
        answers[uid] = {}
        result.labels[uid] = {"id": doc.id}
        document = prompts.truncate(doc.text, max_chars)
        for q in qs:
            hit = cache.get(th, hashes[k][q.id])
            if hit is not None:
                result.cached += 1
                _accept(result, answers[uid], q.id, hit)
            else:
                pending.append((th, hashes[k][q.id], Request(uid, q, prompts.messages(systems[k], document, q))))
    if pending:
        owned = backend is None
        backend = backend or build_backend(teacher, **backend_options)
        try:
            _ask_all(backend, pending, teacher, result, answers, cache, Progress(len(pending), progress))
        finally:
            cache.flush()
            if owned:
                backend.close()
        if progress is not None:
            progress(f"done: {result.summary_line()}")
    for uid, per_question in answers.items():
        result.labels[uid] |= labels_from_outcomes(per_question, taxonomy, rubric, orders[order_of[uid]])
    result.letter_bias = letter_bias(
        ((answers[uid][DOMAIN_QUESTION], orders[order_of[uid]]) for uid in answers if DOMAIN_QUESTION in answers[uid]),
        orders,
    )
    return result


def _accept(result: Annotations, answered: dict[str, dict[str, float]], question: str, answer: Answer) -> bool:
    """Keep an answer unless its label mass says the prompt did not work (then: unparseable)."""
    if answer.mass is not None and answer.mass < result.min_label_mass:
        result.low_mass += 1
        low = TeacherError("unparseable", f"label mass {answer.mass:.3f} < teacher.min_label_mass")
        result.count_error(question, low)
        return False
    answered[question] = answer.probs
    return True


def _ask_all(
    backend: Backend,
    pending: Sequence[tuple[str, str, Request]],
    teacher: TeacherConfig,
    result: Annotations,
    answers: dict[int, dict[str, dict[str, float]]],
    cache: AnnotationCache,
    progress: Progress,
) -> None:
    """Stream the backend's answers into the labels and the cache; stop early when too many fail."""
    started = time.perf_counter()
    requests = [request for *_, request in pending]
    done = 0
    try:
        for index, outcome in backend.ask(requests, teacher.mode):
            th, ph, request = pending[index]
            done += 1
            _record(result, answers, cache, th, ph, request, outcome)
            if done % _FLUSH_EVERY == 0:
                cache.flush()
            progress.update(done, result)
            if done >= _MIN_FOR_RATE and result.failed() > teacher.max_error_rate * done:
                raise PhaseFailed(_too_many_failures(result, done))
    finally:
        result.asked += done
        result.seconds += time.perf_counter() - started
        result.gpus = getattr(backend, "gpus", None)
        result.retried = dict(getattr(backend, "retried", {}))


def _record(
    result: Annotations,
    answers: dict[int, dict[str, dict[str, float]]],
    cache: AnnotationCache,
    th: str,
    ph: str,
    request: Request,
    outcome: Outcome,
) -> None:
    if isinstance(outcome, TeacherError):
        result.count_error(request.question.id, outcome)
        return
    result.count_answer(outcome)
    if _accept(result, answers[request.doc_key], request.question.id, outcome):
        cache.put(th, ph, outcome)


def _too_many_failures(result: Annotations, done: int) -> str:
    kinds = ", ".join(f"{k} {result.errors[k]}" for k in ("timeout", "server_error", "unparseable") if result.errors[k])
    first = "; ".join(f"{kind}: {msgs[0]}" for kind, msgs in result.first_errors.items() if msgs)
    return (
        f"P2 teacher: {result.failed()} of the first {done} requests failed ({kinds}), above "
        f"teacher.max_error_rate; first errors: {first}. Answers so far are cached: fix the cause and rerun."
    )


def build_backend(teacher: TeacherConfig, **overrides: Any) -> Backend:
    """The backend named by `teacher.backend`, from the registry, with its options from the config."""
    if teacher.backend not in PROMPTING_BACKENDS:
        raise ConfigError(f"teacher.backend {teacher.backend!r} has no prompting backend")
    if not teacher.model:
        raise ConfigError(f"teacher.model is required when teacher.backend is {teacher.backend!r}")
    options = teacher.backend_options() | overrides
    if teacher.backend == "endpoint" and not options.get("url"):
        raise ConfigError("teacher.url is required when teacher.backend is 'endpoint' (e.g. http://host:8000/v1)")
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


def load_teacher_labels(path: str | Path, key: str = "uid") -> dict[Any, dict[str, Any]]:
    """The labels file as {uid: labels}, or {document id: labels} with key="id"."""
    table = pq.read_table(path, columns=[key, "labels"]).to_pydict()
    return {k: json.loads(labels) for k, labels in zip(table[key], table["labels"])}
