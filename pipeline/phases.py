"""The phase table: every phase of a run, when it is enabled, what it reads and how it runs.

A phase is one `Phase` entry in `PHASES`. Its per-shard work is datatrove step lists
(`step_runs`), run in order on the configured engine; its global work (`finish`) runs after them
on the driver and returns the phase's summary. The runner walks this table; the preflight check
dry-builds every enabled phase's steps from it; the funnel's rows are the reject writers of the
steps it builds, in order. Adding a phase, a filter or a deciding step means editing this file only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep
from rich.console import Console

from classifiers.students import train_from_paths
from classifiers.taxonomy import load_rubric, load_taxonomy
from classifiers.teacher import LABELS_FILE, annotate, save_annotations, select_sample
from decontam.benchmarks import load_benchmarks
from pipeline.config import Config, DedupConfig, EngineConfig, MixtureConfig, resolve_path
from pipeline.dedup_report import write_dedup_report
from pipeline.docio import RejectWriter, read_documents, write_documents
from pipeline.domain_mix import write_mixture_report
from pipeline.engine import run_steps
from pipeline.errors import PhaseFailed
from pipeline.funnel import count_rows
from pipeline.rundir import RunDir
from stages.checkpoint import PhaseInput, PhaseOutput
from stages.dedup import NEAR_STAGE, DedupFilter, assign_clusters, lsh_step_lists
from stages.exact_dedup import EXACT_STAGE, URL_STAGE
from stages.extract import EXTRACT_STAGE, HtmlExtractor
from stages.heuristics import build_heuristic_steps
from stages.minhash import MinhashSignatureStep
from stages.mixture_writer import MixtureWriter, write_manifest
from stages.reader import Shard, ShardReader
from stages.rebalance import MixtureSampler, Sampling, compute_sampling
from stages.scoring import QualityFilter, StudentScorer
from stages.token_files import MixtureTokenizer, check_tokenize, count_token_files
from stages.tokens import TokenCounter

SAMPLE_FILE = "sample.parquet"


@dataclass
class RunContext:
    config: Config
    run: RunDir
    console: Console
    show_progress: bool = True
    shards: list[Shard] = field(default_factory=list)
    config_hash: str = ""

    @property
    def tasks(self) -> int:
        return len(self.shards)

    def docs(self, phase: str) -> Path:
        return self.run.phase(phase) / "docs"

    def rejects(self, stage: str) -> RejectWriter:
        return RejectWriter(self.run.rejected, stage)


@dataclass(frozen=True)
class StepRun:
    """One datatrove step list run for ranks 0..tasks-1, with its task logs in `logs`."""

    label: str
    steps: list[PipelineStep]
    tasks: int
    logs: Path


@dataclass(frozen=True)
class Phase:
    id: str
    label: str
    enabled: Callable[[Config], bool]
    # what the phase's tasks read (phase ids or RUN/<path>), pulled by each task when the run folder is in a bucket
    reads: tuple[str, ...]
    step_runs: Callable[[RunContext], list[StepRun]]
    finish: Callable[[RunContext], dict[str, Any]]


def _shard_run(ctx: RunContext, phase: str, label: str, steps: list[PipelineStep]) -> list[StepRun]:
    return [StepRun(label, steps, ctx.tasks, ctx.run.phase(phase) / "logs")]


def _no_steps(ctx: RunContext) -> list[StepRun]:
    return []


def _document_count(phase: str) -> Callable[[RunContext], dict[str, Any]]:
    return lambda ctx: {"documents": count_rows(ctx.docs(phase))}


def _signatures(ctx: RunContext) -> Path:
    return ctx.run.phase("p1_filter") / "signatures"


# ---------------------------------------------------------------- P1


def _filter_steps(ctx: RunContext) -> list[StepRun]:
    cfg, run = ctx.config, ctx.run
    steps: list[PipelineStep] = [
        ShardReader(ctx.shards, cfg.input, str(run.quarantine), str(run.phase("p1_filter") / "counts"))
    ]
    if any(shard.kind == "warc" for shard in ctx.shards):
        steps.append(HtmlExtractor(ctx.rejects(EXTRACT_STAGE)))
    steps += build_heuristic_steps(cfg.filters, cfg.langid, run.rejected, cfg.filters_implementation)
    if cfg.dedup.enabled:
        steps.append(MinhashSignatureStep(cfg.dedup, _signatures(ctx)))
    steps.append(PhaseOutput(ctx.docs("p1_filter")))
    return _shard_run(ctx, "p1_filter", "P1 filter", steps)


# ---------------------------------------------------------------- P2


def _all_documents(folder: Path) -> Iterator[Document]:
    for path in sorted(folder.glob("*.parquet")):
        yield from read_documents(path)


def _teacher_and_students(ctx: RunContext) -> dict[str, Any]:
    """The teacher labels a deterministic sample; fastText students learn from it."""
    cfg, run = ctx.config, ctx.run
    teacher = cfg.teacher
    ctx.console.print(f"P2 teacher: sampling {teacher.sample_size} documents for the {teacher.backend} teacher")
    sample = select_sample(_all_documents(ctx.docs("p1_filter")), teacher.sample_size, teacher.seed)
    write_documents(run.annotations / SAMPLE_FILE, sample)
    annotations = annotate(
        sample,
        teacher,
        load_taxonomy(),
        load_rubric(),
        run.annotations / "cache",
        max_chars=teacher.max_chars,
        progress=lambda line: ctx.console.print(f"P2 teacher: {line}", soft_wrap=True),
        **teacher.backend_options(
            ray_address=cfg.engine.address if cfg.engine.kind == "ray" else None, log_dir=str(run.annotations / "logs")
        ),
    )
    labels_path = save_annotations(annotations, run.annotations)
    report = annotations.report()
    if report["errors"]:
        ctx.console.print(
            f"[yellow]P2 teacher: failed answers {report['errors']} (see {run.annotations / 'report.json'})"
        )
    ctx.console.print(f"P2 students: training fastText on {report['complete']} labelled documents")
    try:
        cards = train_from_paths(
            run.annotations / SAMPLE_FILE, labels_path, run.models, resolve_path(cfg.students.hyperparams)
        )
    except ValueError as exc:
        raise PhaseFailed(f"P2 students: {exc}") from exc
    return {"teacher": report, "students": {name: card.get("holdout") for name, card in cards.items()}}


# ---------------------------------------------------------------- P3


def _scores(config: Config) -> bool:
    return config.students.enabled or config.quality.min_quality is not None


def _scored_docs(ctx: RunContext) -> Path:
    """P3's documents, or P1's when P3 has nothing to do (no students, no quality filter): the
    phase would only copy every document."""
    return ctx.docs("p3_score") if _scores(ctx.config) else ctx.docs("p1_filter")


def _score_steps(ctx: RunContext) -> list[StepRun]:
    cfg, run = ctx.config, ctx.run
    if not _scores(cfg):
        return []
    steps: list[PipelineStep] = [PhaseInput(ctx.docs("p1_filter"))]
    if cfg.students.enabled:
        steps.append(StudentScorer(run.models, run.annotations / LABELS_FILE))
    if cfg.quality.min_quality is not None:
        steps.append(QualityFilter(cfg.quality.min_quality, ctx.rejects("quality")))
    steps.append(PhaseOutput(ctx.docs("p3_score")))
    return _shard_run(ctx, "p3_score", "P3 score", steps)


def _scored_count(ctx: RunContext) -> dict[str, Any]:
    return {"documents": count_rows(_scored_docs(ctx))}


# ---------------------------------------------------------------- P4


def _lsh_runs(signatures: Path, documents: Path, work: Path, config: DedupConfig, tasks: int) -> list[StepRun]:
    lists = lsh_step_lists(signatures, documents, work, config, tasks)
    return [StepRun(f"P4 LSH {name}", steps, count, work / "logs" / name) for name, steps, count in lists]


def _dedup_steps(ctx: RunContext) -> list[StepRun]:
    """Exact, URL and near-dedup decisions from P1's keys and signatures and the P3 documents'
    metadata (stages/dedup.py); P5 drops the documents."""
    return _lsh_runs(_signatures(ctx), _scored_docs(ctx), ctx.run.phase("p4_dedup"), ctx.config.dedup, ctx.tasks)


def _clusters(ctx: RunContext) -> dict[str, Any]:
    work = ctx.run.phase("p4_dedup")
    summary = assign_clusters(work, ctx.tasks)
    write_dedup_report(work, ctx.config.dedup, ctx.run.reports / "dedup.json")
    return summary


# ---------------------------------------------------------------- P5


def _matches(ctx: RunContext) -> Path:
    return ctx.run.phase("p5_clean") / "matches"


def _stats(ctx: RunContext) -> Path:
    return ctx.run.phase("p5_clean") / "stats"


def _clean_steps(ctx: RunContext) -> list[StepRun]:
    cfg, run = ctx.config, ctx.run
    steps: list[PipelineStep] = [PhaseInput(_scored_docs(ctx))]
    if cfg.dedup.enabled:
        steps.append(DedupFilter(run.phase("p4_dedup"), {stage: ctx.rejects(stage) for stage in _dedup_stages(cfg)}))
    if cfg.decontam.enabled:
        # imported only when used: its compiled filter (numba) costs ~0.5 s of start-up
        from stages.decontam import ContaminationFilter

        steps.append(ContaminationFilter(cfg.decontam, _matches(ctx), ctx.rejects("decontam")))
    steps += [TokenCounter(_stats(ctx), cfg.mixture.tokenizer), PhaseOutput(ctx.docs("p5_clean"))]
    return _shard_run(ctx, "p5_clean", "P5 clean", steps)


def _dedup_stages(config: Config) -> list[str]:
    """The rejected stages of P5's dedup filter, in the order the documents are removed."""
    if not config.dedup.enabled:
        return []
    on = ((EXACT_STAGE, config.dedup.exact), (URL_STAGE, config.dedup.url), (NEAR_STAGE, True))
    return [stage for stage, enabled in on if enabled]


