"""Run a list of datatrove steps as `tasks` tasks on the configured engine, with progress.

`engine.kind: local` uses datatrove's LocalPipelineExecutor. `ray` runs each rank as one plain Ray
task in a pooled Ray worker process, on an embedded Ray (address null) or an existing cluster.
Both skip tasks already marked complete in the logging folder, which is what makes a killed run
resumable task by task, and both stop a phase that makes no progress for `engine.stall_timeout_s`.
"""

from __future__ import annotations

import _thread
import functools
import ipaddress
import os
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from datatrove.executor import LocalPipelineExecutor
from datatrove.executor.base import PipelineExecutor
from datatrove.executor.ray import RayPipelineExecutor
from datatrove.pipeline.base import PipelineStep
from loguru import _better_exceptions, logger
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pipeline.config import EngineConfig
from pipeline.errors import ConfigError, MixwrightError, PhaseFailed
from pipeline.remote import TaskSync

# Every logger.add recomputes loguru's library folders (sysconfig paths of every install scheme), and
# datatrove adds sinks three times per task: ~0.3 s of CPU in a 7-task run. They are fixed for a process.
# A private loguru method: where a loguru release drops it, logging is only slower, never broken.
_formatter = _better_exceptions.ExceptionFormatter
if hasattr(_formatter, "_get_lib_dirs"):
    _formatter._get_lib_dirs = staticmethod(functools.cache(_formatter._get_lib_dirs))

# Ray resubmits a task whose worker process or node died this many times (datatrove's own limit).
MAX_RETRIES = 3
# Plain progress lines (stderr not a terminal): at most one per completed task, at least one a minute.
HEARTBEAT_S = 60.0
LOG_TAIL_LINES = 15


def _synced(sync: TaskSync | None, rank: int, run: Callable[[], Any]) -> Any:
    """A run folder in object storage: the task pulls what its phase reads, runs, and pushes what it
    wrote, its completion marker last (pipeline/remote.py)."""
    return run() if sync is None else sync.run(rank, run)


class _QuietLocalExecutor(LocalPipelineExecutor):
    task_sync: TaskSync | None = None

    # datatrove echoes INFO logs of local rank 0 to the console; everything still goes to the task log.
    def _run_for_rank(self, rank: int, local_rank: int = 0, node_rank: int = -1):
        base = super()._run_for_rank
        try:
            return _synced(self.task_sync, rank, lambda: base(rank, local_rank + 1, node_rank))
        finally:
            # datatrove's task logger removes every sink and ends by adding a console one at INFO
            # ("3/8 tasks completed.", the stats table), which would interleave with the progress
            # lines and leave run.log without a sink: the run's logging again
            configure_logging(_run_log)


def _run_rank(executor: RayTaskExecutor, rank: int) -> None:
    # local_rank 1: the worker's stderr gets errors only, the task log gets everything.
    _synced(executor.task_sync, rank, lambda: executor._run_for_rank(rank, local_rank=1))


