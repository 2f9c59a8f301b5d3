"""Local and Ray engines, any worker count: the same rows; a SIGKILLed run resumes to the same rows;
a stalled or failed phase ends with an error naming its tasks and logs."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from datatrove.pipeline.base import PipelineStep

from pipeline.config import EngineConfig
from pipeline.engine import run_steps
from pipeline.errors import PhaseFailed
from tests.conftest import engine_run as _run
from tests.conftest import run_outputs, write_config


def test_local_two_workers_matches_one(reference_run, small_corpus, tmp_path):
    other = _run(tmp_path, small_corpus, "local2", kind="local", workers=2)
    assert run_outputs(other) == run_outputs(reference_run)


def test_ray_matches_local(reference_run, small_corpus, tmp_path, ray_session):
    other = _run(tmp_path, small_corpus, "ray2", shard_mb=0.4, kind="ray", workers=2)
    assert run_outputs(other) == run_outputs(reference_run)
    assert run_outputs(reference_run)["mixture"], "the comparison is not vacuous"


def _completions(run_dir: Path, phase: str) -> int:
    return sum(len(list(p.iterdir())) for p in (run_dir / "work" / phase).rglob("completions"))


# (phase, completed tasks of that phase at the kill): a few points across the per-shard phases
# and the P4 clustering, picked once at random (seeded so a failure reproduces).
_rng = random.Random(20261123)
KILL_POINTS = [
    ("p1_filter", _rng.randint(1, 4)),
    ("p3_score", _rng.randint(1, 4)),
    ("p4_dedup", 1),
    ("p5_clean", _rng.randint(1, 4)),
    ("p7_mixture", _rng.randint(1, 4)),
]


def test_sigkill_in_each_phase_then_resume_gives_identical_output(reference_run, small_corpus, tmp_path):
    run_dir = tmp_path / "killed"
    cfg = write_config(tmp_path / "killed.yaml", small_corpus, run_dir, input={"shard_mb": 0.1})
    command = [sys.executable, "-m", "pipeline.cli", "run", str(cfg)]
    for phase, completed in KILL_POINTS:
        victim = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 300
        while _completions(run_dir, phase) < completed and victim.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert victim.poll() is None, f"the run finished before it could be killed in {phase}"
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
        assert not (run_dir / "reports" / "funnel.json").exists()

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "already complete" in resumed.stderr, "the rerun says which phases it skipped"
    assert run_outputs(run_dir) == run_outputs(reference_run)
    funnel = (run_dir / "reports" / "funnel.json").read_text()
    assert '"holds": true' in funnel


class _BlockOrFail(PipelineStep):
    """Task `block` never ends; task `fail` raises: a stalled and a failed phase."""

    name = "block or fail"

    def __init__(self, block: int = -1, fail: int = -1):
        super().__init__()
        self.block, self.fail = block, fail

    def run(self, data, rank: int = 0, world_size: int = 1):
        if rank == self.fail:
            raise ValueError(f"planted failure in task {rank}")
        while rank == self.block:
            time.sleep(0.1)
        yield from ()


@pytest.fixture
def steps_by_value(ray_session):
    # Ray's workers cannot import this test module: ship its steps by value
    ray_session.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray_session.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.mark.parametrize("kind", ["local", "ray"])
def test_stalled_phase_names_its_unfinished_tasks(kind, tmp_path, steps_by_value):
    # one worker: task 0 starts first and blocks, however slowly a loaded machine starts processes
    engine = EngineConfig(kind=kind, workers=1, stall_timeout_s=10)
    logs = tmp_path / "logs"
    started = time.monotonic()
    with pytest.raises(PhaseFailed) as failed:
        run_steps("stuck", [_BlockOrFail(block=0)], 3, engine, logs, show_progress=False)
    message = str(failed.value)
    assert "engine.stall_timeout_s" in message
    assert f"task 0: {logs / 'logs' / 'task_00000.log'}" in message
    assert "task 1: not started" in message and "task 2: not started" in message
    assert time.monotonic() - started < 120, "the stalled task was left running"


@pytest.mark.parametrize("kind", ["local", "ray"])
def test_failed_phase_shows_the_task_log(kind, tmp_path, steps_by_value):
    engine = EngineConfig(kind=kind, workers=1)
    with pytest.raises(PhaseFailed) as failed:
        run_steps("broken", [_BlockOrFail(fail=0)], 2, engine, tmp_path / "logs", show_progress=False)
    message = str(failed.value)
    assert "ValueError: planted failure in task 0" in message
    assert str(tmp_path / "logs" / "logs" / "task_00000.log") in message


def test_run_log_keeps_its_sink_after_in_process_tasks(tmp_path, capfd):
    # datatrove's task logger removes every loguru sink; the local engine puts the run's back
    from loguru import logger

    from pipeline.engine import configure_logging

    run_log = tmp_path / "run.log"
    configure_logging(run_log)
    run_steps(
        "quiet", [_BlockOrFail()], 2, EngineConfig(kind="local", workers=1), tmp_path / "logs", show_progress=False
    )
    logger.info("after the tasks")
    logger.complete()
    assert "after the tasks" in run_log.read_text()
    assert "tasks completed" not in capfd.readouterr().err, "no datatrove INFO lines between progress lines"