def _clean_summary(ctx: RunContext) -> dict[str, Any]:
    cfg, run = ctx.config, ctx.run
    summary: dict[str, Any] = {"documents": count_rows(ctx.docs("p5_clean"))}
    if cfg.decontam.enabled:
        from pipeline.contamination_report import write_contamination_reports

        removed = sum(count_rows(run.rejected / stage) for stage in _dedup_stages(cfg))
        scanned = count_rows(_scored_docs(ctx)) - removed
        benchmarks = load_benchmarks(resolve_path(cfg.decontam.benchmarks))
        summary["contamination"] = write_contamination_reports(
            _matches(ctx), scanned, benchmarks, run.reports, cfg.decontam
        )
    return summary


# ---------------------------------------------------------------- P6, P7


@dataclass(frozen=True)
class MixtureTarget:
    """One mixture of a run: the main one (RUN/mixture, `mixture:`) or a named one (RUN/mixtures/<name>)."""

    name: str | None
    config: MixtureConfig
    out: Path  # the Parquet folder, its manifest (and token files in out/_tokens)
    work: Path  # the plan
    logs: Path  # the task logs

    @property
    def key(self) -> str:
        return "mixture" if self.name is None else f"mixtures.{self.name}"

    @property
    def sampling_file(self) -> Path:
        return self.work / "sampling.json"

    @property
    def tokens(self) -> Path:
        return self.out / TOKENS_FOLDER


