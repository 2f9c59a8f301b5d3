"""The `mixwright` command line."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.console import Console

from pipeline.config import CONFIGS_DIR, ConfigError, load_config

console = Console(stderr=True)
DEMO_DOCS = 5000


def _cmd_run(args: argparse.Namespace) -> int:
    from pipeline.runner import run_pipeline

    config = load_config(args.config, args.set, inputs=args.input, output=args.output)
    started = time.perf_counter()
    run_pipeline(config, console=console)
    _print_summary(Path(config.output.dir), time.perf_counter() - started)
    return 0


def _cmd_synth(args: argparse.Namespace) -> int:
    from pipeline.synth import generate

    started = time.perf_counter()
    summary = generate(Path(args.output), docs=args.docs, seed=args.seed)
    console.print(f"wrote {summary['docs']} documents to {args.output} in {time.perf_counter() - started:.1f} s")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from pipeline.runner import run_pipeline
    from pipeline.synth import generate

    run_dir = Path(args.output)
    corpus = run_dir / "input"
    started = time.perf_counter()
    if not (corpus / "corpus.jsonl").is_file():
        console.print(f"synthesizing {args.docs} documents into {corpus}")
        generate(corpus, docs=args.docs, seed=args.seed)
    config = load_config(
        CONFIGS_DIR / "demo.yaml",
        [f"teacher.labels_path={corpus / 'annotations.jsonl'}", *args.set],
        inputs=[str(corpus / "corpus.jsonl")],
        output=str(run_dir),
    )
    run_pipeline(config, console=console)
    _print_summary(run_dir, time.perf_counter() - started)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from pipeline.report import print_report

    return print_report(Path(args.run), Console())


def _print_summary(run_dir: Path, seconds: float) -> None:
    from pipeline.report import print_report

    print_report(run_dir, Console())
    console.print(f"[bold green]done in {seconds:.0f} s[/bold green]: run folder {run_dir}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mixwright", description="Turn a raw text corpus into a curated pre-training mixture."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run (or resume) the pipeline described by a config")
    run.add_argument("config", help="YAML config, e.g. configs/demo.yaml")
    run.add_argument("--input", nargs="+", metavar="PATH", help="input files or globs (replaces input.paths)")
    run.add_argument("--output", metavar="RUN", help="run folder (replaces output.dir)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a key, e.g. dedup.bands=20")
    run.set_defaults(func=_cmd_run)

    synth = commands.add_parser("synth", help="write a synthetic corpus with ground truth")
    synth.add_argument("--docs", type=int, required=True, help="number of documents")
    synth.add_argument("--output", required=True, metavar="DIR")
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(func=_cmd_synth)

    demo = commands.add_parser("demo", help="synthesize a corpus and run configs/demo.yaml on it, offline")
    demo.add_argument("--docs", type=int, default=DEMO_DOCS)
    demo.add_argument("--output", default="runs/demo", metavar="RUN")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    demo.set_defaults(func=_cmd_demo)

    report = commands.add_parser("report", help="print the funnel and domain mix of a run")
    report.add_argument("run", metavar="RUN")
    report.set_defaults(func=_cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
