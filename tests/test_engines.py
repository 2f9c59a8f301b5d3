"""Local and Ray engines, any worker count: the same rows; a SIGKILLed run resumes to the same rows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.runner import run_pipeline
from tests.conftest import table_rows, write_config

# Outputs whose rows must match between runs (file names and sharding may differ).
OUTPUT_FOLDERS = ("mixture", "rejected", "quarantine")


def run_outputs(run_dir: Path) -> dict[str, list[dict]]:
    return {name: table_rows(run_dir / name) for name in OUTPUT_FOLDERS}


def _run(tmp_path: Path, corpus: Path, name: str, **engine) -> Path:
    run_dir = tmp_path / name
    cfg = write_config(tmp_path / f"{name}.yaml", corpus, run_dir, engine=engine, input={"shard_mb": 0.1})
    run_pipeline(load_config(cfg), show_progress=False)
    return run_dir


@pytest.fixture(scope="module")
def reference_run(small_corpus, tmp_path_factory) -> Path:
    return _run(tmp_path_factory.mktemp("reference"), small_corpus, "local1", kind="local", workers=1)


def test_local_two_workers_matches_one(reference_run, small_corpus, tmp_path):
    other = _run(tmp_path, small_corpus, "local2", kind="local", workers=2)
    assert run_outputs(other) == run_outputs(reference_run)


def test_ray_matches_local(reference_run, small_corpus, tmp_path, ray_session):
    other = _run(tmp_path, small_corpus, "ray2", kind="ray", workers=2)
    assert run_outputs(other) == run_outputs(reference_run)
    assert run_outputs(reference_run)["mixture"], "the comparison is not vacuous"


def _completions(run_dir: Path) -> int:
    return sum(len(list(p.iterdir())) for p in run_dir.glob("work/*/logs/completions"))


def test_sigkill_then_resume_gives_identical_output(reference_run, small_corpus, tmp_path):
    run_dir = tmp_path / "killed"
    cfg = write_config(tmp_path / "killed.yaml", small_corpus, run_dir, input={"shard_mb": 0.1})
    command = [sys.executable, "-m", "pipeline.cli", "run", str(cfg)]
    victim = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while _completions(run_dir) < 3 and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert victim.poll() is None, "the run finished before it could be killed; the test would prove nothing"
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    assert not (run_dir / "reports" / "funnel.json").exists()

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert run_outputs(run_dir) == run_outputs(reference_run)
    funnel = (run_dir / "reports" / "funnel.json").read_text()
    assert '"holds": true' in funnel
