"""P7 output: a mixture as hive-partitioned Parquet, one folder level per `group_by` key:
RUN/mixture/domain=<d>/part-<rank>-<k>.parquet by default, e.g. .../language=fr/length_bucket=2048-8192/.

The group values live in the folder names only, so pyarrow, pandas, polars, duckdb and HF
datasets all read the folder back with those columns. Values are percent-encoded in the folder
names, which those readers decode. The manifest recounts the written files.
"""

from __future__ import annotations

import json
import os
from importlib import metadata as importlib_metadata
from pathlib import Path
from time import perf_counter
from typing import Any
from urllib.parse import quote

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from pipeline.docio import MISSING_QUALITY, AtomicParquetWriter, doc_domain, write_json_atomic
from stages.checkpoint import TaskStats
from stages.groups import SEPARATOR
from stages.rebalance import GROUP_METADATA, QUALITY_EDGES, Sampling, quality_histogram

# Every column a mixture file can have; a group_by key that is a column lives in the folder name
# instead (the hive convention: the same name inside the files would clash with the partition
# column in pyarrow's dataset reader). Grouped by domain (the default), files have MIXTURE_SCHEMA.
_ALL_FIELDS = (
    ("id", pa.string()),
    ("text", pa.string()),
    ("domain", pa.string()),
    ("quality", pa.float64()),
    ("language", pa.string()),
    ("token_count", pa.int64()),
    ("repeat", pa.int32()),
    ("source", pa.string()),
    ("metadata", pa.string()),  # every other metadata key, as a JSON object
)
_METADATA_KEYS_NOT_KEPT = ("repeat", "token_count", GROUP_METADATA)
_VERSIONED_PACKAGES = ("mixwright", "datatrove", "pyarrow", "numpy", "xxhash", "fasttext", "tokenizers")


def mixture_schema(partition_keys: tuple[str, ...] = ("domain",)) -> pa.Schema:
    return pa.schema([f for f in _ALL_FIELDS if f[0] not in partition_keys])


MIXTURE_SCHEMA = mixture_schema()


def group_folder(mixture_dir: str | os.PathLike, partition: dict[str, str]) -> Path:
    """mixture_dir/<key>=<value>/... with values percent-encoded (readers decode them)."""
    folder = Path(mixture_dir)
    for key, value in partition.items():
        folder = folder / f"{key}={quote(value, safe='')}"
    return folder


def domain_folder(mixture_dir: str | os.PathLike, domain: str) -> Path:
    return group_folder(mixture_dir, {"domain": domain})


def doc_partition(doc: Document) -> dict[str, str]:
    """The copy's group values set by the sampler; a document that did not pass it goes by domain."""
    return doc.metadata.get(GROUP_METADATA) or {"domain": doc_domain(doc.metadata)}


# json.dumps(..., sort_keys=True, default=str) builds this encoder on every call: a third of its time.
_METADATA_ENCODER = json.JSONEncoder(sort_keys=True, default=str)


def mixture_row(doc: Document, names: tuple[str, ...] = tuple(MIXTURE_SCHEMA.names)) -> dict[str, Any]:
    """The row of `doc` in a file whose columns are `names` (a tuple: Schema.names builds a list per call)."""
    meta = doc.metadata
    rest = {k: v for k, v in meta.items() if k not in names and k not in _METADATA_KEYS_NOT_KEPT}
    rest.pop("domain", None)  # a partition key (or a column): never also in the JSON
    row = {
        "id": doc.id,
        "text": doc.text,
        "domain": doc_domain(meta),
        "quality": meta.get("quality"),
        "language": meta.get("language"),
        "token_count": meta["token_count"],
        "repeat": meta.get("repeat", 0),
        "source": meta.get("source"),
        "metadata": _METADATA_ENCODER.encode(rest),
    }
    return {name: row[name] for name in names}


