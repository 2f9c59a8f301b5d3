"""The funnel report: where every input document went, recounted from the files of the run.

Each number is counted from a different place (the readers' record counts, the quarantine files,
the rejected files, the mixture), so `holds` is a real check, not an identity.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.dataset as ds

from pipeline.rundir import RunDir


def _parquet_files(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.glob("*.parquet")) if folder.is_dir() else []


def count_rows(folder: Path) -> int:
    files = _parquet_files(folder)
    return ds.dataset(files, format="parquet").count_rows() if files else 0


def rejected_reasons(folder: Path) -> Counter[str]:
    files = _parquet_files(folder)
    if not files:
        return Counter()
    reasons = ds.dataset(files, format="parquet").to_table(columns=["reason"]).column("reason")
    counts = pc.value_counts(reasons).to_pylist()
    return Counter({item["values"]: item["counts"] for item in counts})


def input_counts(counts_dir: Path) -> dict[str, int]:
    totals: Counter[str] = Counter()
    for path in sorted(counts_dir.glob("*.json")):
        record = json.loads(path.read_text())
        for key in ("records", "documents", "quarantined"):
            totals[key] += record[key]
    return dict(totals)


_LANGUAGE = r'"language": "(?P<language>[^"]*)"'


def rejected_languages(folder: Path) -> Counter[str]:
    """Rejected documents per language, read from each row's details (RejectWriter puts it there)."""
    files = _parquet_files(folder)
    if not files:
        return Counter()
    details = ds.dataset(files, format="parquet").to_table(columns=["details"]).column("details")
    found = pc.struct_field(pc.extract_regex(details, _LANGUAGE), "language")
    counts = pc.value_counts(pc.fill_null(found, "unknown")).to_pylist()
    return Counter({item["values"]: item["counts"] for item in counts})


def mixture_languages(mixture_dir: Path) -> Counter[str]:
    """Original (not upsampled) mixture documents per language."""
    files = sorted(str(p) for p in mixture_dir.rglob("*.parquet")) if mixture_dir.is_dir() else []
    if not files:
        return Counter()
    table = ds.dataset(files, format="parquet").to_table(columns=["language", "repeat"])
    originals = table.filter(pc.equal(table.column("repeat"), 0)).column("language")
    counts = pc.value_counts(pc.fill_null(originals, "unknown")).to_pylist()
    return Counter({item["values"]: item["counts"] for item in counts})


def add_language_breakdown(rows: list[dict[str, Any]], run: RunDir) -> None:
    """Per stage from langid on, `languages: {lang: {in, kept, rejected}}`, counted backwards from
    the mixture: what a stage kept of a language is what later stages rejected plus what remained."""
    names = [row["name"] for row in rows]
    if "langid" not in names:
        return
    flowing = mixture_languages(run.mixture)
    for row in reversed(rows[names.index("langid") :]):
        rejected = rejected_languages(run.rejected / row["name"])
        languages = sorted(set(flowing) | set(rejected))
        row["languages"] = {
            lang: {"in": flowing[lang] + rejected[lang], "kept": flowing[lang], "rejected": rejected[lang]}
            for lang in languages
        }
        flowing = flowing + rejected


def compute_funnel(run: RunDir, stages: list[str], counts_dir: Path, mixture_originals: int | None) -> dict[str, Any]:
    """`stages` in pipeline order; `mixture_originals` = mixture rows that are not upsampled copies."""
    counts = input_counts(counts_dir)
    quarantined = count_rows(run.quarantine)
    rows: list[dict[str, Any]] = [
        {
            "name": "read",
            "in": counts.get("records", 0),
            "kept": counts.get("documents", 0),
            "rejected": 0,
            "quarantined": quarantined,
            "reasons": {},
        }
    ]
    flowing = counts.get("documents", 0)
    total_rejected = 0
    for stage in stages:
        reasons = rejected_reasons(run.rejected / stage)
        rejected = sum(reasons.values())
        rows.append(
            {
                "name": stage,
                "in": flowing,
                "kept": flowing - rejected,
                "rejected": rejected,
                "quarantined": 0,
                "reasons": dict(sorted(reasons.items())),
            }
        )
        flowing -= rejected
        total_rejected += rejected
    kept = flowing if mixture_originals is None else mixture_originals
    if mixture_originals is not None:
        add_language_breakdown(rows, run)
    records = counts.get("records", 0)
    return {
        "stages": rows,
        "conservation": {
            "input": records,
            "kept": kept,
            "rejected": total_rejected,
            "quarantined": quarantined,
            "holds": records == kept + total_rejected + quarantined,
        },
    }
