"""`mixwright mix` against a full run on the same corpus (the baseline: what changing a mixture cost before).

    python benchmarks/bench_mix.py [--docs 2000] [--workers 2] [--engine local]

Runs configs/demo.yaml on a synthetic corpus (every phase), then re-mixes the finished run with
configs/mixtures/anneal.yaml, and prints both wall times, their ratio, and whether the re-mix
equals the same mixture from a fresh full run (compared row for row). The re-mix is timed in
process (`run_mix`: plan, sampling, Parquet, manifest and reports), like the full run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pyarrow.dataset as ds
import yaml

from pipeline.config import CONFIGS_DIR, MixtureConfig, load_config
from pipeline.mix import run_mix
from pipeline.runner import run_pipeline
from pipeline.synth import generate

MIXTURE = CONFIGS_DIR / "mixtures" / "anneal.yaml"


def rows(folder: Path) -> list[dict]:
    files = sorted(str(p) for p in folder.rglob("part-*.parquet"))
    table = ds.dataset(files, format="parquet", partitioning="hive").to_table()
    return sorted(table.to_pylist(), key=lambda row: (row["id"], json.dumps(row, sort_keys=True, default=str)))


def full_run(corpus: Path, run_dir: Path, engine: dict, mixture: dict | None = None) -> float:
    overrides = [f"teacher.labels_path={corpus / 'annotations.jsonl'}", f"engine.kind={engine['kind']}"]
    overrides += [f"engine.workers={engine['workers']}"]
    config = load_config(
        CONFIGS_DIR / "demo.yaml", overrides, inputs=[str(corpus / "corpus.jsonl")], output=str(run_dir)
    )
    if mixture is not None:
        config = config.model_copy(update={"mixtures": {"anneal": mixture}})
    started = time.perf_counter()
    run_pipeline(config, show_progress=False)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--engine", choices=["local", "ray"], default="local")
    args = parser.parse_args()
    engine = {"kind": args.engine, "workers": args.workers}
    mixture_tree = yaml.safe_load(MIXTURE.read_text())["mixture"]
    with tempfile.TemporaryDirectory(prefix="bench_mix_") as tmp:
        root = Path(tmp)
        generate(root / "corpus", docs=args.docs, seed=0)
        full_seconds = full_run(root / "corpus", root / "run", engine)
        started = time.perf_counter()
        run_mix(root / "run", MIXTURE, "anneal", engine, show_progress=False)
        mix_seconds = time.perf_counter() - started
        # The baseline the re-mix must equal: a fresh full run that has the mixture in its config.
        fresh_seconds = full_run(root / "corpus", root / "fresh", engine, MixtureConfig.model_validate(mixture_tree))
        same = rows(root / "run" / "mixtures" / "anneal") == rows(root / "fresh" / "mixtures" / "anneal")
    print(f"corpus: {args.docs:,} synthetic documents; engine {args.engine}, {args.workers} workers")
    print(f"full run (every phase)              : {full_seconds:8.1f} s")
    print(f"full run with the mixture in config : {fresh_seconds:8.1f} s")
    print(f"mix RUN --mixture {MIXTURE.name:<18}: {mix_seconds:8.1f} s")
    ratio = mix_seconds / full_seconds
    print(f"mix / full run                      : {ratio:8.3f}  ({1 / ratio:.0f}x faster)")
    print(f"mix output == fresh full run output : {same}")


if __name__ == "__main__":
    main()