class RayTaskExecutor(RayPipelineExecutor):
    """One Ray task per rank, run in the Ray worker's own process.

    datatrove 0.10.1's executor starts an actor per task that forks a `multiprocess` pool; a fork
    inside a threaded Ray worker can deadlock in `Pool.terminate` (ray-project/ray#28328), and each
    actor costs ~2 s to start. Plain tasks reuse Ray's worker pool, so a step's per-process cache
    (a model, a benchmark index) also survives from task to task. A task whose worker or node dies
    is resubmitted by Ray (`max_retries`); an exception in a step is not retried.
    """

    # The base class's version, not RayPipelineExecutor's: that one writes the task log to a fixed
    # /tmp/ray_logs path (shared by every run on the node) and copies it only when the task ends,
    # so a stalled or killed task would leave no log in the run folder.
    _run_for_rank = PipelineExecutor._run_for_rank
    task_sync: TaskSync | None = None

    def __init__(self, *args: Any, stalled: threading.Event, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._stalled = stalled

    def __getstate__(self) -> dict[str, Any]:
        # workers need the pipeline, not the driver's threading state
        return {key: value for key, value in self.__dict__.items() if key != "_stalled"}

    def run(self) -> None:
        import ray

        pending = deque(self.get_incomplete_ranks())
        if not pending:
            return
        self.save_executor_as_json()
        executor_ref = ray.put(self)
        remote = ray.remote(_run_rank).options(
            num_cpus=self.cpus_per_task, max_retries=MAX_RETRIES, retry_exceptions=False
        )
        running: dict[Any, int] = {}
        first_error: BaseException | None = None
        try:
            while pending or running:
                while pending and len(running) < self.workers:
                    rank = pending.popleft()
                    running[remote.remote(executor_ref, rank)] = rank
                done, _ = ray.wait(list(running), num_returns=1, timeout=0.5, fetch_local=False)
                for ref in done:
                    rank = running.pop(ref)
                    try:
                        ray.get(ref)
                        if self.task_sync is not None:  # the task may have run on another node
                            self.task_sync.fetch_marker(rank)
                    except ray.exceptions.RayError as exc:  # the task log has the step's traceback
                        logger.warning(f"task {rank} failed: {exc}")
                        first_error = first_error or exc
                if self._stalled.is_set():
                    return
        finally:
            for ref in running:  # stalled or interrupted: free the cluster's workers
                ray.cancel(ref, force=True)
        if first_error is not None:  # after every other task ran, as datatrove's executors do
            raise first_error


_run_log: Path | None = None  # the log file of configure_logging, for after an in-process task


def configure_logging(log_file: Path | None = None) -> None:
    """datatrove logs through loguru: keep the console for errors, the full log in the run folder."""
    global _run_log
    _run_log = log_file
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
        _connect(engine.address)
    else:
        # address="local": embedded, never an unrelated cluster that `ray start` left on this machine
        try:
            ray.init(
                address="local",
                num_cpus=engine.workers or os.cpu_count(),
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        except Exception as exc:  # e.g. Ray's fixed 30 s for its raylet to register (ray/_private/node.py)
            ray.shutdown()
            raise MixwrightError(
                f"the embedded Ray did not start: {exc} (load average {os.getloadavg()[0]:.0f} on {os.cpu_count()} "
                "CPUs); rerun when the machine is less busy, or set engine.kind=local"
            ) from exc


_AUTH_HELP = (
    "the cluster's token in ~/.ray/auth_token (or RAY_AUTH_TOKEN_PATH / RAY_AUTH_TOKEN) and RAY_AUTH_MODE=token, "
    "as for `ray start` (README, 'A Ray cluster')"
)


def _connect(address: str) -> None:
    """Join an existing cluster; a wrong address or token is a ConfigError, never a hang or a traceback."""
    from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available

    if address == "auto":  # the cluster `ray start` left on this node; Ray applies its own auth rule
        _init_cluster(address)
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(
            f"engine.address: expected HOST:PORT of a Ray head node (`ray start --head`), found {address!r}"
        )
    try:
        # ray.init retries an address where nothing listens for minutes; ask the socket first
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise ConfigError(
            f"engine.address: expected a running Ray head node (`ray start --head --port {port}`), "
            f"found nothing listening at {address} ({exc.strerror or exc})"
        ) from None
    if _is_loopback(host):
        # A head started on this machine enabled token auth if ~/.ray/auth_token exists (Ray's rule for
        # `ray start --head`); ray.init never applies that rule to an explicit address, so apply it here.
        # The token then goes only to this machine, and a cluster without auth ignores it.
        maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    _init_cluster(address)


def _init_cluster(address: str) -> None:
    import ray

    try:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ray.exceptions.RayError) as exc:
        if _auth_refused(exc):
            raise ConfigError(
                f"engine.address: the Ray cluster at {address} refused this client's token; expected {_AUTH_HELP}"
            ) from None
        raise ConfigError(f"engine.address: expected a Ray head node at {address}, found: {exc}") from None


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _auth_refused(exc: BaseException | None) -> bool:
    # Ray raises AuthenticationError, or a RuntimeError that quotes it, depending on which client gave up
    while exc is not None:
        if type(exc).__name__ == "AuthenticationError" or "InvalidAuthToken" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def default_workers(engine: EngineConfig) -> int:
    if engine.workers:
        return engine.workers
    if engine.kind == "ray":
        import ray

        ensure_ray(engine)
        return max(1, int(ray.cluster_resources().get("CPU", 1)))
    return os.cpu_count() or 1


def completed_ranks(logging_dir: Path) -> set[int]:
    folder = logging_dir / "completions"
    return {int(name) for name in os.listdir(folder) if name.isdigit()} if folder.is_dir() else set()


def completed_tasks(logging_dir: Path) -> int:
    return len(completed_ranks(logging_dir))


def run_steps(
    label: str,
    steps: list[PipelineStep],
    tasks: int,
    engine: EngineConfig,
    logging_dir: Path,
    show_progress: bool = True,
    docs: Callable[[], float] | None = None,
    sync: TaskSync | None = None,
) -> None:
    """Run `steps` for ranks 0..tasks-1; raise PhaseFailed if a task failed or the phase stalled.

    `sync`: the run folder is in object storage (RunDir.task_sync).
    `docs`, when given, returns the documents processed so far: the progress then shows docs/s too."""
    workers = min(default_workers(engine), tasks)
    stalled = threading.Event()
    if engine.kind == "ray":
        ensure_ray(engine)
        executor: PipelineExecutor = RayTaskExecutor(
            pipeline=steps,
            tasks=tasks,
            workers=workers,
            logging_dir=str(logging_dir),
            skip_completed=True,
            cpus_per_task=1,
            # Scheduling is by CPU; a memory reservation would only block tasks on small nodes.
            mem_per_cpu_gb=0,
            stalled=stalled,
        )
        on_stall: Callable[[], None] = stalled.set
    else:
        executor = _QuietLocalExecutor(
            pipeline=steps, tasks=tasks, workers=workers, logging_dir=str(logging_dir), skip_completed=True
        )
        # The local executor runs in this thread (or waits on its pool here): interrupt it, which the
        # interpreter can only do for the main thread; elsewhere a stall is reported when the phase ends.
        on_stall = _interrupt_main(stalled) if threading.current_thread() is threading.main_thread() else stalled.set
    executor.task_sync = sync
    monitor = _Monitor(label, tasks, logging_dir, engine.stall_timeout_s, show_progress, on_stall, docs)
    monitor.start()
    error: BaseException | None = None
    try:
        try:
            executor.run()
        finally:
            monitor.stop()
    except KeyboardInterrupt:  # the stall interrupt may land while the monitor is being stopped, too
        if not stalled.is_set():
            raise
    except Exception as exc:  # a step raised; the task log has the traceback
        error = exc
    if sync is not None and engine.kind == "ray":  # local tasks ran in this mirror
        sync.collect()
    unfinished = sorted(set(range(tasks)) - completed_ranks(logging_dir))
    if stalled.is_set() and unfinished:
        raise PhaseFailed(
            f"{label}: no task completed in {engine.stall_timeout_s:g} s (engine.stall_timeout_s); "
            f"unfinished tasks and their logs:\n{_task_list(logging_dir, unfinished)}"
        )
    if unfinished:
        raise PhaseFailed(_failure_message(label, tasks, logging_dir, unfinished, error)) from error
    if error is not None:  # every task completed, the executor's own bookkeeping failed: a bug
        raise error


def _interrupt_main(stalled: threading.Event) -> Callable[[], None]:
    def interrupt() -> None:
        stalled.set()
        _thread.interrupt_main()

    return interrupt


def _log_path(logging_dir: Path, rank: int) -> Path:
    return logging_dir / "logs" / f"task_{rank:05d}.log"


def _task_list(logging_dir: Path, ranks: list[int], limit: int = 20) -> str:
    lines = []
    for rank in ranks[:limit]:
        log = _log_path(logging_dir, rank)
        lines.append(f"  task {rank}: {log}" if log.is_file() else f"  task {rank}: not started (no log yet)")
    if len(ranks) > limit:
        lines.append(f"  ... and {len(ranks) - limit} more in {logging_dir / 'logs'}")
    return "\n".join(lines)


def _failure_message(
    label: str, tasks: int, logging_dir: Path, unfinished: list[int], error: BaseException | None
) -> str:
    """The first failed task's last log lines and path: what a user reads first when a phase fails."""
    message = f"{label}: {tasks - len(unfinished)}/{tasks} tasks completed"
    logs = [(rank, _log_path(logging_dir, rank)) for rank in unfinished if _log_path(logging_dir, rank).is_file()]
    failed = [(rank, log) for rank, log in logs if " | ERROR " in log.read_text(errors="replace")] or logs
    if not failed:  # e.g. a step Ray's workers could not unpickle
        reason = "\n".join(str(error).splitlines()[-LOG_TAIL_LINES:]) if error else "no task log was written"
        return f"{message}; {reason}\n(logs: {logging_dir / 'logs'})"
    rank, log = failed[0]
    # without loguru's variable annotations ("│ └ value" lines under each traceback line)
    lines = [line for line in log.read_text(errors="replace").splitlines() if not line.strip().startswith(("│", "└"))]
    tail = "\n".join(f"  {line}" for line in lines[-LOG_TAIL_LINES:])
    message += f"; task {rank} failed, last lines of {log}:\n{tail}"
    if others := [other for other in unfinished if other != rank]:
        message += f"\nother unfinished tasks:\n{_task_list(logging_dir, others)}"
    return message


class _Monitor:
    """Watches a phase's completion markers: progress display, and the stall clock.

    A rich bar on a terminal; one plain line per completed task (and a heartbeat) when stderr is
    piped to a file, where a redrawn bar would leave control codes and partial lines."""

    def __init__(
        self,
        label: str,
        tasks: int,
        logging_dir: Path,
        stall_timeout_s: float,
        show: bool,
        on_stall: Callable[[], None],
        docs: Callable[[], float] | None = None,
    ):
        self.label, self.tasks, self.logging_dir = label, tasks, logging_dir
        self.stall_timeout_s, self.show, self.on_stall = stall_timeout_s, show, on_stall
        self.docs = docs
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def _watch(self) -> None:
        if self.show and sys.stderr.isatty():
            columns = (
                TextColumn(f"[bold]{self.label}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("tasks"),
                *([TextColumn("{task.fields[docs]}")] if self.docs else []),
                TimeElapsedColumn(),
            )
            with Progress(*columns, transient=False) as progress:
                bar = progress.add_task(self.label, total=self.tasks, docs="")

                def update(count: int, elapsed: float) -> None:
                    progress.update(bar, completed=count, docs=self._docs_rate(elapsed))

                self._loop(update, live=True)
        else:
            self._loop(self._print_line if self.show else lambda count, elapsed: None)

    def _print_line(self, count: int, elapsed: float) -> None:
        docs = f", {self._docs_rate(elapsed)}" if self.docs else ""
        print(f"{self.label}: {count}/{self.tasks} tasks{docs}, {elapsed:.0f} s", file=sys.stderr, flush=True)

    def _docs_rate(self, elapsed: float) -> str:
        """'N docs, R docs/s' (the average since the phase started), or '' without a document count."""
        if not self.docs:
            return ""
        done = self.docs()
        rate = f"{done / elapsed:,.0f} docs/s" if elapsed > 0 else "- docs/s"
        return f"{done:,.0f} docs, {rate}"

    def _loop(self, report: Callable[[int, float], None], live: bool = False) -> None:
        """`report` on every completed task and heartbeat; `live`: on every poll, and once at the end."""
        start = last_progress = last_report = time.monotonic()
        count = completed_tasks(self.logging_dir)
        report(count, 0.0)
        while not self._done.wait(0.5):
            now = time.monotonic()
            current = completed_tasks(self.logging_dir)
            if current != count:
                count, last_progress = current, now
            if live or last_report < last_progress or now - last_report >= HEARTBEAT_S:
                report(count, now - start)
                last_report = now
            if now - last_progress > self.stall_timeout_s and count < self.tasks:
                self.on_stall()
                return
        if live or completed_tasks(self.logging_dir) != count:
            report(completed_tasks(self.logging_dir), time.monotonic() - start)
