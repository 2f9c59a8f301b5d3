"""RUN/reports/dedup.json: P4's summary with the LSH parameters and their S-curve, and a section per
exact and URL dedup stage (which run first: the near-dedup counts are over what they kept)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.config import DedupConfig
from pipeline.docio import write_json_atomic
from stages.exact_dedup import dedup_summary
from stages.minhash import candidate_probability, lsh_shape, lsh_threshold, verify_threshold

S_CURVE_POINTS = (0.5, 0.7, 0.8, 0.9)


def write_dedup_report(work_dir: Path, config: DedupConfig, path: Path) -> dict[str, Any]:
    """Merge P4's clusters.json with the parameters that produced it."""
    summary = json.loads((Path(work_dir) / "clusters.json").read_text())
    bands, rows = lsh_shape(config)
    report = {
        **summary,
        "kept": summary["documents_in"] - summary["removed"],
        "parameters": {
            "ngram": config.ngram,
            "bands": bands,
            "rows": rows,
            "num_perm": bands * rows,
            "seed": config.seed,
            "threshold": config.threshold,
            "lsh_threshold": round(lsh_threshold(bands, rows), 4),
            "offset_bands": config.offset_bands,
            "verify": config.verify,
            "verify_threshold": round(verify_threshold(config), 4) if config.verify else None,
        },
        "s_curve": {
            str(s): round(candidate_probability(s, bands, rows, config.offset_bands), 4) for s in S_CURVE_POINTS
        },
        "notes": [
            f"{summary['documents_without_signature']} documents have no word after normalization, "
            "hence no signature: they are never clustered and never removed by dedup.",
            "Keeper: highest quality (documents without quality rank last), then smallest id.",
        ],
    }
    stages = dedup_summary(Path(work_dir) / "exact")
    if stages:
        report.update(stages)  # "exact" and "url" sections
        report["notes"].append(
            "exact: one document per text (lowercased, whitespace collapsed), same keeper rule; url: one per "
            "normalised URL among those, keeper by highest quality, then latest date, then smallest id."
        )
    write_json_atomic(path, report)
    return report
