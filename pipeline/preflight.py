"""Every setting that cannot run is refused before any work (DESIGN principle 5).

`preflight` opens every file the config names (input, labels, tokenizers, benchmark spec, student
hyperparameters, taxonomy and rubric) and dry-builds every enabled phase's steps from the phase
table, without creating the run folder. Each failure is a ConfigError naming the dotted key.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console

from classifiers.students import load_hyperparams
from classifiers.taxonomy import load_rubric, load_taxonomy
from decontam.benchmarks import load_benchmarks
from decontam.tokenize import load_tokenizer
from pipeline.config import Config, resolve_path
from pipeline.engine import ensure_ray
from pipeline.errors import ConfigError
from pipeline.phases import RunContext, enabled_phases
from pipeline.remote import check_remote_folder, is_remote
from pipeline.rundir import RunDir
from stages.reader import cut_shards
from stages.tokens import load_counter

# The keys each prompting backend cannot run without.
_BACKEND_NEEDS = {
    "labels": ("labels_path",),
    "endpoint": ("url", "model"),
    "vllm": ("model",),
    "transformers": ("model",),
}


def _readable_file(key: str, value: str | Path, what: str) -> Path:
    path = resolve_path(value)
    if not path.is_file():
        raise ConfigError(f"{key}: expected {what}, found no file at {str(value)!r}")
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror}") from exc
    return path


def _first_record_keys(path: Path) -> list[str]:
    if path.suffix == ".parquet":
        return pq.read_schema(path).names
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                record = json.loads(line)
                return list(record) if isinstance(record, dict) else []
    return []


def _check_label_fields(path: Path, labels: tuple[str, ...]) -> None:
    """The labels file must hold `id` and at least one label field (domain, a rubric dimension)."""
    try:
        keys = _first_record_keys(path)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise ConfigError(f"teacher.labels_path: expected JSONL or Parquet labels, cannot read {path}: {exc}") from None
    if "id" not in keys or not set(labels) & set(keys):
        raise ConfigError(
            f"teacher.labels_path: expected records with `id` and label fields ({', '.join(labels)}), "
            f"found fields {sorted(keys)} in {path}"
        )


def _check_quality(config: Config) -> None:
    if config.quality.min_quality is not None and not config.students.enabled:
        raise ConfigError(
            "quality.min_quality: expected null when students.enabled is false (quality scores come from the "
            f"students), found {config.quality.min_quality}; set students.enabled=true or quality.min_quality=null"
        )


def _check_teacher(config: Config) -> None:
    teacher = config.teacher
    if not config.students.enabled:
        return
    for key in _BACKEND_NEEDS[teacher.backend]:
        if not getattr(teacher, key):
            raise ConfigError(f"teacher.{key}: required when teacher.backend is {teacher.backend!r}, found null")
    rubric = load_rubric()
    load_taxonomy()
    if teacher.backend == "labels":
        path = _readable_file("teacher.labels_path", teacher.labels_path, "a JSONL or Parquet file of labels")
        _check_label_fields(path, ("domain", *rubric.ids))


def _check_students(config: Config) -> None:
    if config.students.enabled:
        load_hyperparams(_readable_file("students.hyperparams", config.students.hyperparams, "a YAML file"))


def _check_decontam(config: Config) -> None:
    if config.decontam.enabled:
        load_benchmarks(_readable_file("decontam.benchmarks", config.decontam.benchmarks, "a benchmark spec YAML"))
        load_tokenizer(config.decontam.tokenizer)


def _check_mixture_tokenizer(config: Config) -> None:
    if config.mixture.tokenizer is not None:
        path = _readable_file("mixture.tokenizer", config.mixture.tokenizer, "a local tokenizer.json or null")
        try:
            load_counter(path)
        except Exception as exc:  # the tokenizers library raises its own untyped errors
            raise ConfigError(f"mixture.tokenizer: expected a tokenizer.json, cannot load {path}: {exc}") from None


def _check_output(config: Config) -> None:
    if is_remote(config.output.dir):
        check_remote_folder(config.output.dir)
        return
    root = Path(config.output.dir)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"output.dir: expected a run folder (new or existing), found a file at {root}")


def _check_cluster(config: Config) -> None:
    """An unreachable engine.address or a refused token is named before the run folder exists."""
    if config.engine.kind == "ray" and config.engine.address:
        ensure_ray(config.engine)


def _dry_build(config: Config, run: RunDir, console: Console) -> None:
    ctx = RunContext(config=config, run=run, console=console, shards=cut_shards(config.input))
    for phase in enabled_phases(config):
        phase.step_runs(ctx)


CHECKS = (
    _check_cluster,
    _check_output,
    _check_quality,
    _check_teacher,
    _check_students,
    _check_decontam,
    _check_mixture_tokenizer,
)


def preflight(config: Config, run: RunDir, console: Console) -> None:
    """Raise one ConfigError listing every setting that cannot run; create nothing."""
    problems: list[str] = []
    for check in CHECKS:
        try:
            check(config)
        except ConfigError as exc:
            problems.append(str(exc))
    if not problems:
        try:
            _dry_build(config, run, console)
        except ConfigError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError("\n".join(problems))
