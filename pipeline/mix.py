"""`mixwright mix RUN --mixture FILE [--name NAME]`: re-mix a finished run, and the mixtures comparison page.

A mixture depends only on the clean set (P5's documents and token stats), its config and its seed,
so `mix` runs P6 and P7 alone for one named mixture, on the engine of the run's config, into
RUN/mixtures/<name>/: no scoring, dedup or decontamination is repeated, and the output equals
what a full run with that mixture writes. The main mixture (RUN/mixture) and the funnel are left
as they are: the funnel accounts for the main mixture (its sampled-away documents are in
rejected/rebalance), while a named mixture accounts for itself in its manifest (per group,
docs_before = originals_after + downsampled_away).

reports/mixtures.{json,html} puts every mixture of the run side by side with the clean corpus.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import time
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import yaml
from pydantic import ValidationError
from rich.console import Console

from pipeline.config import MIXTURE_NAME, MixtureConfig, load_config, resolve_path
from pipeline.docio import write_json_atomic, write_text_atomic
from pipeline.domain_mix import PAGE_STYLE, build_mix_report, mix_tables, pct, table_html
from pipeline.engine import run_steps
from pipeline.errors import ConfigError
from pipeline.phases import RunContext, compute_mixture_sampling, finish_mixture, mixture_step_runs, named_target
from pipeline.rundir import RunDir
from stages.reader import Shard
from stages.rebalance import QUALITY_EDGES, quality_histogram, read_stats

# P5's stats columns a mixture may group by (older runs lack the last two: rerun P5).
_STATS_COLUMNS = ("domain", "quality", "tokens", "language", "source")


def load_mixture_file(path: str | os.PathLike) -> MixtureConfig:
    """A YAML file with the keys of the `mixture:` section (bare, or under a `mixture:` key)."""
    try:
        tree = yaml.safe_load(resolve_path(path).read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"--mixture {path}: cannot read it: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--mixture {path} is not valid YAML: {exc}") from None
    if isinstance(tree, dict) and set(tree) == {"mixture"}:
        tree = tree["mixture"]
    if not isinstance(tree, dict):
        raise ConfigError(f"--mixture {path}: expected a mapping of mixture keys, found {type(tree).__name__}")
    try:
        return MixtureConfig.model_validate(tree)
    except ValidationError as exc:
        item = exc.errors()[0]
        key = ".".join(["mixture", *map(str, item["loc"])])
        raise ConfigError(f"--mixture {path}: {key}: {item['msg']} (found {item.get('input')!r})") from None


def _check_run(run: RunDir) -> None:
    if not run.config.is_file():
        raise ConfigError(
            f"{run.root}: not a mixwright run folder (no config.yaml); give the --output of a `mixwright run`"
        )
    if not run.phase_done("p5_clean"):
        raise ConfigError(
            f"{run.root}: phase P5 (dedup + decontam + tokens) is not complete, so there is no clean set to mix; "
            "finish the run first (rerun the same `mixwright run` command to resume it)"
        )
    stats = read_stats(run.phase("p5_clean") / "stats")
    missing = [c for c in _STATS_COLUMNS if c not in stats.column_names]
    if missing:
        raise ConfigError(
            f"{run.root}: P5 token stats lack {', '.join(missing)} (an older run); rerun it in a new folder"
        )


def run_mix(
    run_dir: str | os.PathLike,
    mixture_file: str | os.PathLike,
    name: str | None = None,
    engine: dict[str, Any] | None = None,
    console: Console | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Re-mix a finished run into RUN/mixtures/<name>/; returns the manifest. `engine` overrides
    engine settings of the run's config (they change speed, not output)."""
    console = console or Console(stderr=True)
    run = RunDir(Path(run_dir))
    _check_run(run)
    mixture = load_mixture_file(mixture_file)
    name = name or Path(mixture_file).stem
    if not re.match(MIXTURE_NAME, name):
        raise ConfigError(f"--name {name!r}: a mixture name is a folder name (letters, digits, _ . -)")
    config = load_config(run.config)
    if engine:
        config = config.model_copy(update={"engine": config.engine.model_copy(update=engine)})
    if mixture.tokenizer != config.mixture.tokenizer:
        raise ConfigError(
            f"--mixture {mixture_file}: mixture.tokenizer = {mixture.tokenizer!r}, but the run counted tokens with "
            f"{config.mixture.tokenizer!r} in P5; leave it out or give the same file"
        )
    shards = [Shard(**item) for item in json.loads((run.work / "shards.json").read_text())]
    ctx = RunContext(config=config, run=run, console=console, show_progress=show_progress, shards=shards)
    target = named_target(run, name, mixture)
    step_runs = mixture_step_runs(ctx, target)  # checks the tokenize settings before anything is removed
    # A re-mix under the same name replaces the previous one (task logs included, or the
    # executor would skip the tasks as complete).
    for folder in (target.out, target.work):
        shutil.rmtree(folder, ignore_errors=True)
    compute_mixture_sampling(ctx, target)
    for step_run in step_runs:
        run_steps(step_run.label, step_run.steps, step_run.tasks, config.engine, step_run.logs, show_progress)
    manifest = finish_mixture(ctx, target)
    write_mixtures_page(run.root)
    return manifest


