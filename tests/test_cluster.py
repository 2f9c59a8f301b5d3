"""The engine on multi-node Ray clusters on this machine, driven by `mixwright run` as a user would.

- A cluster started with `ray start` as the README says (head, then a worker node), with Ray's
  default token authentication: outputs equal the local engine's; a wrong token or an address where
  nothing listens is a clear error, not a traceback or a hang.
- A worker node killed mid-phase: the engine resubmits its tasks, in the same run, and no document
  is lost or written twice.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_outputs, table_rows, write_config

pytestmark = pytest.mark.timeout(900)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _user_env(home: Path, **extra: str) -> dict[str, str]:
    """A user's environment: Ray's default auth mode (RAY_AUTH_MODE unset) and their own ~/.ray."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    return {**env, "HOME": str(home), **extra}


def _ray_start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    # --block keeps every process of the node in this process group, so the test can stop exactly
    # them (never `ray stop`, which stops every Ray on the machine). Own ports and temp dir: other
    # clusters may run here.
    isolation = [
        "--block",
        "--num-cpus",
        "1",
        "--disable-usage-stats",
        "--temp-dir",
        str(log.parent),
        "--dashboard-agent-listen-port",
        str(_free_port()),
        "--metrics-export-port",
        str(_free_port()),
    ]
    with log.open("w") as out:
        return subprocess.Popen(
            ["ray", "start", *args, *isolation], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _wait_started(proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while "Ray runtime started" not in log.read_text() and time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        time.sleep(0.5)
    assert "Ray runtime started" in log.read_text(), log.read_text()[-3000:]


def _stop(procs: list[subprocess.Popen]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for proc in procs:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 30
        while any(proc.poll() is None for proc in procs) and time.monotonic() < deadline:
            time.sleep(0.2)


def _processes_using(folder: Path) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if f"{folder}/" in text:
            found.append(text[:200])
    return found


@pytest.fixture(scope="module")
def started_cluster() -> Iterator[tuple[str, Path]]:
    """The README's commands: `ray get-auth-token --generate`, `ray start --head --port P` and one
    `ray start --address 127.0.0.1:P` worker node, all with RAY_AUTH_MODE=token as Ray's CLI needs."""
    # A short root: Ray's socket paths under --temp-dir must stay within AF_UNIX's 107 bytes, which
    # pytest's numbered temp folders overrun (seen at pytest-122).
    root = Path(tempfile.mkdtemp(prefix="mw", dir="/tmp"))
    home = root / "home"
    home.mkdir()
    env = _user_env(home, RAY_AUTH_MODE="token")
    subprocess.run(["ray", "get-auth-token", "--generate"], env=env, check=True, capture_output=True)
    port = _free_port()
    head_log, worker_log = root / "h" / "out.log", root / "w" / "out.log"
    head_log.parent.mkdir()
    worker_log.parent.mkdir()
    procs = [
        _ray_start(
            [
                "--head",
                "--port",
                str(port),
                "--include-dashboard",
                "false",
                "--ray-client-server-port",
                str(_free_port()),
            ],
            env,
            head_log,
        )
    ]
    try:
        _wait_started(procs[0], head_log)
        procs.append(_ray_start(["--address", f"127.0.0.1:{port}"], env, worker_log))
        _wait_started(procs[1], worker_log)
        yield f"127.0.0.1:{port}", home
    finally:
        _stop(procs)
        assert not _processes_using(root), "a process of the test's cluster outlived it"
        shutil.rmtree(root, ignore_errors=True)


def _run_command(tmp_path: Path, corpus: Path, name: str, address: str, workers: int = 2) -> tuple[list[str], Path]:
    run_dir = tmp_path / name
    cfg = write_config(
        tmp_path / f"{name}.yaml",
        corpus,
        run_dir,
        engine={"kind": "ray", "address": address, "workers": workers},
        input={"shard_mb": 0.4},  # 4 tasks per phase, not the reference's 13: the rows must not change
    )
    return [sys.executable, "-m", "pipeline.cli", "run", str(cfg)], run_dir


def test_ray_start_cluster_matches_local(started_cluster, reference_run, small_corpus, tmp_path):
    address, home = started_cluster
    command, run_dir = _run_command(tmp_path, small_corpus, "cluster", address)
    # RAY_AUTH_MODE unset, as in a shell without the README's export (the failing case): the
    # engine applies Ray's head-node rule to a loopback address
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=_user_env(home))
    assert result.returncode == 0, result.stderr[-3000:]
    assert run_outputs(run_dir) == run_outputs(reference_run)


def test_wrong_token_is_a_clear_error(started_cluster, small_corpus, tmp_path):
    address, home = started_cluster
    command, _ = _run_command(tmp_path, small_corpus, "wrong-token", address)
    env = _user_env(home, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="0" * 32)
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "engine.address" in result.stderr and "token" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_address_is_a_clear_error(small_corpus, tmp_path):
    command, _ = _run_command(tmp_path, small_corpus, "unreachable", f"127.0.0.1:{_free_port()}")
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "engine.address" in result.stderr and "nothing listening" in result.stderr
    assert "Traceback" not in result.stderr


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


def test_worker_node_killed_mid_phase_is_resubmitted(cluster, reference_run, small_corpus, tmp_path):
    command, run_dir = _run_command(tmp_path, small_corpus, "node-killed", cluster.address)
    proc = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 300
        # Kill a node while P3 runs: P1 is done, so the lost tasks are resubmitted mid-pipeline.
        logs = run_dir / "work" / "p3_score" / "logs"
        while not (logs.is_dir() and any(logs.iterdir())) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before a node could be killed"
        cluster.remove_node(cluster.worker_nodes_started[0], allow_graceful=False)
        cluster.add_node(num_cpus=1)  # capacity comes back, as an autoscaler would bring it
        # the same run finishes: no stop-and-rerun
        _, stderr = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, stderr[-3000:]
    assert run_outputs(run_dir) == run_outputs(reference_run)
    ids = [row["id"] for row in table_rows(run_dir / "mixture")]
    assert len(ids) == len(set(ids)), "a document was written twice"
