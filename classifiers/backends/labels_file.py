"""The `labels` backend: annotations a lab already has, from JSONL or Parquet.

Shape, one record per document: {"id": ..., "domain": "<domain id>", "<dimension id>": 0-5, ...}
(the synthetic generator writes `annotations.jsonl` this way). Records are matched to the sample
by `id`; a sample document without a record, or with an invalid value, is counted, not guessed.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from datatrove.data import Document

from classifiers.taxonomy import Rubric, Taxonomy


def read_records(path: Path) -> list[dict[str, Any]]:
    """Label records from JSONL or Parquet (one per document, with an `id`)."""
    if not path.is_file():
        raise FileNotFoundError(f"teacher.labels_path {path} does not exist")
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    records = []
    with path.open() as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{line_no}: not valid JSON ({exc.msg})") from None
    return records


def read_labels(
    path: str | Path, sample: Sequence[Document], taxonomy: Taxonomy, rubric: Rubric
) -> tuple[dict[int, dict[str, Any]], Counter]:
    """uid -> labels (the keys the teacher writes) for the sample, and the counted problems."""
    by_id = {str(r["id"]): r for r in read_records(Path(path)) if "id" in r}
    domains = set(taxonomy.ids)
    result: dict[int, dict[str, Any]] = {}
    errors: Counter = Counter()
    for doc in sample:
        uid = int(doc.metadata["uid"])
        record = by_id.get(str(doc.id))
        result[uid] = {"id": doc.id}
        if record is None:
            errors["missing"] += 1
            continue
        labels = result[uid]
        domain = record.get("domain")
        if domain in domains:
            labels |= {"domain": domain, "domain_prob": 1.0, "domain_probs": {domain: 1.0}}
        else:
            errors["domain:invalid"] += 1
        scores = {}
        for dim in rubric.ids:
            value = record.get(dim)
            if isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value <= 5:
                scores[dim] = float(value)
            else:
                errors[f"{dim}:invalid"] += 1
        labels |= {f"quality_{d}": round(s, 4) for d, s in scores.items()}
        if len(scores) == len(rubric.ids):
            labels["quality"] = round(rubric.aggregate(scores), 4)
    return result, errors