# ---------------------------------------------------------------- comparison page


def _clean_corpus(run: RunDir) -> dict[str, Any]:
    stats = read_stats(run.phase("p5_clean") / "stats")
    domains = stats.column("domain").to_numpy(zero_copy_only=False).astype(str)
    tokens = stats.column("tokens").to_numpy()
    total = int(tokens.sum())
    return {
        "docs": stats.num_rows,
        "tokens": total,
        "shares": {d: float(tokens[domains == d].sum() / total) if total else 0.0 for d in np.unique(domains).tolist()},
        "quality_hist": quality_histogram(stats.column("quality").to_numpy()),
    }


def _merged_hist(rows: list[dict[str, Any]]) -> dict[str, Any]:
    hists = [r["quality_hist_after"] for r in rows if r["quality_hist_after"]]
    return {
        "counts": [sum(h["counts"][i] for h in hists) for i in range(len(QUALITY_EDGES) - 1)],
        "missing": sum(h["missing"] for h in hists),
    }


def _mixture_summary(mix: dict[str, Any]) -> dict[str, Any]:
    totals = mix["totals"]
    return {
        "group_by": mix["group_by"],
        "mode": mix["mode"],
        "selection": mix["selection"],
        "seed": mix["seed"],
        "docs": totals["docs_after"],
        "tokens": totals["tokens_after"],
        "repeat_tokens": totals["repeat_tokens"],
        "upsampled_copies": totals["docs_after"] - totals["originals_after"],
        "sampled_away": totals["docs_before"] - totals["originals_after"],
        "shares": {d: row["share_after"] for d, row in mix["domains"].items()},
        "quality_hist": _merged_hist(list(mix["domains"].values())),
        "groups": {
            row["group"]: {k: row[k] for k in ("share_before", "target_share", "share_after", "repeat_tokens", "note")}
            for row in mix["groups"]
        },
        "warnings": mix["warnings"],
        "token_files": None if not mix["tokenized"] else mix["tokenized"]["total_tokens"],
    }


def build_mixtures_page(run_dir: str | os.PathLike) -> dict[str, Any]:
    run = RunDir(Path(run_dir))
    mixtures = {"mixture": run.mixture} | {
        p.parent.name: p.parent for p in sorted(run.root.glob("mixtures/*/manifest.json"))
    }
    return {
        "clean": _clean_corpus(run),
        "quality_edges": QUALITY_EDGES.tolist(),
        "mixtures": {
            name: _mixture_summary(build_mix_report(folder))
            for name, folder in mixtures.items()
            if (folder / "manifest.json").is_file()
        },
    }