TOKENS_FOLDER = "_tokens"  # the leading "_" keeps Parquet readers of the mixture folder out of it


def main_target(ctx: RunContext) -> MixtureTarget:
    run = ctx.run
    return MixtureTarget(
        None, ctx.config.mixture, run.mixture, run.phase("p6_sampling"), run.phase("p7_mixture") / "logs"
    )


def named_target(run: RunDir, name: str, config: MixtureConfig) -> MixtureTarget:
    work = run.work / "mixtures" / name
    return MixtureTarget(name, config, run.root / "mixtures" / name, work, work / "logs")


def mixture_targets(ctx: RunContext) -> list[MixtureTarget]:
    return [main_target(ctx)] + [named_target(ctx.run, n, m) for n, m in sorted(ctx.config.mixtures.items())]


def compute_mixture_sampling(ctx: RunContext, target: MixtureTarget) -> Sampling:
    plan = compute_sampling(_stats(ctx), target.config, ctx.docs("p5_clean"), target.key)
    plan.to_json(target.sampling_file)
    for warning in plan.warnings:
        ctx.console.print(f"[yellow]P6 plan ({target.key}): {warning}")
    return plan


def _sampling_rates(ctx: RunContext) -> dict[str, Any]:
    plans = {target.key: compute_mixture_sampling(ctx, target) for target in mixture_targets(ctx)}
    return {
        key: {"rates": {group: p.rate for group, p in sorted(plan.groups.items())}, "warnings": plan.warnings}
        for key, plan in plans.items()
    }


def mixture_step_runs(ctx: RunContext, target: MixtureTarget) -> list[StepRun]:
    """Sample and write one mixture (then its token files); only the main mixture's sampled-away
    documents go to rejected/rebalance, so the funnel counts each document once."""
    rejects = ctx.rejects("rebalance") if target.name is None else None
    label = "P7 mixture" if target.name is None else f"mixture {target.name}"
    steps: list[PipelineStep] = [
        PhaseInput(ctx.docs("p5_clean")),
        MixtureSampler(target.sampling_file, rejects),
        MixtureWriter(target.out, target.config.shard_docs),
    ]
    runs = [StepRun(label, steps, ctx.tasks, target.logs)]
    tokenize = target.config.tokenize
    if tokenize is not None:
        check_tokenize(tokenize, f"{target.key}.tokenize")
        writer = MixtureTokenizer(target.out, target.tokens, tokenize, target.config.seed)
        runs.append(StepRun(f"{label} token files", [writer], ctx.tasks, target.logs.with_name("logs_tokens")))
    return runs


