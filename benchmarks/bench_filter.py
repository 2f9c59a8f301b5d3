"""P1's heuristic filters: the fused step against datatrove's own filters, on real text, one worker.

    python benchmarks/bench_filter.py [--docs N] [--multilingual-only]

1. Real documents (`--corpus`, default ../shared/data/corpus/real_corpus.jsonl.gz, all of it unless
   `--docs`): datatrove's LocalPipelineExecutor (1 task, 1 worker) runs JsonlReader -> the Gopher
   quality, Gopher repetition, C4 and FineWeb filters with their defaults (JSONL exclusion writers) ->
   JsonlWriter; then the same executor runs the same reader and writers around mixwright's fused step
   (English defaults, langid off). Prints both times, docs/s per core, the ratio (goal >= 5) and the
   disagreements: documents whose verdict (preset, reason) or kept text differ (must be 0).
2. Multilingual sample (`--multilingual`, ../shared/data/multilingual/docs.jsonl.gz, UD treebank text):
   lid.176 + the language filter + the four presets with only `langid.languages` set to every language
   of the sample; the keep rate per language beside English's (goal: >= 70% where a language has 20+
   documents, English >= 75%), and the disagreements of the fused step with datatrove's filters built
   with each language's settings.
"""

from __future__ import annotations

import argparse
import gzip
import json
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from datatrove.data import Document
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.filters import (
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
)
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter

from pipeline.config import FILTER_PRESETS, LangIdConfig
from stages.heuristics import build_heuristic_steps

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DATATROVE_FILTERS = {
    "gopher_quality": GopherQualityFilter,
    "gopher_repetition": GopherRepetitionFilter,
    "c4_quality": C4QualityFilter,
    "fineweb_quality": FineWebQualityFilter,
}
ENOUGH_DOCS = 20


def _run(steps: list, out: Path) -> float:
    executor = LocalPipelineExecutor(pipeline=steps, tasks=1, workers=1, logging_dir=str(out / "logs"))
    started = time.perf_counter()
    executor.run()
    return time.perf_counter() - started


def _outcomes(out: Path) -> dict[str, tuple[str | None, str | None, str]]:
    """id -> (preset, reason, text) from the kept and rejected JSONL files of one run."""
    outcomes = {}
    for path in sorted(out.glob("**/*.jsonl")):
        preset = path.parent.name if path.parent.parent.name == "rejected" else None
        for line in path.read_text().splitlines():
            record = json.loads(line)
            reason = record["metadata"].get("filter_reason") if preset else None
            outcomes[record["id"]] = (preset, reason, record["text"])
    return outcomes


def real_documents(corpus: Path, docs: int | None, root: Path) -> dict:
    def reader() -> JsonlReader:
        return JsonlReader(str(corpus.parent), glob_pattern=corpus.name, limit=docs or -1)

    def writer(folder: Path) -> JsonlWriter:
        return JsonlWriter(str(folder), compression=None)

    reference = [reader()]
    reference += [cls(exclusion_writer=writer(root / "dt" / "rejected" / n)) for n, cls in DATATROVE_FILTERS.items()]
    theirs = _run([*reference, writer(root / "dt" / "kept")], root / "dt")
    # The fused step writes Parquet rejects (RejectWriter); JSONL exclusion writers make both sides equal.
    (fused,) = build_heuristic_steps(list(FILTER_PRESETS), LangIdConfig(enabled=False), root / "unused")
    fused.writers = {n: writer(root / "ours" / "rejected" / n) for n in fused.writers}
    ours = _run([reader(), fused, writer(root / "ours" / "kept")], root / "ours")
    a, b = _outcomes(root / "dt"), _outcomes(root / "ours")
    n = len(a)
    return {
        "docs": n,
        "datatrove_s": round(theirs, 1),
        "fused_s": round(ours, 1),
        "datatrove_docs_per_s_per_core": round(n / theirs, 1),
        "fused_docs_per_s_per_core": round(n / ours, 1),
        "ratio": round(theirs / ours, 2),
        "kept": sum(v[0] is None for v in a.values()),
        "disagreements": sum(a.get(k) != b.get(k) for k in a.keys() | b.keys()),
    }


def multilingual(sample: Path) -> dict:
    records = [json.loads(line) for line in gzip.open(sample, "rt")]
    truth = {r["id"]: r["language"] for r in records}
    config = LangIdConfig(languages=sorted(set(truth.values())))
    verdicts = {}
    for implementation in ("fused", "datatrove"):
        tagger, language_filter, step = build_heuristic_steps(list(FILTER_PRESETS), config, "unused", implementation)
        docs = [Document(text=r["text"], id=r["id"], metadata={}) for r in records]
        for doc in tagger.run(iter(docs)):
            verdict = language_filter.filter(doc)
            verdicts[implementation, doc.id] = ("langid", verdict[1]) if verdict is not True else step.decide(doc)
    outcomes: dict[str, Counter] = defaultdict(Counter)
    for doc_id, language in truth.items():
        verdict = verdicts["fused", doc_id]
        outcomes[language]["kept" if verdict is None else "/".join(verdict)] += 1
    rates = {
        language: {
            "docs": sum(c.values()),
            "keep": round(c["kept"] / sum(c.values()), 3),
            "drops": dict(c - Counter(kept=c["kept"])),
        }
        for language, c in sorted(outcomes.items())
    }
    enough = {k: v for k, v in rates.items() if v["docs"] >= ENOUGH_DOCS}
    return {
        "per_language": rates,
        "disagreements": sum(verdicts["fused", k] != verdicts["datatrove", k] for k in truth),
        "goal_met": all(v["keep"] >= 0.70 for v in enough.values()) and rates.get("en", {}).get("keep", 0) >= 0.75,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=SHARED / "corpus" / "real_corpus.jsonl.gz")
    parser.add_argument("--multilingual", type=Path, default=SHARED / "multilingual" / "docs.jsonl.gz")
    parser.add_argument("--docs", type=int, default=None, help="first N real documents (default: all)")
    parser.add_argument("--multilingual-only", action="store_true")
    args = parser.parse_args()
    result = {}
    if not args.multilingual_only:
        with tempfile.TemporaryDirectory() as tmp:
            result["real"] = real_documents(args.corpus, args.docs, Path(tmp))
        real = result["real"]
        print(json.dumps(real, indent=1))
        print(
            f"fused / datatrove LocalPipelineExecutor on {real['docs']} real docs, 1 worker: {real['ratio']}x "
            f"(goal >= 5); {real['fused_docs_per_s_per_core']} vs {real['datatrove_docs_per_s_per_core']} docs/s/core; "
            f"disagreements: {real['disagreements']} (must be 0)"
        )
    result["multilingual"] = ml = multilingual(args.multilingual)
    english = ml["per_language"].get("en", {}).get("keep")
    for language, rate in ml["per_language"].items():
        print(f"{language:>4} {rate['docs']:4d} docs  keep {rate['keep']:.0%}  (en {english:.0%})  {rate['drops']}")
    print(f"multilingual disagreements: {ml['disagreements']} (must be 0); keep-rate goal met: {ml['goal_met']}")


if __name__ == "__main__":
    main()
