"""Shared fixtures: one Ray for the whole session, and synthetic corpora made once."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.dataset as ds
import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@pytest.fixture(scope="session")
def ray_session():
    """Ray starts once per test session: starting it costs seconds."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
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
    """A YAML config for tests: local engine, 1 worker, everything else from `sections`."""
    inputs = [str(corpus / "corpus.jsonl")] if isinstance(corpus, Path) else corpus
    tree = {"input": {"paths": inputs}, "output": {"dir": str(run_dir)}, "engine": {"kind": "local", "workers": 1}}
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
