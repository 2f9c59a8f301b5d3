"""The README's commands, run as a user runs them (subprocess, default engine) on a demo run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.dataset as ds

from pipeline.config import CONFIGS_DIR


def mixwright(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200"},  # wide enough that table cells are not cut
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_demo_prints_where_the_outputs_are(demo_run):
    stdout = (demo_run / "demo.stdout").read_text()
    assert "conservation" in stdout and "holds" in stdout
    assert str(demo_run / "reports" / "domain_mix.html") in stdout.replace("\n", "")
    funnel = json.loads((demo_run / "reports" / "funnel.json").read_text())
    assert funnel["conservation"]["holds"]
    assert [s["name"] for s in funnel["stages"]][-6:] == ["quality", "exact", "url", "dedup", "decontam", "rebalance"]


def test_report(demo_run):
    out = mixwright("report", str(demo_run)).stdout
    for expected in ("Funnel", "Domain mix", "dedup:", "Contamination", "synthbench", "contamination.html"):
        assert expected in out


def test_readme_reads_the_mixture_with_pyarrow(demo_run):
    mixture = ds.dataset(
        demo_run / "mixture", format="parquet", partitioning="hive", exclude_invalid_files=True
    ).to_table()
    manifest = json.loads((demo_run / "mixture" / "manifest.json").read_text())
    assert mixture.num_rows == sum(d["docs_after"] for d in manifest["domains"].values())
    assert set(mixture.column("domain").to_pylist()) <= set(manifest["domains"])


def test_audit(demo_run, tmp_path):
    out = tmp_path / "audit"
    result = mixwright(
        "audit",
        "--benchmarks",
        "configs/benchmarks/demo.yaml",
        str(demo_run / "input" / "corpus.jsonl"),
        "--output",
        str(out),
        cwd=CONFIGS_DIR.parent,
    )
    summary = json.loads((out / "contamination.json").read_text())
    assert summary["benchmarks"]["synthbench"]["docs_hit"] > 0
    assert "synthbench" in result.stdout + result.stderr
    assert (out / "contamination.parquet").is_file() and (out / "contamination.html").is_file()


def test_train(demo_run, tmp_path):
    result = mixwright("train", str(demo_run), "--output", str(tmp_path / "models"))
    assert (tmp_path / "models" / "domain.bin").is_file()
    assert "accuracy" in result.stdout


def test_plan():
    out = mixwright("plan", "--tokens", "18T", "--cores", "4096", "--gpus", "16").stdout
    for expected in ("CPU total", "GPU teacher", "peak disk", "wall clock", "prefill tokens/s/GPU", "measured by"):
        assert expected in out


def test_run_on_your_own_corpus(small_corpus, tmp_path):
    """README section 2, with the demo config and the teacher labels of the synthetic corpus."""
    run_dir = tmp_path / "mine"
    result = mixwright(
        "run",
        str(CONFIGS_DIR / "demo.yaml"),
        "--input",
        str(small_corpus / "corpus.jsonl"),
        "--output",
        str(run_dir),
        "--set",
        f"teacher.labels_path={small_corpus / 'annotations.jsonl'}",
    )
    assert (run_dir / "mixture" / "manifest.json").is_file()
    assert "holds" in result.stdout
    rerun = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli",
            "run",
            str(CONFIGS_DIR / "demo.yaml"),
            "--input",
            str(small_corpus / "corpus.jsonl"),
            "--output",
            str(run_dir),
            "--set",
            f"teacher.labels_path={small_corpus / 'annotations.jsonl'}",
            "--set",
            "engine.kind=local",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert rerun.stderr.count("already complete") == 7, "every phase is skipped on rerun, whatever the engine"


def test_synth(tmp_path):
    mixwright("synth", "--docs", "50", "--output", str(tmp_path / "s"), "--seed", "1")
    lines = (tmp_path / "s" / "corpus.jsonl").read_text().splitlines()
    assert len(lines) == 50
    for name in ("annotations.jsonl", "benchmark.jsonl", "benchmarks.yaml"):
        assert (tmp_path / "s" / name).is_file()
