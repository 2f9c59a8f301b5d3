"""P7 output: the mixture as hive-partitioned Parquet, RUN/mixture/domain=<d>/part-<rank>-<k>.parquet.

The domain lives in the folder name only (the hive convention: a `domain` column inside the files
too would clash with the partition column in pyarrow's dataset reader), so pyarrow, pandas,
polars, duckdb and HF datasets all read the folder back with a `domain` column. Domain names
are percent-encoded in the folder name, which those readers decode.
"""

from __future__ import annotations

import json
import os
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from pipeline.docio import AtomicParquetWriter, write_json_atomic
from stages.rebalance import QUALITY_EDGES, Plan, quality_histogram
from stages.tokens import MISSING_QUALITY, doc_domain

MIXTURE_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("quality", pa.float64()),
        ("language", pa.string()),
        ("token_count", pa.int64()),
        ("repeat", pa.int32()),
        ("source", pa.string()),
        ("metadata", pa.string()),  # every other metadata key, as a JSON object
    ]
)
_COLUMN_KEYS = ("domain", "quality", "language", "token_count", "repeat", "source")
_VERSIONED_PACKAGES = ("mixwright", "datatrove", "pyarrow", "numpy", "xxhash", "fasttext")


def domain_folder(mixture_dir: str | os.PathLike, domain: str) -> Path:
    return Path(mixture_dir) / f"domain={quote(domain, safe='')}"


def mixture_row(doc: Document) -> dict[str, Any]:
    meta = doc.metadata
    rest = {k: v for k, v in meta.items() if k not in _COLUMN_KEYS}
    return {
        "id": doc.id,
        "text": doc.text,
        "quality": meta.get("quality"),
        "language": meta.get("language"),
        "token_count": meta["token_count"],
        "repeat": meta.get("repeat", 0),
        "source": meta.get("source"),
        "metadata": json.dumps(rest, sort_keys=True, default=str),
    }


class MixtureWriter(PipelineStep):
    """Writes each task's documents per domain, `shard_docs` rows per file (and passes them on, as datatrove writers do)."""

    name = "💽 Mixture writer"
    type = "💽 - WRITER"

    def __init__(self, mixture_dir: str | os.PathLike, shard_docs: int = 50_000):
        super().__init__()
        self.mixture_dir = Path(mixture_dir)
        self.shard_docs = shard_docs

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        # A rerun of this task replaces its files, including parts a killed attempt left behind.
        for stale in self.mixture_dir.glob(f"domain=*/part-{rank:05d}-*.parquet"):
            stale.unlink()
        writers: dict[str, AtomicParquetWriter] = {}
        parts: dict[str, int] = {}
        try:
            for doc in data:
                with self.track_time():
                    domain = doc_domain(doc.metadata)
                    writer = writers.get(domain)
                    if writer is None or writer.rows >= self.shard_docs:
                        if writer is not None:
                            writer.close()
                        part = parts.get(domain, -1) + 1
                        parts[domain] = part
                        path = domain_folder(self.mixture_dir, domain) / f"part-{rank:05d}-{part:05d}.parquet"
                        writer = writers[domain] = AtomicParquetWriter(path, MIXTURE_SCHEMA)
                    writer.write(mixture_row(doc))
                self.stat_update("written")
                yield doc
        except BaseException as error:
            for open_writer in writers.values():
                open_writer.__exit__(type(error), error, error.__traceback__)
            raise
        for open_writer in writers.values():
            open_writer.close()


def recount(mixture_dir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Per-domain docs, tokens, originals (repeat 0), highest repeat and quality histogram, read back from the Parquet."""
    files = sorted(str(p) for p in Path(mixture_dir).glob("domain=*/part-*.parquet"))
    if not files:
        return {}
    dataset = ds.dataset(files, format="parquet", partitioning="hive", partition_base_dir=str(mixture_dir))
    table = dataset.to_table(columns=["domain", "token_count", "repeat", "quality"])
    domains = table.column("domain").to_numpy(zero_copy_only=False).astype(str)
    tokens = table.column("token_count").to_numpy()
    repeats = table.column("repeat").to_numpy()
    quality = table.column("quality").fill_null(MISSING_QUALITY).to_numpy()
    counts: dict[str, dict[str, Any]] = {}
    for domain in np.unique(domains).tolist():
        mask = domains == domain
        counts[domain] = {
            "docs": int(mask.sum()),
            "tokens": int(tokens[mask].sum()),
            "originals": int((repeats[mask] == 0).sum()),
            "max_repeat": int(repeats[mask].max()),
            "quality_hist": quality_histogram(quality[mask]),
        }
    return counts


def package_versions() -> dict[str, str]:
    versions = {}
    for package in _VERSIONED_PACKAGES:
        try:
            versions[package] = importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def write_manifest(mixture_dir: str | os.PathLike, plan: Plan, config_hash: str) -> dict[str, Any]:
    """RUN/mixture/manifest.json from the plan (before) and a recount of the written Parquet (after)."""
    after = recount(mixture_dir)
    total_after = sum(c["tokens"] for c in after.values())
    total_before = sum(p.tokens for p in plan.domains.values())
    domains = {}
    for domain in sorted(set(plan.domains) | set(after)):
        planned = plan.domains.get(domain)
        written = after.get(domain, {"docs": 0, "tokens": 0, "originals": 0, "max_repeat": None, "quality_hist": None})
        docs_before = planned.docs if planned else 0
        tokens_before = planned.tokens if planned else 0
        domains[domain] = {
            "docs_before": docs_before,
            "tokens_before": tokens_before,
            "share_before": tokens_before / total_before if total_before else 0.0,
            "rate": planned.rate if planned else None,
            "target_share": planned.target_share if planned else None,
            "quality_cutoff": None if planned is None or planned.cutoff is None else planned.cutoff.quality,
            "docs_after": written["docs"],
            "tokens_after": written["tokens"],
            "share_after": written["tokens"] / total_after if total_after else 0.0,
            "originals_after": written["originals"],
            "downsampled_away": docs_before - written["originals"],
            "upsampled_copies": written["docs"] - written["originals"],
            "max_repeat": written["max_repeat"],
            "quality_hist_before": planned.quality_hist if planned else None,
            "quality_hist_after": written["quality_hist"],
        }
    manifest = {
        "seed": plan.seed,
        "mode": plan.mode,
        "selection": plan.selection,
        "max_repeats": plan.max_repeats,
        "token_budget": plan.token_budget,
        "config_hash": config_hash,
        "versions": package_versions(),
        "warnings": plan.warnings,
        "quality_edges": QUALITY_EDGES.tolist(),
        "totals": {
            "docs_before": sum(d["docs_before"] for d in domains.values()),
            "tokens_before": total_before,
            "docs_after": sum(d["docs_after"] for d in domains.values()),
            "tokens_after": total_after,
            "originals_after": sum(d["originals_after"] for d in domains.values()),
        },
        "domains": domains,
    }
    write_json_atomic(Path(mixture_dir) / "manifest.json", manifest)
    return manifest
