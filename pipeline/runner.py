"""One run: the phases of DESIGN.md in order, each skipped when already complete in the run folder."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from datatrove.data import Document

from classifiers.students import train_from_paths
from classifiers.taxonomy import load_rubric, load_taxonomy
from classifiers.teacher import LABELS_FILE, annotate, save_annotations, select_sample
from pipeline.contamination_report import write_contamination_reports
from decontam.benchmarks import load_benchmarks
from pipeline.config import Config, dump_config, resolve_path
from pipeline.errors import ConfigError
from pipeline.docio import RejectWriter, read_documents, write_documents, write_json_atomic
from pipeline.domain_mix import write_domain_mix
from pipeline.errors import PhaseFailed
from pipeline.engine import configure_logging, default_workers, run_steps
from pipeline.funnel import compute_funnel, count_rows
from pipeline.rundir import RunDir
from stages.checkpoint import PhaseInput, PhaseOutput
from stages.decontam import ContaminationFilter
from stages.dedup import DedupFilter, cluster_duplicates, write_dedup_report
from stages.heuristics import build_filter, preset_name
from stages.langid import LanguageFilter, LanguageTagger
from stages.minhash import MinhashSignatureStep
from stages.mixture_writer import MixtureWriter, write_manifest
from stages.reader import Shard, ShardReader, plan_shards
from stages.rebalance import MixtureSampler, Plan, compute_plan
from stages.scoring import QualityFilter, StudentScorer
from stages.tokens import TokenCounter

SAMPLE_FILE = "sample.parquet"


@dataclass
class RunContext:
    config: Config
    run: RunDir
    console: Console
    show_progress: bool = True
    shards: list[Shard] = field(default_factory=list)

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


def _docs(ctx: RunContext, phase: str) -> Path:
    return ctx.run.phase(phase) / "docs"


def _phase_filter(ctx: RunContext) -> dict[str, Any]:
    cfg, run = ctx.config, ctx.run
    steps: list = [
        ShardReader(ctx.shards, cfg.input, str(run.quarantine), str(run.phase("p1_filter") / "counts")),
    ]
    if cfg.langid.enabled:
        steps += [LanguageTagger(), LanguageFilter(cfg.langid, RejectWriter(run.rejected, "langid"))]
    steps += [build_filter(spec, run.rejected) for spec in cfg.filters]
    if cfg.dedup.enabled:
        steps.append(MinhashSignatureStep(cfg.dedup, _signatures(ctx)))
    steps.append(PhaseOutput(_docs(ctx, "p1_filter")))
    _run_shards(ctx, "P1 filter", "p1_filter", steps)
    return {"documents": count_rows(_docs(ctx, "p1_filter"))}


def _signatures(ctx: RunContext) -> Path:
    return ctx.run.phase("p1_filter") / "signatures"


def _all_documents(folder: Path) -> Iterator[Document]:
    for path in sorted(folder.glob("*.parquet")):
        yield from read_documents(path)


def _phase_teacher(ctx: RunContext) -> dict[str, Any]:
    """P2: the teacher labels a deterministic sample; fastText students learn from it."""
    cfg, run = ctx.config, ctx.run
    teacher = cfg.teacher
    ctx.console.print(f"P2 teacher: sampling {teacher.sample_size} documents for the {teacher.backend} teacher")
    sample = select_sample(_all_documents(_docs(ctx, "p1_filter")), teacher.sample_size, teacher.seed)
    write_documents(run.annotations / SAMPLE_FILE, sample)
    annotations = annotate(
        sample,
        teacher,
        load_taxonomy(),
        load_rubric(),
        run.annotations / "cache",
        max_chars=teacher.max_chars,
        **teacher.backend_options(),
    )
    labels_path = save_annotations(annotations, run.annotations)
    report = annotations.report()
    if report["errors"]:
        ctx.console.print(f"[yellow]P2 teacher: failed answers {report['errors']} (see {run.annotations / 'report.json'})")
    ctx.console.print(f"P2 students: training fastText on {report['complete']} labelled documents")
    try:
        cards = train_from_paths(
            run.annotations / SAMPLE_FILE, labels_path, run.models, resolve_path(cfg.students.hyperparams)
        )
    except ValueError as exc:
        raise PhaseFailed(f"P2 students: {exc}") from exc
    return {"teacher": report, "students": {name: card.get("holdout") for name, card in cards.items()}}


def _phase_score(ctx: RunContext) -> dict[str, Any]:
    cfg, run = ctx.config, ctx.run
    steps: list = [PhaseInput(_docs(ctx, "p1_filter"))]
    if cfg.students.enabled:
        steps.append(StudentScorer(run.models, run.annotations / LABELS_FILE))
    if cfg.quality.min_quality is not None:
        steps.append(QualityFilter(cfg.quality.min_quality, RejectWriter(run.rejected, "quality")))
    steps.append(PhaseOutput(_docs(ctx, "p3_score")))
    _run_shards(ctx, "P3 score", "p3_score", steps)
    return {"documents": count_rows(_docs(ctx, "p3_score"))}


def _phase_dedup(ctx: RunContext) -> dict[str, Any]:
    cfg = ctx.config
    summary = cluster_duplicates(
        _signatures(ctx), _docs(ctx, "p3_score"), ctx.run.phase("p4_dedup"), cfg.dedup, cfg.engine, ctx.show_progress
    )
    configure_logging(ctx.run.work / "run.log")
    write_dedup_report(ctx.run.phase("p4_dedup"), cfg.dedup, ctx.run.reports / "dedup.json")
    return summary


def _matches(ctx: RunContext) -> Path:
    return ctx.run.phase("p5_clean") / "matches"


def _stats(ctx: RunContext) -> Path:
    return ctx.run.phase("p5_clean") / "stats"


def _phase_clean(ctx: RunContext) -> dict[str, Any]:
    cfg, run = ctx.config, ctx.run
    steps: list = [PhaseInput(_docs(ctx, "p3_score"))]
    if cfg.dedup.enabled:
        steps.append(DedupFilter(run.phase("p4_dedup"), RejectWriter(run.rejected, "dedup")))
    if cfg.decontam.enabled:
        steps.append(ContaminationFilter(cfg.decontam, _matches(ctx), RejectWriter(run.rejected, "decontam")))
    steps += [TokenCounter(_stats(ctx), cfg.mixture.tokenizer), PhaseOutput(_docs(ctx, "p5_clean"))]
    _run_shards(ctx, "P5 clean", "p5_clean", steps)
    summary: dict[str, Any] = {"documents": count_rows(_docs(ctx, "p5_clean"))}
    if cfg.decontam.enabled:
        scanned = count_rows(_docs(ctx, "p3_score")) - count_rows(run.rejected / "dedup")
        summary["contamination"] = write_contamination_reports(
            _matches(ctx), scanned, load_benchmarks(resolve_path(cfg.decontam.benchmarks)), run.reports, cfg.decontam
        )
    return summary


def _plan_file(ctx: RunContext) -> Path:
    return ctx.run.phase("p6_plan") / "plan.json"


def _phase_plan(ctx: RunContext) -> dict[str, Any]:
    plan = compute_plan(_stats(ctx), ctx.config.mixture)
    plan.to_json(_plan_file(ctx))
    for warning in plan.warnings:
        ctx.console.print(f"[yellow]P6 plan: {warning}")
    return {"rates": {domain: p.rate for domain, p in sorted(plan.domains.items())}, "warnings": plan.warnings}


def _phase_mixture(ctx: RunContext) -> dict[str, Any]:
    cfg, run = ctx.config, ctx.run
    plan = Plan.from_json(_plan_file(ctx))
    steps = [
        PhaseInput(_docs(ctx, "p5_clean")),
        MixtureSampler(plan, RejectWriter(run.rejected, "rebalance")),
        MixtureWriter(run.mixture, cfg.mixture.shard_docs),
    ]
    _run_shards(ctx, "P7 mixture", "p7_mixture", steps)
    manifest = write_manifest(run.mixture, plan, config_hash(cfg))
    return {"totals": manifest["totals"]}


def _run_shards(ctx: RunContext, label: str, phase: str, steps: list) -> None:
    run_steps(label, steps, ctx.tasks, ctx.config.engine, ctx.run.phase(phase) / "logs", ctx.show_progress)
    configure_logging(ctx.run.work / "run.log")


def _funnel_stages(config: Config) -> list[str]:
    """Stages that can reject documents, in pipeline order: the funnel's rows."""
    stages = (["langid"] if config.langid.enabled else []) + [preset_name(s) for s in config.filters]
    if config.quality.min_quality is not None:
        stages.append("quality")
    if config.dedup.enabled:
        stages.append("dedup")
    if config.decontam.enabled:
        stages.append("decontam")
    return [*stages, "rebalance"]


