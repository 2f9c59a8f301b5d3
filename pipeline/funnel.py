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
