"""Run a list of datatrove steps as `tasks` tasks on the configured engine, with progress.

`engine.kind: local` uses datatrove's LocalPipelineExecutor; `ray` uses its RayPipelineExecutor on an
embedded Ray (address null) or an existing cluster. Both skip tasks already marked complete in the
logging folder, which is what makes a killed run resumable task by task.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from datatrove.executor import LocalPipelineExecutor
from datatrove.executor.ray import RayPipelineExecutor
from datatrove.pipeline.base import PipelineStep
from loguru import logger
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pipeline.config import EngineConfig
from pipeline.errors import PhaseFailed


class _QuietLocalExecutor(LocalPipelineExecutor):
    # datatrove echoes INFO logs of local rank 0 to the console; everything still goes to the task log.
    def _run_for_rank(self, rank: int, local_rank: int = 0, node_rank: int = -1):
        return super()._run_for_rank(rank, local_rank + 1, node_rank)


def configure_logging(log_file: Path | None = None) -> None:
    """datatrove logs through loguru: keep the console for errors, the full log in the run folder."""
    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        logger.add(log_file, level="INFO")


def ensure_ray(engine: EngineConfig) -> None:
    import ray

    if ray.is_initialized():
        return
    if engine.address:
        ray.init(address=engine.address, log_to_driver=False, configure_logging=False)
    else:
        # address="local": embedded, never an unrelated cluster that `ray start` left on this machine
        ray.init(
            address="local",
            num_cpus=engine.workers or os.cpu_count(),
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )


def default_workers(engine: EngineConfig) -> int:
    if engine.workers:
        return engine.workers
    if engine.kind == "ray":
        import ray

        ensure_ray(engine)
        return max(1, int(ray.cluster_resources().get("CPU", 1)))
    return os.cpu_count() or 1


def completed_tasks(logging_dir: Path) -> int:
    folder = logging_dir / "completions"
    return len(os.listdir(folder)) if folder.is_dir() else 0


def run_steps(
    label: str,
    steps: list[PipelineStep],
    tasks: int,
    engine: EngineConfig,
    logging_dir: Path,
    show_progress: bool = True,
) -> None:
    """Run `steps` for ranks 0..tasks-1; raise PhaseFailed if any task did not complete."""
    workers = min(default_workers(engine), tasks)
    if engine.kind == "ray":
        ensure_ray(engine)
        executor = RayPipelineExecutor(
            pipeline=steps,
            tasks=tasks,
            workers=workers,
            logging_dir=str(logging_dir),
            skip_completed=True,
            cpus_per_task=1,
            # Scheduling is by CPU; a memory reservation would only block tasks on small nodes.
            mem_per_cpu_gb=0,
        )
    else:
        executor = _QuietLocalExecutor(
            pipeline=steps, tasks=tasks, workers=workers, logging_dir=str(logging_dir), skip_completed=True
        )
    done = threading.Event()
    watcher = threading.Thread(target=_watch, args=(label, tasks, logging_dir, done, show_progress), daemon=True)
    watcher.start()
    try:
        executor.run()
    finally:
        done.set()
        watcher.join()
    finished = completed_tasks(logging_dir)
    if finished < tasks:
        raise PhaseFailed(f"{label}: only {finished}/{tasks} tasks completed; see the task logs in {logging_dir}/logs")


def _watch(label: str, tasks: int, logging_dir: Path, done: threading.Event, show: bool) -> None:
    columns = (TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TextColumn("tasks"), TimeElapsedColumn())
    with Progress(*columns, disable=not show, transient=False) as progress:
        bar = progress.add_task(label, total=tasks, completed=completed_tasks(logging_dir))
        while not done.wait(0.5):
            progress.update(bar, completed=completed_tasks(logging_dir))
        progress.update(bar, completed=completed_tasks(logging_dir))
