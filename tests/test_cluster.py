"""The same config on a multi-node Ray cluster (head + 2 worker nodes on this machine).

The run is a `mixwright run` process that connects to the cluster through `engine.address`, as a
user's would. Its outputs must equal a local-engine run's; killing a worker node mid-run must not
lose or duplicate a document (datatrove resubmits the tasks of a dead node, or a rerun resumes).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_outputs, table_rows, write_config

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    # The head gets no CPU: every task runs on a worker node, so killing one really loses work.
    cluster = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 0})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    cluster.worker_nodes_started = workers
    yield cluster
    cluster.shutdown()


def _command(tmp_path: Path, corpus: Path, name: str, address: str) -> tuple[list[str], Path]:
    run_dir = tmp_path / name
    cfg = write_config(
        tmp_path / f"{name}.yaml", corpus, run_dir, engine={"kind": "ray", "address": address, "workers": 2},
        input={"shard_mb": 0.4},  # 4 tasks per phase, not the reference's 13: the rows must not change
    )
    return [sys.executable, "-m", "pipeline.cli", "run", str(cfg)], run_dir


def test_cluster_matches_local(cluster, reference_run, small_corpus, tmp_path):
    command, run_dir = _command(tmp_path, small_corpus, "cluster", cluster.address)
    result = subprocess.run(command, capture_output=True, text=True, timeout=500)
    assert result.returncode == 0, result.stderr[-3000:]
    assert run_outputs(run_dir) == run_outputs(reference_run)


def test_worker_node_killed_mid_run_loses_nothing(cluster, reference_run, small_corpus, tmp_path):
    command, run_dir = _command(tmp_path, small_corpus, "node-killed", cluster.address)
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    # Kill a node while P3 runs: P1 is done, so the lost tasks are resubmitted mid-pipeline.
    while not (run_dir / "work" / "p3_score" / "logs").is_dir() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before a node could be killed"
    victim = cluster.worker_nodes_started[0]
    cluster.remove_node(victim, allow_graceful=False)
    cluster.add_node(num_cpus=1)  # capacity comes back, as an autoscaler would bring it
    try:
        _, stderr = proc.communicate(timeout=240)
        returncode = proc.returncode
    except subprocess.TimeoutExpired:
        # datatrove's Ray executor can stall when a node dies while it is placing a task (seen in
        # 1 of 3 CI runs): the user's remedy is to stop and rerun, which resumes from the completed tasks.
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        rerun = subprocess.run(command, capture_output=True, text=True, timeout=400)
        returncode, stderr = rerun.returncode, rerun.stderr
    assert returncode == 0, stderr[-3000:]
    outputs = run_outputs(run_dir)
    assert outputs == run_outputs(reference_run)
    ids = [row["id"] for row in table_rows(run_dir / "mixture")]
    assert len(ids) == len(set(ids)), "a document was written twice"