class MixtureWriter(PipelineStep):
    """Writes each task's documents per group folder, `shard_docs` rows per file (and passes them
    on, as datatrove writers do)."""

    name = "💽 Mixture writer"
    type = "💽 - WRITER"

    def __init__(self, mixture_dir: str | os.PathLike, shard_docs: int = 50_000):
        super().__init__()
        self.mixture_dir = Path(mixture_dir)
        self.shard_docs = shard_docs

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        # A rerun of this task replaces its files, including parts a killed attempt left behind.
        for stale in self.mixture_dir.rglob(f"part-{rank:05d}-*.parquet"):
            stale.unlink()
        writers: dict[Path, AtomicParquetWriter] = {}
        columns: dict[Path, tuple[str, ...]] = {}
        parts: dict[Path, int] = {}
        folders: dict[tuple[tuple[str, str], ...], Path] = {}  # a few groups: Path building per document cost 15%
        try:
            with TaskStats(self) as stats:
                for doc in data:
                    start = perf_counter()
                    partition = doc_partition(doc)
                    key = tuple(partition.items())
                    folder = folders.get(key)
                    if folder is None:
                        folder = folders[key] = group_folder(self.mixture_dir, partition)
                    writer = writers.get(folder)
                    if writer is None or writer.rows >= self.shard_docs:
                        if writer is not None:
                            writer.close()
                        part = parts.get(folder, -1) + 1
                        parts[folder] = part
                        path = folder / f"part-{rank:05d}-{part:05d}.parquet"
                        writer = writers[folder] = AtomicParquetWriter(path, mixture_schema(tuple(partition)))
                        columns[folder] = tuple(writer.schema.names)
                    writer.write(mixture_row(doc, columns[folder]))
                    stats.seconds += perf_counter() - start
                    stats.counts["written"] += 1
                    yield doc
        except BaseException as error:
            for open_writer in writers.values():
                open_writer.__exit__(type(error), error, error.__traceback__)
            raise
        for open_writer in writers.values():
            open_writer.close()


def mixture_files(mixture_dir: str | os.PathLike) -> list[str]:
    return sorted(str(p) for p in Path(mixture_dir).rglob("part-*.parquet"))


def _after(mask: np.ndarray, tokens: np.ndarray, repeats: np.ndarray, quality: np.ndarray) -> dict[str, Any]:
    originals = mask & (repeats == 0)
    return {
        "docs": int(mask.sum()),
        "tokens": int(tokens[mask].sum()),
        "originals": int(originals.sum()),
        "repeat_tokens": int(tokens[mask & (repeats > 0)].sum()),
        "max_repeat": int(repeats[mask].max()),
        "quality_hist": quality_histogram(quality[mask]),
        "quality_hist_originals": quality_histogram(quality[originals]),
    }


Counts = dict[str, dict[str, dict[str, Any]]]


def recount(mixture_dir: str | os.PathLike, keys: tuple[str, ...] = ("domain",)) -> Counts:
    """Per group and per domain: docs, tokens, originals (repeat 0), repeat tokens, highest repeat and
    quality histograms, read back from the Parquet files and their folder names."""
    files = mixture_files(mixture_dir)
    if not files:
        return {"groups": {}, "domains": {}}
    partitioning = ds.partitioning(pa.schema([(k, pa.string()) for k in keys]), flavor="hive")
    dataset = ds.dataset(files, format="parquet", partitioning=partitioning, partition_base_dir=str(mixture_dir))
    table = dataset.to_table(columns=sorted({*keys, "domain", "token_count", "repeat", "quality"}))
    tokens = table.column("token_count").to_numpy()
    repeats = table.column("repeat").to_numpy()
    quality = table.column("quality").fill_null(MISSING_QUALITY).to_numpy()
    values = [table.column(k).to_pylist() for k in keys]
    names = np.array([SEPARATOR.join(v) for v in zip(*values)], dtype=str)
    domains = table.column("domain").to_numpy(zero_copy_only=False).astype(str)
    counts: dict[str, dict[str, dict[str, Any]]] = {"groups": {}, "domains": {}}
    for kind, labels in (("groups", names), ("domains", domains)):
        for label in np.unique(labels).tolist():
            counts[kind][label] = _after(labels == label, tokens, repeats, quality)
    return counts


def package_versions() -> dict[str, str]:
    versions = {}
    for package in _VERSIONED_PACKAGES:
        try:
            versions[package] = importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


_NOTHING_WRITTEN = {
    "docs": 0, "tokens": 0, "originals": 0, "repeat_tokens": 0, "max_repeat": None,
    "quality_hist": None, "quality_hist_originals": None,
}  # fmt: skip


