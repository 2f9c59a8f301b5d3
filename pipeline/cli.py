"""The `mixwright` command line."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from pipeline.config import CONFIGS_DIR, load_config
from pipeline.errors import ConfigError, MixwrightError

console = Console(stderr=True)
DEMO_DOCS = 5000


def _cmd_run(args: argparse.Namespace) -> int:
    from pipeline.rundir import RunDir
    from pipeline.runner import run_pipeline

    config = load_config(args.config, args.set, inputs=args.input, output=args.output)
    started = time.perf_counter()
    run_pipeline(config, console=console)
    run = RunDir.at(config.output.dir)  # a bucket's run folder is reported from its local mirror
    _print_summary(run.root, time.perf_counter() - started, run.location)
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


def _cmd_audit(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from pipeline.audit import run_audit
    from pipeline.config import DecontamConfig, EngineConfig

    try:
        decontam = DecontamConfig(
            mode=args.mode,
            window_factor=args.window_factor,
            min_tokens=args.min_tokens,
            ratio=args.ratio,
            tokenizer=args.tokenizer,
            action="annotate",
        )
        engine = EngineConfig(kind=args.engine, workers=args.workers)
    except ValidationError as exc:
        raise ConfigError(f"invalid audit option: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from None
    run_audit(
        [Path(spec) for spec in args.benchmarks],
        args.corpus,
        Path(args.output),
        decontam,
        engine,
        text_field=args.text_field,
        id_field=args.id_field,
        console=console,
        parts=args.item_partitions,
    )
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from classifiers.students import train_from_paths
    from classifiers.teacher import LABELS_FILE
    from pipeline.config import resolve_path
    from pipeline.phases import SAMPLE_FILE
    from pipeline.rundir import RunDir

    run = RunDir(_local_run(args.run, "train"))
    sample, labels = run.annotations / SAMPLE_FILE, run.annotations / LABELS_FILE
    for path in (sample, labels):
        if not path.is_file():
            raise ConfigError(f"{path} does not exist: run phase P2 first (mixwright run) with students.enabled=true")
    hyperparams = resolve_path(args.hyperparams)
    if not hyperparams.is_file():
        raise ConfigError(f"--hyperparams {args.hyperparams}: no such file")
    output = Path(args.output) if args.output else run.models
    cards = train_from_paths(sample, labels, output, hyperparams)
    table = Table("student", "train", "held out", "held-out agreement")
    for name, card in sorted(cards.items()):
        holdout = card.get("holdout", {})
        metric = (
            f"accuracy {holdout['accuracy']:.3f}, macro-F1 {holdout['macro_f1']:.3f}"
            if "accuracy" in holdout
            else ", ".join(f"{k} {v:.3f}" for k, v in holdout.items() if isinstance(v, float))
        )
        table.add_row(name, str(card["train_size"]), str(card["holdout_size"]), metric)
    Console().print(table)
    console.print(f"students written to {output}")
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from pipeline.capacity import (
        Assumptions,
        estimate,
        load_throughput,
        measured_teacher_speed,
        parse_tokens,
        print_plan,
    )

    if args.cores < 1 or args.gpus < 1:
        raise ConfigError("--cores and --gpus must be at least 1")
    assumptions = Assumptions(
        words_per_token=args.words_per_token,
        teacher_docs=args.teacher_docs,
        gpu_prefill_tokens_per_s=args.gpu_tokens_per_s,
    )
    if args.run:  # the teacher's measured speed replaces the assumed one
        speed = measured_teacher_speed(Path(args.run))
        assumptions = replace(assumptions, gpu_prefill_tokens_per_s=speed, gpu_source=f"measured in {args.run}")
    throughput = load_throughput(Path(args.throughput)) if args.throughput else load_throughput()
    tokens = parse_tokens(args.tokens)
    print_plan(
        estimate(tokens, args.cores, args.gpus, throughput, assumptions),
        args.cores,
        args.gpus,
        throughput,
        assumptions,
        Console(),
    )
    return 0


def _cmd_mix(args: argparse.Namespace) -> int:
    from pipeline.mix import cmd_mix

    _local_run(args.run, "mix")
    return cmd_mix(args, console)


def _cmd_teacher_eval(args: argparse.Namespace) -> int:
    from pipeline.teacher_eval import cmd_teacher_eval

    return cmd_teacher_eval(args, console)


def _local_run(run: str, command: str) -> Path:
    """The run folder of a command that writes into it on this machine only."""
    from pipeline.remote import is_remote

    if is_remote(run):
        raise ConfigError(
            f"mixwright {command} {run}: expected a local run folder, found a URL; copy the run folder "
            f"from the bucket (e.g. `aws s3 sync {run} RUN`) and run it on the copy"
        )
    return Path(run)


def _cmd_report(args: argparse.Namespace) -> int:
    from pipeline.report import print_report
    from pipeline.rundir import RunDir

    run = RunDir.at(args.run)
    if run.remote:  # read-only: bring the mirror up to date with the bucket, claim nothing
        run.remote.pull()
    return print_report(run.root, Console())


def _print_summary(run_dir: Path, seconds: float, location: str | None = None) -> None:
    from pipeline.report import print_report

    print_report(run_dir, Console())
    console.print(f"[bold green]done in {seconds:.0f} s[/bold green]: run folder {location or run_dir}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mixwright", description="Turn a raw text corpus into a curated pre-training mixture."
    )
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    # --debug is also accepted after the command; SUPPRESS keeps the subcommand from resetting it.
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", parents=[debug], help="run (or resume) the pipeline described by a config")
    run.add_argument("config", help="YAML config, e.g. configs/demo.yaml")
    run.add_argument("--input", nargs="+", metavar="PATH", help="input files or globs (replaces input.paths)")
    run.add_argument("--output", metavar="RUN", help="run folder (replaces output.dir)")
    run.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a key, e.g. dedup.bands=20"
    )
    run.set_defaults(func=_cmd_run)

    synth = commands.add_parser("synth", parents=[debug], help="write a synthetic corpus with ground truth")
    synth.add_argument("--docs", type=int, required=True, help="number of documents")
    synth.add_argument("--output", required=True, metavar="DIR")
    synth.add_argument("--seed", type=int, default=0)
    synth.set_defaults(func=_cmd_synth)

    demo = commands.add_parser(
        "demo", parents=[debug], help="synthesize a corpus and run configs/demo.yaml on it, offline"
    )
    demo.add_argument("--docs", type=int, default=DEMO_DOCS)
    demo.add_argument("--output", default="runs/demo", metavar="RUN")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    demo.set_defaults(func=_cmd_demo)

    audit = commands.add_parser(
        "audit", parents=[debug], help="audit a JSONL or Parquet corpus for benchmark contamination (LCS rule)"
    )
    audit.add_argument("corpus", nargs="+", metavar="CORPUS", help="corpus files or globs")
    audit.add_argument(
        "--benchmarks",
        required=True,
        action="append",
        metavar="SPEC",
        help="benchmark spec YAML (format in the README) or a glob of them; repeat for more, all audited in one pass",
    )
    audit.add_argument("--output", default="audit", metavar="DIR", help="report folder (default: ./audit)")
    audit.add_argument("--mode", choices=["window", "document"], default="window")
    audit.add_argument("--window-factor", type=float, default=2.0, metavar="F")
    audit.add_argument("--min-tokens", type=int, default=13, metavar="T")
    audit.add_argument("--ratio", type=float, default=0.6)
    audit.add_argument("--tokenizer", default="words", help="'words' or a local tokenizer.json")
    audit.add_argument("--text-field", default="text")
    audit.add_argument("--id-field", default="id")
    audit.add_argument("--engine", choices=["ray", "local"], default="ray")
    audit.add_argument("--workers", type=int, default=None)
    audit.add_argument(
        "--item-partitions",
        type=int,
        default=None,
        metavar="N",
        help="split the benchmark items into N partitions, one task per shard and partition "
        "(default: automatic, from the item count and workers)",
    )
    audit.set_defaults(func=_cmd_audit)

    train = commands.add_parser(
        "train", parents=[debug], help="(re)train the fastText students on a run's teacher labels"
    )
    train.add_argument("run", metavar="RUN", help="run folder whose annotations/ holds the P2 sample and labels")
    train.add_argument("--hyperparams", default="configs/students.yaml", metavar="YAML")
    train.add_argument("--output", metavar="DIR", help="models folder (default: RUN/models)")
    train.set_defaults(func=_cmd_train)

    plan = commands.add_parser(
        "plan", parents=[debug], help="estimate core-hours, GPU-hours, disk and wall clock for a corpus size"
    )
    plan.add_argument("--tokens", required=True, help="corpus size in tokens, e.g. 18T (Qwen2.5) or 500B")
    plan.add_argument("--cores", type=int, default=1024, help="CPU cores in the cluster (default 1024)")
    plan.add_argument("--gpus", type=int, default=8, help="GPUs for the teacher (default 8)")
    plan.add_argument("--teacher-docs", type=int, default=500_000, help="documents the teacher labels")
    plan.add_argument("--gpu-tokens-per-s", type=float, default=20_000.0, help="teacher prefill tokens/s per GPU")
    plan.add_argument("--words-per-token", type=float, default=0.75)
    plan.add_argument("--throughput", metavar="JSON", help="throughputs file (default: configs/throughput.json)")
    plan.add_argument("--run", metavar="RUN", help="use the teacher tokens/s/GPU measured by this run's P2")
    plan.set_defaults(func=_cmd_plan)

    mix = commands.add_parser("mix", parents=[debug], help="re-mix a finished run with another mixture (P6 + P7 only)")
    mix.add_argument("run", metavar="RUN", help="a run folder whose phase P5 is complete")
    mix.add_argument("--mixture", required=True, metavar="FILE", help="YAML with the keys of the mixture: section")
    mix.add_argument("--name", help="folder name under RUN/mixtures/ (default: the file's stem)")
    mix.add_argument("--engine", choices=["ray", "local"], help="engine (default: the run's)")
    mix.add_argument("--workers", type=int, help="parallel tasks (default: the run's)")
    mix.set_defaults(func=_cmd_mix)

    teval = commands.add_parser("teacher-eval", parents=[debug], help="compare a run's teacher with human labels")
    teval.add_argument("run", metavar="RUN", help="a run folder whose phase P2 is complete")
    teval.add_argument("--labels", required=True, metavar="HUMAN", help="JSONL/Parquet: id, domain, <dim>: 0-5")
    teval.add_argument("--output", metavar="DIR", help="report folder (default: RUN/reports)")
    teval.set_defaults(func=_cmd_teacher_eval)

    report = commands.add_parser("report", parents=[debug], help="print the funnel and domain mix of a run")
    report.add_argument("run", metavar="RUN")
    report.set_defaults(func=_cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except MixwrightError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # a bug: say so in one line; --debug shows the traceback
        if args.debug:
            raise
        print(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