def render_mixtures_html(page: dict[str, Any]) -> str:
    clean, mixtures = page["clean"], page["mixtures"]
    names = list(mixtures)
    domains = sorted(
        set(clean["shares"]).union(*(m["shares"] for m in mixtures.values())), key=lambda d: -clean["shares"].get(d, 0)
    )
    shares = go.Figure()
    for label, values in [("clean corpus", clean["shares"])] + [(n, mixtures[n]["shares"]) for n in names]:
        shares.add_bar(
            name=escape(label), x=[escape(d) for d in domains], y=[100 * values.get(d, 0.0) for d in domains]
        )
    shares.update_layout(title="Token share per domain (%)", barmode="group", yaxis_title="% of tokens")
    edges = page["quality_edges"]
    bins = [f"{lo:g}-{hi:g}" for lo, hi in zip(edges[:-1], edges[1:])] + ["unscored"]
    quality = go.Figure()
    for label, hist in [("clean corpus", clean["quality_hist"])] + [(n, mixtures[n]["quality_hist"]) for n in names]:
        counts = hist["counts"] + [hist["missing"]]
        quality.add_bar(name=escape(label), x=bins, y=[n / (sum(counts) or 1) for n in counts])
    quality.update_layout(title="Quality distribution (fraction of documents)", barmode="group")
    charts = [f.to_html(full_html=False, include_plotlyjs=i == 0) for i, f in enumerate((shares, quality))]
    summary = [
        [n, " / ".join(m["group_by"]), f"{m['docs']:,}", f"{m['tokens']:,}", f"{m['repeat_tokens']:,}",
         f"{m['upsampled_copies']:,}", f"{m['sampled_away']:,}",
         "-" if m["token_files"] is None else f"{m['token_files']:,}", len(m["warnings"])]
        for n, m in mixtures.items()
    ]  # fmt: skip
    share_rows = [
        [d, pct(clean["shares"].get(d))] + [pct(mixtures[n]["shares"].get(d)) for n in names] for d in domains
    ]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>mixwright mixtures</title>',
        f"<style>{PAGE_STYLE}</style></head><body>",
        "<h1>Mixtures</h1>",
        f"<p>clean corpus: {clean['docs']:,} documents, {clean['tokens']:,} tokens</p>",
        table_html(
            [
                "mixture",
                "grouped by",
                "docs",
                "tokens",
                "repeat tokens",
                "repeat copies",
                "sampled away",
                "token files (tokens)",
                "warnings",
            ],
            summary,
        ),  # fmt: skip
        "<h2>Token share per domain</h2>",
        table_html(["domain", "clean corpus", *names], share_rows),
        charts[0],
        "<h2>Quality</h2>",
        charts[1],
    ]
    for n, m in mixtures.items():
        rows = [
            [
                g,
                pct(r["share_before"]),
                pct(r["target_share"]),
                pct(r["share_after"]),
                f"{r['repeat_tokens']:,}",
                r["note"] or "",
            ]
            for g, r in m["groups"].items()
        ]
        parts += [f"<h2>{escape(n)}: groups</h2>", *(f'<p class="warn">{escape(w)}</p>' for w in m["warnings"])]
        parts.append(
            table_html(
                ["group", "share before", "target", "share after", "repeat tokens", "why the target was not met"], rows
            )
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_mixtures_page(run_dir: str | os.PathLike) -> Path:
    """RUN/reports/mixtures.{json,html}; returns the HTML path."""
    page = build_mixtures_page(run_dir)
    reports = RunDir(Path(run_dir)).reports
    write_json_atomic(reports / "mixtures.json", page)
    html_path = reports / "mixtures.html"
    write_text_atomic(html_path, render_mixtures_html(page))
    return html_path


def cmd_mix(args: argparse.Namespace, console: Console) -> int:
    """The `mix` subcommand: re-mix, then print the mixture's tables and where its files are."""
    started = time.perf_counter()
    engine = {k: v for k, v in (("kind", args.engine), ("workers", args.workers)) if v is not None}
    run_mix(args.run, args.mixture, args.name, engine, console)
    folder = Path(args.run) / "mixtures" / (args.name or Path(args.mixture).stem)
    out = Console()
    for table in mix_tables(build_mix_report(folder), out.width, title=f"Mixture {folder.name}"):
        out.print(table)
    console.print(f"report: {folder / 'domain_mix.html'}")
    console.print(f"comparison of every mixture: {Path(args.run) / 'reports' / 'mixtures.html'}")
    console.print(f"[bold green]mixed in {time.perf_counter() - started:.1f} s[/bold green]: {folder}")
    return 0