def config_hash(config: Config) -> str:
    """Hash of everything that shapes the output (engine choice and worker count do not)."""
    tree = config.model_dump(mode="json")
    tree.pop("engine")
    return hashlib.sha256(json.dumps(tree, sort_keys=True).encode()).hexdigest()[:16]


def _preflight(config: Config) -> None:
    """Errors a user can fix, raised before any work starts."""
    if config.quality.min_quality is not None and not config.students.enabled:
        raise ConfigError("quality.min_quality needs quality scores: set students.enabled=true or min_quality=null")
    if config.students.enabled and config.teacher.backend == "labels" and not config.teacher.labels_path:
        raise ConfigError("teacher.labels_path is required when teacher.backend is 'labels'")
    if config.decontam.enabled:
        load_benchmarks(resolve_path(config.decontam.benchmarks))


PHASES: list[tuple[str, str, Callable[[RunContext], dict[str, Any]]]] = [
    ("p1_filter", "P1 filter", _phase_filter),
    ("p2_teacher", "P2 teacher + students", _phase_teacher),
    ("p3_score", "P3 score", _phase_score),
    ("p4_dedup", "P4 dedup clusters", _phase_dedup),
    ("p5_clean", "P5 dedup + decontam + tokens", _phase_clean),
    ("p6_plan", "P6 mixture plan", _phase_plan),
    ("p7_mixture", "P7 mixture", _phase_mixture),
]


