"""One run: the phases of DESIGN.md in order, each skipped when already complete in the run folder."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from pipeline.config import Config, ConfigError, dump_config
from pipeline.docio import RejectWriter, write_json_atomic
from pipeline.engine import configure_logging, default_workers, run_steps
from pipeline.funnel import compute_funnel
from pipeline.rundir import RunDir
from stages.checkpoint import PhaseOutput
from stages.heuristics import build_filter, preset_name
from stages.langid import LanguageFilter, LanguageTagger
from stages.reader import Shard, ShardReader, plan_shards


@dataclass
class RunContext:
    config: Config
    run: RunDir
    console: Console
    show_progress: bool = True
    shards: list[Shard] = field(default_factory=list)
    # Stages that can reject documents, in pipeline order: the funnel's rows.
    stages: list[str] = field(default_factory=list)

    @property
    def tasks(self) -> int:
        return len(self.shards)


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _check_same_config(run: RunDir, config: Config) -> None:
    """A rerun resumes only the same run: phases already done would otherwise mix two configs."""
    if not run.config.is_file():
        return
    previous = _flatten(yaml.safe_load(run.config.read_text()) or {})
    current = _flatten(config.model_dump(mode="json"))
    changed = sorted(
        key
        for key in previous.keys() | current.keys()
        # engine choice and worker count do not change outputs
        if not key.startswith("engine.") and previous.get(key) != current.get(key)
    )
    if changed:
        raise ConfigError(
            f"{run.root} was run with a different config ({', '.join(changed)} changed); "
            "use a new --output folder to run this config, or the same config to resume"
        )


def _load_or_plan_shards(ctx: RunContext) -> list[Shard]:
    """The shard plan is fixed at the first attempt, so a resumed run keeps task numbering."""
    plan_file = ctx.run.work / "shards.json"
    if plan_file.is_file():
        return [Shard(**item) for item in json.loads(plan_file.read_text())]
    shards = plan_shards(ctx.config.input, min_shards=2 * default_workers(ctx.config.engine))
    write_json_atomic(plan_file, [s.__dict__ for s in shards])
    return shards


def _phase_filter(ctx: RunContext) -> dict[str, Any]:
    cfg, run = ctx.config, ctx.run
    steps: list = [
        ShardReader(ctx.shards, cfg.input, str(run.quarantine), str(run.phase("p1_filter") / "counts")),
    ]
    if cfg.langid.enabled:
        steps += [LanguageTagger(), LanguageFilter(cfg.langid, RejectWriter(run.rejected, "langid"))]
    steps += [build_filter(spec, run.rejected) for spec in cfg.filters]
    steps.append(PhaseOutput(run.phase("p1_filter") / "docs"))
    _run_shards(ctx, "P1 filter", "p1_filter", steps)
    return {}


def _run_shards(ctx: RunContext, label: str, phase: str, steps: list) -> None:
    run_steps(label, steps, ctx.tasks, ctx.config.engine, ctx.run.phase(phase) / "logs", ctx.show_progress)
    configure_logging(ctx.run.work / "run.log")


def _filter_stages(config: Config) -> list[str]:
    return (["langid"] if config.langid.enabled else []) + [preset_name(s) for s in config.filters]


PHASES: list[tuple[str, str, Callable[[RunContext], dict[str, Any]]]] = [
    ("p1_filter", "P1 filter", _phase_filter),
]


def run_pipeline(config: Config, console: Console | None = None, show_progress: bool = True) -> dict[str, Any]:
    """Run (or resume) every phase; returns the funnel."""
    console = console or Console(stderr=True)
    run = RunDir(Path(config.output.dir))
    _check_same_config(run, config)
    run.root.mkdir(parents=True, exist_ok=True)
    configure_logging(run.work / "run.log")
    run.config.write_text(dump_config(config))
    ctx = RunContext(config=config, run=run, console=console, show_progress=show_progress)
    ctx.shards = _load_or_plan_shards(ctx)
    ctx.stages = _filter_stages(config)
    for name, label, phase in PHASES:
        if run.phase_done(name):
            console.print(f"[dim]{label}: already complete in {run.root}, skipped[/dim]")
            continue
        summary = phase(ctx)
        run.mark_phase_done(name, summary)
    funnel = compute_funnel(run, ctx.stages, run.phase("p1_filter") / "counts", mixture_originals=None)
    write_json_atomic(run.reports / "funnel.json", funnel)
    return funnel
