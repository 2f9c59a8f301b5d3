"""Shared fixtures: one Ray for the whole session, and synthetic corpora made once."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.dataset as ds
import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def init_session_ray() -> None:
    """The test session's embedded Ray. address="local": a new instance even when another Ray (e.g.
    the cluster test's) is running on this machine."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)


@pytest.fixture(scope="session")
def ray_session():
    """Ray starts once per test session: starting it costs seconds."""
    import ray

    if not ray.is_initialized():
        init_session_ray()
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory) -> Path:
    """600 synthetic documents with ground truth (all kinds, domains, duplicates, planted items)."""
    from pipeline.synth import generate

    folder = tmp_path_factory.mktemp("small_corpus")
    generate(folder, docs=600, seed=7)
    return folder


def write_config(path: Path, corpus: Path | list[str], run_dir: Path, **sections) -> Path:
    """A YAML config for tests: local engine, 1 worker, everything else from `sections`.

    With a synthetic corpus folder, the teacher reads its annotations and decontamination its
    planted benchmark; with bare input files, the model-based stages are off."""
    tree: dict = {"output": {"dir": str(run_dir)}, "engine": {"kind": "local", "workers": 1}}
    if isinstance(corpus, Path):
        tree["input"] = {"paths": [str(corpus / "corpus.jsonl")]}
        tree["teacher"] = {"labels_path": str(corpus / "annotations.jsonl")}
        tree["decontam"] = {"benchmarks": str(corpus / "benchmarks.yaml")}
    else:
        tree["input"] = {"paths": corpus}
        tree["students"] = {"enabled": False}
    for key, value in sections.items():
        tree[key] = {**tree.get(key, {}), **value} if isinstance(value, dict) else value
    path.write_text(json.dumps(tree))
    return path


def table_rows(folder: Path, sort_by: str = "id") -> list[dict]:
    """All rows of the Parquet files under `folder` (hive partitions included), sorted: file names
    and sharding may differ between engines, the rows must not."""
    files = sorted(str(p) for p in folder.rglob("*.parquet"))
    if not files:
        return []
    table = ds.dataset(files, format="parquet", partitioning="hive").to_table()
    return sorted(table.to_pylist(), key=lambda row: (str(row[sort_by]), json.dumps(row, sort_keys=True, default=str)))


# Outputs whose rows must match between runs (file names and sharding may differ).
OUTPUT_FOLDERS = ("mixture", "rejected", "quarantine")


def run_outputs(run_dir: Path) -> dict[str, list[dict]]:
    return {name: table_rows(run_dir / name) for name in OUTPUT_FOLDERS}


def engine_run(tmp_path: Path, corpus: Path, name: str, shard_mb: float = 0.1, **engine) -> Path:
    """The full pipeline on `corpus` in-process; small shards, so there are several tasks (13 at
    0.1 MB). Ray runs take larger shards, which also shows that a different sharding gives the same
    rows."""
    from pipeline.config import load_config
    from pipeline.runner import run_pipeline

    run_dir = tmp_path / name
    cfg = write_config(tmp_path / f"{name}.yaml", corpus, run_dir, engine=engine, input={"shard_mb": shard_mb})
    run_pipeline(load_config(cfg), show_progress=False)
    return run_dir


@pytest.fixture(scope="session")
def reference_run(small_corpus, tmp_path_factory) -> Path:
    """The small corpus through every phase on the local engine with one worker: what every other
    engine, worker count, cluster or resumed run must reproduce row for row."""
    return engine_run(tmp_path_factory.mktemp("reference"), small_corpus, "local1", kind="local", workers=1)


# A document and a config key that would run script if a report failed to escape them (the key
# has no "." or "=", which --set would split on).
PAYLOAD = '<script>document.body.setAttribute("data-pwned","1")</script><img src=x onerror="document.body.setAttribute(\'data-pwned\',\'1\')">'  # noqa: E501
KEY_PAYLOAD = '<script>top["document"]["body"]["setAttribute"]("data-pwned","1")</script>'


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """One `mixwright demo` run (CLI, Ray engine) on 1,500 synthetic documents plus an HTML payload
    document that contains a planted benchmark item, and a payload mixture key: every report has
    untrusted text in it."""
    import subprocess
    import sys

    from pipeline.synth import benchmark_items, generate

    run_dir = tmp_path_factory.mktemp("demo") / "run"
    corpus = run_dir / "input"
    generate(corpus, docs=1500, seed=3)
    item = benchmark_items()[0]
    # a clean document survives the heuristic filters, so the payload reaches the contamination report
    host = next(
        r
        for r in map(json.loads, (corpus / "corpus.jsonl").open())
        if r["meta"]["kind"] == "clean" and r["meta"]["language"] == "en"
    )
    # (inside the matched span; C4 keeps only lines that end in terminal punctuation)
    payload_doc = {
        "id": "payload-doc",
        "text": f"{host['text']}\n{item['question']} {PAYLOAD} {item['answer']} That was the question.",
    }
    with (corpus / "corpus.jsonl").open("a") as fh:
        fh.write(json.dumps(payload_doc) + "\n")
    command = [
        sys.executable,
        "-m",
        "pipeline.cli",
        "demo",
        "--docs",
        "1500",
        "--output",
        str(run_dir),
        "--set",
        f"mixture.multipliers.{KEY_PAYLOAD}=2.0",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir / "demo.stdout").write_text(result.stdout)
    return run_dir
