"""One run: the phases of the phase table in order, each skipped when already complete in the run folder."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import yaml
from rich.console import Console

from pipeline.config import Config, dump_config, output_settings
from pipeline.docio import write_json_atomic
from pipeline.domain_mix import write_domain_mix
from pipeline.engine import configure_logging, default_workers
from pipeline.errors import ConfigError
from pipeline.funnel import compute_funnel
from pipeline.mix import write_mixtures_page
from pipeline.phases import RunContext, enabled_phases, funnel_stages, run_phase
from pipeline.preflight import preflight
from pipeline.rundir import RunDir
from stages.reader import Shard, cut_shards


def _check_same_config(run: RunDir, config: Config) -> None:
    """A rerun resumes only the same run: phases already done would otherwise mix two configs."""
    if not run.config.is_file():
        return
    previous = output_settings(yaml.safe_load(run.config.read_text()) or {})
    current = output_settings(config.model_dump(mode="json"))
    changed = sorted(key for key in previous.keys() | current.keys() if previous.get(key) != current.get(key))
    if changed:
        raise ConfigError(
            f"{run.location} was run with a different config ({', '.join(changed)} changed); "
            "use a new --output folder to run this config, or the same config to resume"
        )


def config_hash(config: Config) -> str:
    """Hash of everything that shapes the output (engine and teacher resources do not)."""
    return hashlib.sha256(
        json.dumps(output_settings(config.model_dump(mode="json")), sort_keys=True).encode()
    ).hexdigest()[:16]


def _load_or_cut_shards(run: RunDir, config: Config) -> list[Shard]:
    """The shards are cut at the first attempt, so a resumed run keeps task numbering."""
    shards_file = run.work / "shards.json"
    if shards_file.is_file():
        return [Shard(**item) for item in json.loads(shards_file.read_text())]
    shards = cut_shards(config.input, min_shards=2 * default_workers(config.engine))
    write_json_atomic(shards_file, [s.__dict__ for s in shards])
    return shards


def _push_first(run: RunDir) -> None:
    """The config and shards reach the bucket before any task runs, where a refused write is named."""
    try:
        run.push()
    except OSError as exc:  # s3fs raises PermissionError for AccessDenied
        raise ConfigError(f"output.dir: cannot write to {run.location}: {type(exc).__name__}: {exc}") from None


def run_pipeline(config: Config, console: Console | None = None, show_progress: bool = True) -> dict[str, Any]:
    """Run (or resume) every enabled phase; returns the funnel."""
    console = console or Console(stderr=True)
    run = RunDir.at(config.output.dir)
    # Before the run folder exists, so that a corrected config is not refused as "different";
    # and before the same-config check, so that a setting that cannot run is named as such.
    preflight(config, run, console)
    run.pull()  # a run folder in a bucket: the local mirror becomes what the bucket holds
    _check_same_config(run, config)
    run.root.mkdir(parents=True, exist_ok=True)
    configure_logging(run.work / "run.log")
    run.config.write_text(dump_config(config))
    ctx = RunContext(config=config, run=run, console=console, show_progress=show_progress)
    ctx.config_hash = config_hash(config)
    ctx.shards = _load_or_cut_shards(run, config)
    _push_first(run)
    for phase in enabled_phases(config):
        if run.phase_done(phase.id):
            console.print(f"[dim]{phase.label}: already complete in {run.location}, skipped[/dim]")
            continue
        started = time.perf_counter()
        summary = run_phase(ctx, phase)
        configure_logging(run.work / "run.log")
        run.mark_phase_done(phase.id, summary | {"seconds": round(time.perf_counter() - started, 3)})
    originals = run.phase_summary("p7_mixture")["totals"]["originals_after"]
    funnel = compute_funnel(run, funnel_stages(ctx), run.phase("p1_filter") / "counts", mixture_originals=originals)
    write_json_atomic(run.reports / "funnel.json", funnel)
    write_domain_mix(run.root)
    write_mixtures_page(run.root)
    run.push()
    if not funnel["conservation"]["holds"]:
        console.print(f"[bold red]funnel conservation does not hold: {funnel['conservation']}")
    return funnel
