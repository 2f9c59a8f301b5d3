"""`mixwright plan`: a capacity estimate for a corpus of a given size, from measured throughputs.

The per-phase throughputs come from `benchmarks/bench_pipeline.py`, which writes them to
`configs/throughput.json` (words per second per core, so that they scale with text, not with how
a corpus happens to be cut into documents). Every other number is an assumption, printed beside
the figure it produces, and each has a flag to replace it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from pipeline.config import CONFIGS_DIR
from pipeline.errors import ConfigError

THROUGHPUT_FILE = CONFIGS_DIR / "throughput.json"
_SUFFIXES = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9, "T": 10**12, "P": 10**15}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([KMBGTP]?)\s*$", re.IGNORECASE)


def parse_tokens(text: str) -> float:
    """'18T' -> 1.8e13; also 500B, 2.5e12, 7000000."""
    match = _SIZE.match(text)
    if not match:
        raise ConfigError(f"--tokens {text!r}: expected a number with an optional K/M/B/T suffix, e.g. 18T")
    return float(match.group(1)) * _SUFFIXES[match.group(2).upper()]


@dataclass(frozen=True)
class Assumptions:
    words_per_token: float = 0.75  # English BPE: ~0.75 words per token
    teacher_docs: int = 500_000  # documents the teacher labels at this scale (FineWeb-Edu: 450k)
    teacher_prompt_tokens: int = 1_300  # 4,000 characters of document + rubric/taxonomy prompt
    questions_per_doc: int = 4  # domain + 3 rubric dimensions, the document prefix cached
    question_tokens: int = 40  # the uncached suffix of each further question
    gpu_prefill_tokens_per_s: float = 20_000.0  # a 7B model, prefill-only, one H100, vLLM
    gpu_source: str = "assumed: 7B model, vLLM, H100"  # or the run that measured it (--run)
    bytes_per_token: float = 4.0  # raw UTF-8 text per token
    parquet_ratio: float = 3.0  # zstd Parquet compression of text
    live_copies: int = 4  # P1, P3 and P5 outputs stay in RUN/work (resume needs them), plus the mixture
    num_perm: int = 112  # MinHash values per document (14 bands x 8 rows)
    bands: int = 14
    offset_bands: bool = True  # dedup.offset_bands (the default): a second set of bands keys each document

    @property
    def band_keys(self) -> int:
        return self.bands * (2 if self.offset_bands else 1)


def measured_teacher_speed(run_dir: Path) -> float:
    """Uncached prompt tokens/s per GPU measured by a run's teacher (RUN/annotations/report.json)."""
    path = run_dir / "annotations" / "report.json"
    if not path.is_file():
        raise ConfigError(f"--run {run_dir}: {path} does not exist; run phase P2 with an LLM teacher first")
    measured = json.loads(path.read_text()).get("throughput") or {}
    speed, gpus = measured.get("uncached_prompt_tokens_per_s"), measured.get("gpus")
    if not speed or not gpus:
        raise ConfigError(
            f"--run {run_dir}: its teacher measured no GPU throughput (labels or endpoint backend); "
            "use --gpu-tokens-per-s"
        )
    return float(speed) / int(gpus)


def load_throughput(path: Path = THROUGHPUT_FILE) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path} does not exist: run `python benchmarks/bench_pipeline.py` to measure throughputs")
    return json.loads(path.read_text())


def estimate(tokens: float, cores: int, gpus: int, throughput: dict[str, Any], a: Assumptions) -> dict[str, Any]:
    words = tokens * a.words_per_token
    docs = words / throughput["words_per_doc"]
    phases = {}
    for name, measured in throughput["phases"].items():
        core_hours = words / measured["words_per_s_per_core"] / 3600
        phases[name] = {"words_per_s_per_core": measured["words_per_s_per_core"], "core_hours": core_hours}
    cpu_core_hours = sum(p["core_hours"] for p in phases.values())
    # The document prefix is cached across its questions: one full prompt, then a short suffix each.
    teacher_tokens = a.teacher_docs * (a.teacher_prompt_tokens + (a.questions_per_doc - 1) * a.question_tokens)
    gpu_hours = teacher_tokens / a.gpu_prefill_tokens_per_s / 3600
    copy_bytes = tokens * a.bytes_per_token / a.parquet_ratio
    # per document: the signature, uid and shingle count; per word: its shingle's 4-byte hash (P4
    # verifies pairs near the threshold exactly from them)
    signature_bytes = docs * (a.num_perm * 4 + 16) + words * 4
    shuffle_bytes = docs * a.band_keys * 28  # per band: key 8 + uid 8 + task 4 + row 4 + partition 4 bytes
    return {
        "tokens": tokens,
        "words": words,
        "docs": docs,
        "phases": phases,
        "cpu_core_hours": cpu_core_hours,
        "gpu_hours": gpu_hours,
        "teacher_tokens": teacher_tokens,
        "peak_disk_bytes": copy_bytes * (a.live_copies + 1) + signature_bytes + shuffle_bytes,
        "signature_bytes": signature_bytes,
        "shuffle_bytes": shuffle_bytes,
        "wall_hours": cpu_core_hours / cores + gpu_hours / gpus,
    }


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000:
            return f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} EB"


def print_plan(
    est: dict[str, Any], cores: int, gpus: int, throughput: dict[str, Any], a: Assumptions, console: Console
) -> None:
    title = f"Capacity plan: {est['tokens']:.3g} tokens on {cores} cores and {gpus} GPUs"
    table = Table(title=title, title_justify="left")
    table.add_column("item")
    table.add_column("estimate", justify="right")
    table.add_column("from (assumption or measurement)")
    source = f"measured by bench_pipeline.py on {throughput['measured_on']}"
    per_doc = f"{a.words_per_token} words/token, {throughput['words_per_doc']:.0f} words/doc ({source})"
    table.add_row("documents", f"{est['docs']:.3g}", per_doc)
    for name, phase in est["phases"].items():
        speed = f"{phase['words_per_s_per_core']:,.0f} words/s/core ({source})"
        table.add_row(f"CPU {name}", f"{phase['core_hours']:,.0f} core-h", speed)
    table.add_row("CPU total", f"{est['cpu_core_hours']:,.0f} core-h", "sum of the phases")
    table.add_row(
        "GPU teacher",
        f"{est['gpu_hours']:,.1f} GPU-h",
        f"{a.teacher_docs:,} docs x {a.teacher_prompt_tokens:,} prompt tokens, {a.questions_per_doc} questions "
        f"(prefix cached), {a.gpu_prefill_tokens_per_s:,.0f} prefill tokens/s/GPU ({a.gpu_source})",
    )
    signatures = f"{a.num_perm} x 4 B + 16 B per document, 4 B shingle hash per word"
    table.add_row("dedup signatures", _size(est["signature_bytes"]), signatures)
    shuffle = f"{a.band_keys} band keys x 28 B per document (above 8 P1 tasks)"
    table.add_row("dedup shuffle (LSH buckets)", _size(est["shuffle_bytes"]), shuffle)
    table.add_row(
        "peak disk",
        _size(est["peak_disk_bytes"]),
        f"input + {a.live_copies} phase copies at {a.bytes_per_token} B/token / {a.parquet_ratio}x zstd, "
        "+ signatures + shuffle",
    )
    table.add_row(
        "wall clock",
        f"{est['wall_hours']:,.1f} h ({est['wall_hours'] / 24:,.1f} days)",
        f"CPU core-h / {cores} cores + GPU-h / {gpus} GPUs, phases in sequence, perfect scaling assumed",
    )
    console.print(table)