def _sampled_away(before: dict | None, originals: dict | None) -> dict | None:
    """Quality histogram of the documents sampled away: before minus the originals kept."""
    if before is None:
        return None
    if originals is None:
        return before
    return {
        "counts": [b - o for b, o in zip(before["counts"], originals["counts"])],
        "missing": before["missing"] - originals["missing"],
    }


def _row(docs_before: int, tokens_before: int, total_before: int, written: dict, total_after: int) -> dict[str, Any]:
    return {
        "docs_before": docs_before,
        "tokens_before": tokens_before,
        "share_before": tokens_before / total_before if total_before else 0.0,
        "docs_after": written["docs"],
        "tokens_after": written["tokens"],
        "share_after": written["tokens"] / total_after if total_after else 0.0,
        "originals_after": written["originals"],
        "downsampled_away": docs_before - written["originals"],
        "upsampled_copies": written["docs"] - written["originals"],
        "repeat_tokens": written["repeat_tokens"],
        "max_repeat": written["max_repeat"],
        "quality_hist_after": written["quality_hist"],
    }


def _domain_rollup(plan: Sampling, after: dict[str, dict], total_before: int, total_after: int) -> dict[str, dict]:
    """Per-domain rows whatever the grouping; the before columns only when the plan groups by domain."""
    keys = plan.group_by.keys
    before: dict[str, list[int]] = {}
    if "domain" in keys:
        for group in plan.groups.values():
            counts = before.setdefault(group.values[keys.index("domain")], [0, 0])
            counts[0] += group.docs
            counts[1] += group.tokens
    rows = {}
    for domain in sorted(set(before) | set(after)):
        docs, tokens = before.get(domain, (0, 0))
        rows[domain] = _row(docs, tokens, total_before, after.get(domain, _NOTHING_WRITTEN), total_after)
        if "domain" not in keys:
            for column in ("docs_before", "tokens_before", "share_before", "downsampled_away"):
                rows[domain][column] = None
    return rows


def write_manifest(
    mixture_dir: str | os.PathLike, plan: Sampling, config_hash: str, tokenized: dict[str, Any] | None = None
) -> dict[str, Any]:
    """mixture_dir/manifest.json from the plan (before) and a recount of the written Parquet (after).

    `groups` has a row per group of the plan; `domains` rolls the same counts up per domain;
    `tokenized` (token files) gives the exact token count per group."""
    keys = plan.group_by.keys
    after = recount(mixture_dir, keys)
    total_after = sum(c["tokens"] for c in after["groups"].values())
    total_before = sum(g.tokens for g in plan.groups.values())
    groups = {}
    for name in sorted(set(plan.groups) | set(after["groups"])):
        planned = plan.groups.get(name)
        written = after["groups"].get(name, _NOTHING_WRITTEN)
        row = _row(planned.docs if planned else 0, planned.tokens if planned else 0, total_before, written, total_after)
        groups[name] = {
            "values": dict(zip(keys, planned.values)) if planned else None,
            **row,
            "rate": planned.rate if planned else None,
            "target_share": planned.target_share if planned else None,
            "quality_cutoff": None if planned is None or planned.cutoff is None else planned.cutoff.quality,
            "quality_hist_before": planned.quality_hist if planned else None,
            "quality_hist_sampled_away": _sampled_away(
                planned.quality_hist if planned else None, written["quality_hist_originals"]
            ),
            "note": planned.note if planned else None,
        }
    manifest = {
        "seed": plan.seed,
        "mode": plan.mode,
        "selection": plan.selection,
        "max_repeats": plan.max_repeats,
        "token_budget": plan.token_budget,
        "group_by": list(keys),
        "grouping": plan.grouping,
        "config_hash": config_hash,
        "versions": package_versions(),
        "warnings": plan.warnings,
        "quality_edges": QUALITY_EDGES.tolist(),
        "totals": {
            "docs_before": sum(g["docs_before"] for g in groups.values()),
            "tokens_before": total_before,
            "docs_after": sum(g["docs_after"] for g in groups.values()),
            "tokens_after": total_after,
            "originals_after": sum(g["originals_after"] for g in groups.values()),
            "repeat_tokens": sum(g["repeat_tokens"] for g in groups.values()),
        },
        "groups": groups,
        "domains": _domain_rollup(plan, after["domains"], total_before, total_after),
        "tokenized": tokenized,
    }
    write_json_atomic(Path(mixture_dir) / "manifest.json", manifest)
    return manifest