def _enabled(config: Config, phase: str) -> bool:
    return {"p2_teacher": config.students.enabled, "p4_dedup": config.dedup.enabled}.get(phase, True)


def run_pipeline(config: Config, console: Console | None = None, show_progress: bool = True) -> dict[str, Any]:
    """Run (or resume) every phase; returns the funnel."""
    console = console or Console(stderr=True)
    run = RunDir(Path(config.output.dir))
    _check_same_config(run, config)
    _preflight(config)  # before the run folder exists: a fixed config must not be refused as "different"
    run.root.mkdir(parents=True, exist_ok=True)
    configure_logging(run.work / "run.log")
    run.config.write_text(dump_config(config))
    ctx = RunContext(config=config, run=run, console=console, show_progress=show_progress)
    ctx.shards = _load_or_plan_shards(ctx)
    for name, label, phase in PHASES:
        if not _enabled(config, name):
            continue
        if run.phase_done(name):
            console.print(f"[dim]{label}: already complete in {run.root}, skipped[/dim]")
            continue
        started = time.perf_counter()
        summary = phase(ctx)
        run.mark_phase_done(name, summary | {"seconds": round(time.perf_counter() - started, 3)})
    originals = run.phase_summary("p7_mixture")["totals"]["originals_after"]
    funnel = compute_funnel(run, _funnel_stages(config), run.phase("p1_filter") / "counts", mixture_originals=originals)
    write_json_atomic(run.reports / "funnel.json", funnel)
    write_domain_mix(run.root)
    if not funnel["conservation"]["holds"]:
        console.print(f"[bold red]funnel conservation does not hold: {funnel['conservation']}")
    return funnel
