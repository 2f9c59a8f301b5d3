"""The full CPU pipeline (configs/demo.yaml, every phase) at two corpus sizes.

    python benchmarks/bench_pipeline.py [--sizes 10000 100000] [--workers 2] [--no-save]

Prints per phase and overall: docs/s/core (documents entering the phase per second per worker)
and input-corpus words/s/core; the ratio time(largest)/time(smallest) against the size ratio
(linear scaling means equal); and the peak RSS of the whole process tree (driver + workers),
sampled every 0.1 s. The local engine runs it, so the process tree is the whole footprint.
The largest run's throughputs are written to configs/throughput.json for `mixwright plan`.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

import psutil

from pipeline.capacity import THROUGHPUT_FILE
from pipeline.config import CONFIGS_DIR, load_config
from pipeline.funnel import count_rows
from pipeline.phases import enabled_phases
from pipeline.rundir import RunDir
from pipeline.runner import run_pipeline
from pipeline.synth import generate

_WORD = re.compile(r"\w+")


class PeakRss:
    """Peak summed RSS of this process and its descendants."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(0.1):
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def phase_inputs(run: RunDir, records: int) -> dict[str, int]:
    """Documents entering each phase."""
    p1 = count_rows(run.phase("p1_filter") / "docs")
    p3 = count_rows(run.phase("p3_score") / "docs")
    p5 = count_rows(run.phase("p5_clean") / "docs")
    return {
        "p1_filter": records,
        "p2_teacher": p1,
        "p3_score": p1,
        "p4_dedup": p3,
        "p5_clean": p3,
        "p6_sampling": p5,
        "p7_mixture": p5,
    }


def run_size(docs: int, workers: int, root: Path) -> dict:
    corpus = root / f"corpus-{docs}"
    generate(corpus, docs=docs, seed=0)
    words = sum(len(_WORD.findall(json.loads(line)["text"])) for line in (corpus / "corpus.jsonl").open())
    config = load_config(
        CONFIGS_DIR / "demo.yaml",
        [f"teacher.labels_path={corpus / 'annotations.jsonl'}", "engine.kind=local", f"engine.workers={workers}"],
        inputs=[str(corpus / "corpus.jsonl")],
        output=str(root / f"run-{docs}"),
    )
    with PeakRss() as rss:
        started = time.perf_counter()
        funnel = run_pipeline(config, show_progress=False)
        total = time.perf_counter() - started
    run = RunDir(Path(config.output.dir))
    inputs = phase_inputs(run, docs)
    phases = {}
    for phase in enabled_phases(config):
        name = phase.id
        seconds = run.phase_summary(name)["seconds"]
        phases[name] = {
            "seconds": seconds,
            "docs_per_s_per_core": inputs[name] / seconds / workers,
            "words_per_s_per_core": words / seconds / workers,
        }
    assert funnel["conservation"]["holds"], funnel["conservation"]
    return {"docs": docs, "words": words, "seconds": total, "peak_rss": rss.peak, "phases": phases}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-save", action="store_true", help="do not update configs/throughput.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = [run_size(n, args.workers, Path(tmp)) for n in sorted(args.sizes)]
    for result in results:
        print(
            f"\n{result['docs']:,} documents: {result['seconds']:.1f} s, "
            f"{result['docs'] / result['seconds'] / args.workers:,.0f} docs/s/core overall, "
            f"peak RSS {result['peak_rss'] / 2**30:.2f} GiB"
        )
        print(f"  {'phase':<12} {'seconds':>8} {'docs/s/core':>12} {'words/s/core':>13}")
        for name, phase in result["phases"].items():
            print(
                f"  {name:<12} {phase['seconds']:>8.1f} {phase['docs_per_s_per_core']:>12,.0f}"
                f" {phase['words_per_s_per_core']:>13,.0f}"
            )
    small, large = results[0], results[-1]
    if len(results) > 1:
        print(
            f"\ntime({large['docs']:,}) / time({small['docs']:,}) = {large['seconds'] / small['seconds']:.2f} "
            f"for {large['docs'] / small['docs']:.0f}x the documents (goal <= 11: linear)"
        )
    if not args.no_save:
        payload = {
            "measured_on": (
                f"{date.today().isoformat()}, {psutil.cpu_count()} cores, {platform.processor() or platform.machine()}"
            ),
            "docs": large["docs"],
            "workers": args.workers,
            "words_per_doc": large["words"] / large["docs"],
            "phases": {name: {k: round(v, 1) for k, v in phase.items()} for name, phase in large["phases"].items()},
        }
        THROUGHPUT_FILE.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"throughputs written to {THROUGHPUT_FILE} (read by `mixwright plan`)")


if __name__ == "__main__":
    main()
