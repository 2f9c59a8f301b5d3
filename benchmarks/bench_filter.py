"""P1 throughput of mixwright against datatrove's own LocalPipelineExecutor on the same filters.

    python benchmarks/bench_filter.py [--docs 5000] [--workers 2]

Both sides run the same work on the same synthetic corpus: read JSONL, lid.176 language ID,
datatrove's Gopher quality / Gopher repetition / C4 / FineWeb filters, every rejected document
written to Parquet, survivors written out. datatrove's side is the plain datatrove recipe:
JsonlReader, the filters with uncompressed JsonlWriter exclusion writers and output (datatrove's
ParquetWriter fails on this corpus: it infers each batch's schema from the metadata); since datatrove
parallelises by file (its issue #74), its corpus is pre-split into one file per worker so that it
gets every core too (the best case for it). mixwright reads the single file, cut into shards.
The ratio is mixwright docs/s over datatrove docs/s; the goal is >= 0.95 (the wrapper costs nothing).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter

from pipeline.config import EngineConfig, InputConfig, LangIdConfig
from pipeline.engine import configure_logging, run_steps
from pipeline.synth import generate
from stages.checkpoint import PhaseOutput
from stages.heuristics import FILTER_CLASSES, build_filter
from stages.langid import LanguageFilter, LanguageTagger
from stages.reader import ShardReader, plan_shards


def split_corpus(corpus: Path, parts: int, folder: Path) -> None:
    folder.mkdir(parents=True)
    lines = corpus.read_text().splitlines(keepends=True)
    step = -(-len(lines) // parts)
    for k in range(parts):
        (folder / f"part{k}.jsonl").write_text("".join(lines[k * step : (k + 1) * step]))


def run_mixwright(corpus: Path, out: Path, workers: int) -> float:
    config = InputConfig(paths=[str(corpus)])
    shards = plan_shards(config, min_shards=2 * workers)
    steps = [
        ShardReader(shards, config, str(out / "quarantine"), str(out / "counts")),
        LanguageTagger(),
        LanguageFilter(LangIdConfig(), exclusion_writer=None),
        *(build_filter(name, out / "rejected") for name in FILTER_CLASSES),
        PhaseOutput(out / "docs"),
    ]
    started = time.perf_counter()
    run_steps("mixwright P1", steps, len(shards), EngineConfig(kind="local", workers=workers), out / "logs", False)
    return time.perf_counter() - started


def run_datatrove(parts: Path, out: Path, workers: int) -> float:
    steps = [
        JsonlReader(str(parts)),
        LanguageTagger(),
        LanguageFilter(LangIdConfig(), exclusion_writer=None),
        *(
            cls(exclusion_writer=JsonlWriter(str(out / "rejected" / name), compression=None))
            for name, cls in FILTER_CLASSES.items()
        ),
        JsonlWriter(str(out / "docs"), compression=None),
    ]
    executor = LocalPipelineExecutor(pipeline=steps, tasks=workers, workers=workers, logging_dir=str(out / "logs"))
    started = time.perf_counter()
    executor.run()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=5_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    configure_logging()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate(root / "synth", docs=args.docs, seed=0)
        corpus = root / "synth" / "corpus.jsonl"
        split_corpus(corpus, args.workers, root / "parts")
        # Warm the OS cache and the lazily loaded models once so neither side pays for it.
        run_datatrove(root / "parts", root / "warm", args.workers)
        ours = run_mixwright(corpus, root / "ours", args.workers)
        theirs = run_datatrove(root / "parts", root / "datatrove", args.workers)
    result = {
        "docs": args.docs,
        "workers": args.workers,
        "mixwright_docs_per_s": round(args.docs / ours, 1),
        "datatrove_docs_per_s": round(args.docs / theirs, 1),
        "ratio": round(theirs / ours, 3),
    }
    print(json.dumps(result, indent=2))
    print(f"P1 throughput ratio mixwright / datatrove LocalPipelineExecutor: {result['ratio']:.3f}x (goal >= 0.95)")


if __name__ == "__main__":
    main()
