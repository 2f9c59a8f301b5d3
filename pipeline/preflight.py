"""Every setting that cannot run is refused before any work (DESIGN principle 5).

`preflight` opens every file the config names (input, labels, tokenizers, benchmark spec, student
hyperparameters, taxonomy and rubric) and dry-builds every enabled phase's steps from the phase
table, without creating the run folder. Each failure is a ConfigError naming the dotted key.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from classifiers.students import load_hyperparams
from classifiers.taxonomy import load_rubric, load_taxonomy
from decontam.benchmarks import load_benchmarks
from decontam.tokenize import load_tokenizer
from pipeline.config import Config, resolve_path
from pipeline.errors import ConfigError
from pipeline.phases import RunContext, enabled_phases
from pipeline.rundir import RunDir
from stages.reader import plan_shards
from stages.tokens import load_counter

# The keys each prompting backend cannot run without.
_BACKEND_NEEDS = {"labels": ("labels_path",), "endpoint": ("url", "model"), "vllm": ("model",), "transformers": ("model",)}


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


def _check_model_stages(config: Config) -> None:
    if config.quality.min_quality is not None and not config.students.enabled:
        raise ConfigError(
            "quality.min_quality: expected null when students.enabled is false (quality scores come from the "
            f"students), found {config.quality.min_quality}; set students.enabled=true or quality.min_quality=null"
        )
    if not config.students.enabled:
        return
    teacher = config.teacher
    for key in _BACKEND_NEEDS[teacher.backend]:
        if not getattr(teacher, key):
            raise ConfigError(f"teacher.{key}: required when teacher.backend is {teacher.backend!r}, found null")
    if teacher.backend == "labels":
        _readable_file("teacher.labels_path", teacher.labels_path, "a JSONL or Parquet file of labels")
    load_taxonomy()
    load_rubric()
    load_hyperparams(_readable_file("students.hyperparams", config.students.hyperparams, "a YAML file"))


def _check_files(config: Config) -> None:
    _check_model_stages(config)
    if config.decontam.enabled:
        load_benchmarks(_readable_file("decontam.benchmarks", config.decontam.benchmarks, "a benchmark spec YAML"))
        load_tokenizer(config.decontam.tokenizer)
    if config.mixture.tokenizer is not None:
        path = _readable_file("mixture.tokenizer", config.mixture.tokenizer, "a local tokenizer.json or null")
        try:
            load_counter(path)
        except Exception as exc:  # the tokenizers library raises its own untyped errors
            raise ConfigError(f"mixture.tokenizer: expected a tokenizer.json, cannot load {path}: {exc}") from None


def preflight(config: Config, run: RunDir, console: Console) -> None:
    """Raise ConfigError for the first setting that cannot run; create nothing."""
    _check_files(config)
    ctx = RunContext(config=config, run=run, console=console, shards=plan_shards(config.input))
    for phase in enabled_phases(config):
        phase.step_runs(ctx)