def _mixture_steps(ctx: RunContext) -> list[StepRun]:
    return [run for target in mixture_targets(ctx) for run in mixture_step_runs(ctx, target)]


def mixture_hash(config: MixtureConfig) -> str:
    return hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:16]


def finish_mixture(ctx: RunContext, target: MixtureTarget) -> dict[str, Any]:
    """The mixture's manifest (a recount of what was written), and a named mixture's own report."""
    tokenize = target.config.tokenize
    tokenized = None if tokenize is None else count_token_files(target.tokens, tokenize)
    digest = ctx.config_hash if target.name is None else mixture_hash(target.config)
    manifest = write_manifest(target.out, Sampling.from_json(target.sampling_file), digest, tokenized)
    if target.name is not None:
        write_mixture_report(target.out, target.out)
    return manifest


def _manifest(ctx: RunContext) -> dict[str, Any]:
    manifests = {target.name: finish_mixture(ctx, target) for target in mixture_targets(ctx)}
    return {
        "totals": manifests.pop(None)["totals"],
        "mixtures": {name: manifest["totals"] for name, manifest in manifests.items()},
    }


def _always(config: Config) -> bool:
    return True


PHASES: tuple[Phase, ...] = (
    Phase("p1_filter", "P1 filter", _always, ("input",), _filter_steps, _document_count("p1_filter")),
    Phase(
        "p2_teacher",
        "P2 teacher + students",
        lambda c: c.students.enabled,
        ("p1_filter",),
        _no_steps,
        _teacher_and_students,
    ),
    Phase(
        "p3_score",
        "P3 score",
        _always,
        ("p1_filter", "models", f"annotations/{LABELS_FILE}"),
        _score_steps,
        _scored_count,
    ),
    Phase(
        "p4_dedup",
        "P4 dedup",
        lambda c: c.dedup.enabled,
        ("p1_filter", "p3_score", "p4_dedup"),
        _dedup_steps,
        _clusters,
    ),
    Phase(
        "p5_clean",
        "P5 dedup + decontam + tokens",
        _always,
        ("p1_filter", "p3_score", "p4_dedup"),  # P1's documents when P3 has nothing to do
        _clean_steps,
        _clean_summary,
    ),
    Phase("p6_sampling", "P6 sampling rates", _always, ("p5_clean",), _no_steps, _sampling_rates),
    Phase(
        "p7_mixture",
        "P7 mixture",
        _always,
        ("p5_clean", "p6_sampling", "work/mixtures", "mixture", "mixtures"),  # token files read the mixture
        _mixture_steps,
        _manifest,
    ),
)


def enabled_phases(config: Config) -> list[Phase]:
    return [phase for phase in PHASES if phase.enabled(config)]


def run_phase(ctx: RunContext, phase: Phase) -> dict[str, Any]:
    """The phase's step lists in order on the engine, then its global work; returns its summary."""
    for step_run in phase.step_runs(ctx):
        sync = ctx.run.task_sync(phase.reads, step_run.logs)  # None unless the run folder is in a bucket
        engine = ctx.config.engine
        run_steps(step_run.label, step_run.steps, step_run.tasks, engine, step_run.logs, ctx.show_progress, sync=sync)
    return phase.finish(ctx)


def run_near_dedup(
    signatures: Path, documents: Path, work: Path, config: DedupConfig, engine: EngineConfig, show_progress: bool = True
) -> dict[str, Any]:
    """P4's near-dedup alone (exact and URL dedup off), on a folder of P1 signature files and one of
    documents (tests and benchmarks)."""
    tasks = len(list(Path(signatures).glob("*.parquet")))
    config = config.model_copy(update={"exact": False, "url": False})
    for step_run in _lsh_runs(signatures, documents, work, config, tasks):
        run_steps(step_run.label, step_run.steps, step_run.tasks, engine, step_run.logs, show_progress)
    return assign_clusters(work, tasks)


def reject_stages(steps: list[PipelineStep]) -> list[str]:
    """The stages the steps reject into, in order: a step's `exclusion_writer`, or any attribute
    holding RejectWriters (a fused step that decides for several presets)."""
    stages: list[str] = []
    for step in steps:
        for value in vars(step).values():
            writers = (
                value.values() if isinstance(value, dict) else value if isinstance(value, list | tuple) else [value]
            )
            stages += [w.stage for w in writers if isinstance(w, RejectWriter) and w.stage not in stages]
    return stages


def funnel_stages(ctx: RunContext) -> list[str]:
    """The funnel's rows: the reject stages of every enabled phase's steps, in pipeline order."""
    return reject_stages(
        [step for phase in enabled_phases(ctx.config) for r in phase.step_runs(ctx) for step in r.steps]
    )
