"""The default engine (embedded Ray) under repetition: back-to-back runs, none may hang.

    python benchmarks/stress_engine.py [--runs 30] [--docs 200] [--timeout 600] [--tasks 20] [--workers 2]

1. Synthesizes one small corpus (`mixwright synth`), then runs `mixwright run configs/demo.yaml` on it
   `--runs` times, each in a fresh run folder with a per-run timeout, as a user would. A run past its
   timeout counts as a hang: its process tree's stacks are dumped with py-spy when installed, then
   its process group is killed. Prints hangs, failures, and the slowest, median and fastest runs;
   each run's stderr (and any stacks) stay in a temp folder, which is removed when all runs passed.
2. Per-task engine overhead: phases of `--tasks` no-op tasks on an embedded Ray with `--workers`
   CPUs, through mixwright's engine and through datatrove 0.10.1's RayPipelineExecutor (the named
   baseline: one actor per task), each in its own process with a timeout. Overhead per task =
   phase wall time x workers / tasks; the first phase (cold: worker processes start) and the mean of
   the next ones (warm) are shown.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipeline.config import CONFIGS_DIR

OVERHEAD_PHASES = 3


def _mixwright(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli", *args]


def _dump_stacks(pid: int, out: Path) -> None:
    """py-spy stacks of the hung run's process tree (driver and Ray workers), for the root cause."""
    if not shutil.which("py-spy"):
        return
    import psutil

    with out.open("w") as fh:
        for proc in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
            fh.write(f"=== {proc.pid} {' '.join(proc.cmdline())[:200]}\n")
            fh.flush()
            subprocess.run(["py-spy", "dump", "--pid", str(proc.pid)], stdout=fh, stderr=subprocess.STDOUT, timeout=60)


def stress(runs: int, docs: int, timeout: float, folder: Path) -> dict:
    corpus = folder / "corpus"
    subprocess.run(_mixwright("synth", "--docs", str(docs), "--output", str(corpus)), check=True, capture_output=True)
    times: list[float] = []
    hangs: list[int] = []
    failures: list[tuple[int, str]] = []
    for i in range(runs):
        run_dir = folder / f"run{i:03d}"
        command = _mixwright(
            "run", str(CONFIGS_DIR / "demo.yaml"), "--input", str(corpus / "corpus.jsonl"), "--output", str(run_dir),
            "--set", f"teacher.labels_path={corpus / 'annotations.jsonl'}",
        )  # fmt: skip
        started = time.monotonic()
        with (folder / f"run{i:03d}.err").open("w") as err:
            proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                hangs.append(i)
                _dump_stacks(proc.pid, folder / f"run{i:03d}.stacks.txt")
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        elapsed = time.monotonic() - started
        if i not in hangs:
            times.append(elapsed)
            if proc.returncode != 0:
                failures.append((i, (folder / f"run{i:03d}.err").read_text()[-500:]))
        status = "HANG" if i in hangs else f"rc={proc.returncode}"
        print(f"run {i + 1}/{runs}: {elapsed:6.1f} s {status}", flush=True)
        shutil.rmtree(run_dir, ignore_errors=True)
    return {"runs": runs, "hangs": hangs, "failures": failures, "times": times}


def overhead_child(engine_name: str, tasks: int, workers: int, folder: Path) -> None:
    """One process: embedded Ray, OVERHEAD_PHASES phases of no-op tasks; prints the phase walls as JSON."""
    import ray
    from datatrove.executor.ray import RayPipelineExecutor
    from datatrove.pipeline.base import PipelineStep

    from pipeline.config import EngineConfig
    from pipeline.engine import configure_logging, run_steps

    class NoOp(PipelineStep):
        name = "no-op"

        def run(self, data, rank: int = 0, world_size: int = 1):
            yield from ()

    configure_logging(folder / "overhead.log")
    ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
    engine = EngineConfig(kind="ray", workers=workers)
    walls = []
    for phase in range(OVERHEAD_PHASES):
        logs = folder / f"{engine_name}-{phase}"
        started = time.monotonic()
        if engine_name == "mixwright":
            run_steps("no-op", [NoOp()], tasks, engine, logs, show_progress=False)
        else:
            RayPipelineExecutor(
                [NoOp()], tasks=tasks, workers=workers, logging_dir=str(logs), cpus_per_task=1, mem_per_cpu_gb=0
            ).run()
        walls.append(time.monotonic() - started)
    print(json.dumps(walls))


def overhead(tasks: int, workers: int, timeout: float, folder: Path) -> dict[str, list[float] | str]:
    """Phase wall times per engine, or why there are none."""
    results: dict[str, list[float] | str] = {}
    for name in ("mixwright", "datatrove"):
        command = [sys.executable, __file__, "--overhead-child", name, "--tasks", str(tasks), "--workers", str(workers),
                   "--folder", str(folder)]  # fmt: skip
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=timeout, start_new_session=True)
            ok = out.returncode == 0
            results[name] = json.loads(out.stdout.strip().splitlines()[-1]) if ok else f"failed: {out.stderr[-800:]}"
        except subprocess.TimeoutExpired:
            results[name] = f"did not finish within {timeout:.0f} s"  # datatrove's actor executor can hang: ray#28328
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--docs", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=600, help="seconds per run before it counts as a hang")
    parser.add_argument("--tasks", type=int, default=20, help="no-op tasks per phase for the overhead figure")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--overhead-child", choices=["mixwright", "datatrove"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.overhead_child:
        overhead_child(args.overhead_child, args.tasks, args.workers, args.folder)
        return

    folder = Path(tempfile.mkdtemp(prefix="stress_engine_"))
    result = stress(args.runs, args.docs, args.timeout, folder / "stress")
    times = result["times"]
    print(f"\n{args.runs} back-to-back `mixwright run` (default engine: embedded Ray, {args.docs} docs):")
    print(f"  hangs (> {args.timeout:.0f} s): {len(result['hangs'])} {result['hangs'] or ''}")
    print(f"  failed runs: {len(result['failures'])}")
    for i, tail in result["failures"]:
        print(f"    run {i}: ...{tail}")
    if times:
        print(f"  slowest {max(times):.1f} s, median {statistics.median(times):.1f} s, fastest {min(times):.1f} s")

    walls = overhead(args.tasks, args.workers, args.timeout, folder)
    print(f"\nper-task engine overhead ({args.tasks} no-op tasks per phase, {args.workers} workers, embedded Ray):")
    per_task = {}
    for name, label in (("mixwright", "mixwright (Ray task per rank)"), ("datatrove", "datatrove (actor per task)")):
        phases = walls[name]
        if isinstance(phases, str):
            print(f"  {label:32s} {phases}")
            continue
        cold, warm = (w * args.workers / args.tasks for w in (phases[0], statistics.mean(phases[1:])))
        per_task[name] = warm
        print(f"  {label:32s} cold {cold:.3f} s/task, warm {warm:.3f} s/task")
    if len(per_task) == 2:
        print(f"  warm ratio datatrove / mixwright: {per_task['datatrove'] / per_task['mixwright']:.1f}x")
    if result["hangs"] or result["failures"]:
        print(f"  stderr of each run and py-spy stacks of hung runs kept in {folder}")
    else:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
