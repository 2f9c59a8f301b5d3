"""Student apply throughput vs the transformers teacher on the same CPU, and held-out agreement.

    python benchmarks/bench_classify.py [--docs 3000] [--teacher-docs 600]

Reads the real corpus in /work/shared/data (or --corpus). The teacher is the tiny random LM of
classifiers/tiny_lm.py run by the `transformers` backend with one torch thread: a lower bound on
any real teacher's cost (a 7B model is ~10^5 times more compute per token). It labels
`--teacher-docs` documents, students are trained on those labels (the P2 flow), then applied to
`--docs` documents. Both rates are per core: one thread each, rate = docs / process CPU seconds.
A random teacher's labels carry no meaning, so its held-out agreement only proves the plumbing;
`--labels annotations.jsonl` (with the matching synthetic `--corpus corpus.jsonl`) trains a second
set of students on those labels and reports their held-out agreement.
"""

from __future__ import annotations

import argparse
import gzip
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

from datatrove.data import Document

from classifiers.students import load_hyperparams, train_students
from classifiers.taxonomy import load_rubric, load_taxonomy
from classifiers.teacher import annotate, sample_hash
from classifiers.tiny_lm import build_tiny_lm
from pipeline.config import TeacherConfig
from stages.scoring import StudentScorer

DEFAULT_CORPUS = Path("/work/shared/data/corpus/real_corpus.jsonl.gz")


def read_corpus(path: Path, limit: int) -> list[Document]:
    docs = []
    with gzip.open(path, "rt") if path.suffix == ".gz" else path.open() as fh:
        for line_no, line in enumerate(fh):
            if len(docs) == limit:
                break
            record = json.loads(line)
            docs.append(Document(text=record["text"], id=str(record["id"]), metadata={"uid": line_no}))
    return docs


def cpu_timed(fn):
    start = time.process_time()
    wall = time.perf_counter()
    result = fn()
    return result, time.process_time() - start, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--docs", type=int, default=3000)
    parser.add_argument("--teacher-docs", type=int, default=600)
    parser.add_argument("--max-chars", type=int, default=2000)
    parser.add_argument("--labels", type=Path, help="annotations (labels backend) for the agreement run")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    taxonomy, rubric = load_taxonomy(), load_rubric()
    docs = read_corpus(args.corpus, args.docs)
    # the teacher's sample: the bottom of hash(seed, uid), as in P2
    sample = sorted(docs, key=lambda d: sample_hash(d.metadata["uid"], 0))[: args.teacher_docs]
    words = [w for w, _ in Counter(w.lower() for d in docs for w in d.text.split()).most_common(5000)]

    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_lm(Path(tmp) / "tiny", words)
        # a random model puts little mass on the labels: no label-mass floor for this plumbing benchmark
        teacher = TeacherConfig(backend="transformers", model=str(model), min_label_mass=0.0)
        annotations, t_cpu, t_wall = cpu_timed(
            lambda: annotate(
                sample, teacher, taxonomy, rubric, Path(tmp) / "cache", max_chars=args.max_chars, device="cpu"
            )
        )
        texts = {d.metadata["uid"]: d.text for d in sample}
        cards, s_cpu, _ = cpu_timed(
            lambda: train_students(texts, annotations.labels, Path(tmp) / "models", load_hyperparams(), rubric)
        )
        scorer = StudentScorer(Path(tmp) / "models", {})
        _, a_cpu, a_wall = cpu_timed(lambda: list(scorer.run(iter(docs))))
        if args.labels:
            given = annotate(docs, TeacherConfig(labels_path=str(args.labels)), taxonomy, rubric, tmp)
            every = {d.metadata["uid"]: d.text for d in docs}
            cards_given = train_students(every, given.labels, Path(tmp) / "given", load_hyperparams(), rubric)

    questions = 1 + len(rubric.ids)
    print(f"corpus: {args.corpus.name}, mean {sum(len(d.text) for d in docs) / len(docs):.0f} chars/doc")
    print(f"teacher (transformers, tiny GPT-2, 1 thread, {questions} questions/doc, max_chars {args.max_chars}):")
    print(f"  {len(sample)} docs in {t_wall:.1f}s wall, {t_cpu:.1f}s CPU -> {len(sample) / t_cpu:.1f} docs/s/core")
    print(f"  errors: {dict(annotations.errors) or 'none'}")
    print(f"students: trained in {s_cpu:.1f}s CPU on {cards['domain']['train_size']} docs")
    print(f"  apply: {len(docs)} docs in {a_wall:.2f}s wall, {a_cpu:.2f}s CPU -> {len(docs) / a_cpu:.0f} docs/s/core")
    print(f"  speed-up over the tiny teacher: {(len(docs) / a_cpu) / (len(sample) / t_cpu):.0f}x")
    print_agreement("held-out agreement with the tiny random teacher:", cards)
    if args.labels:
        print_agreement(f"held-out agreement with {args.labels.name}:", cards_given)


def print_agreement(title: str, cards: dict) -> None:
    print(title)
    for name, card in cards.items():
        holdout = {k: v for k, v in card.get("holdout", {}).items() if k != "confusion"}
        print(f"  {name:28s} n={card['holdout_size']:4d} {holdout}")


if __name__ == "__main__":
    main()
