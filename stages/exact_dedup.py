"""Exact and URL dedup (P4, before MinHash): one document per normalised text, then per normalised URL.

Both are cheaper than MinHash (one hash per document, one sort) and shrink its input. They ride on
the near-dedup passes and never read or copy the texts again:

- P1: `MinhashSignatureStep` (stages/minhash.py) hashes each document's text and URL while it has
  the text (`document_keys`) and writes them beside its signatures (signatures/keys/<r>.parquet);
- P4: the step that reads the P3 documents' metadata for LSH (stages/dedup.py) joins their quality
  to those keys, and one task sorts the keys of the whole corpus (`find_duplicates`: ~50 bytes a
  document, about 20M documents per GB) into removed/<r>.parquet (uid, stage, keeper id) per task
  and summary.json, under RUN/work/p4_dedup/exact. LSH leaves the removed documents out;
- P5: `DedupFilter` drops them into rejected/exact/ and rejected/url/ with details {"keeper": id},
  in the same pass as the near-duplicates.

Keepers: exact, the highest `quality` (none ranks last), then the smallest id, then uid (the
near-dedup rule); URL, the highest quality, then the latest date (none ranks last), then the
smallest id. URL dedup runs on the documents exact dedup kept, so a keeper is never a removed one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash
from datatrove.data import Document

from pipeline.docio import task_file

KEY_SCHEMA = pa.schema(
    [
        ("uid", pa.int64()),
        ("id", pa.string()),
        ("quality", pa.float64()),
        ("date", pa.string()),
        ("text_hi", pa.uint64()),
        ("text_lo", pa.uint64()),
        ("url", pa.uint64()),
    ]
)
REMOVED_SCHEMA = pa.schema([("task", pa.int32()), ("uid", pa.int64()), ("stage", pa.string()), ("keeper", pa.string())])
EXACT_STAGE, URL_STAGE = "exact", "url"
# Fields read for the URL and its date: WARC documents carry them in metadata, JSONL and Parquet
# records keep their extra fields in metadata["input"].
URL_FIELDS = ("url",)
DATE_FIELDS = ("date", "timestamp", "crawl_date")
_DEFAULT_PORTS = {"http": 80, "https": 443}


# The characters str.split() splits on: the non-ASCII ones (none above U+3000), and the ASCII ones
# (\x1c-\x1f included) as a bytes translation to space.
_UNICODE_SPACES = tuple(c for c in map(chr, range(0x80, 0x3001)) if c.isspace())
_ASCII_SPACES = bytes(c for c in range(0x80) if chr(c).isspace())
_TO_SPACE = bytes.maketrans(_ASCII_SPACES, b" " * len(_ASCII_SPACES))
_SPACE_RUNS = re.compile(b"  +")


def normalize_text(text: str) -> bytes:
    """`" ".join(text.lower().split())` in UTF-8 (tested), without a str per word: 2x less CPU on
    the real corpus, where the words were most of text_hash's cost."""
    low = text.lower()
    if not low.isascii():
        for char in _UNICODE_SPACES:
            if char in low:
                low = low.replace(char, " ")
    return _SPACE_RUNS.sub(b" ", low.encode("utf-8", "surrogatepass").translate(_TO_SPACE)).strip(b" ")


def text_hash(text: str) -> tuple[int, int]:
    """128-bit xxh3 of the text lowercased with whitespace runs collapsed: copies that differ only in
    case, spacing or line breaks are exact duplicates. 128 bits: no accidental collision at 1e12 docs."""
    digest = xxhash.xxh3_128_intdigest(normalize_text(text))
    return digest >> 64, digest & 0xFFFFFFFFFFFFFFFF


def normalize_url(url: str) -> str | None:
    """http and https alike; host lowercased without `www.` and default port; no fragment, no
    trailing slash; query parameters sorted. None for a value that is not an absolute URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    host = parts.hostname.lower().removeprefix("www.")
    if port is not None and port != _DEFAULT_PORTS.get(parts.scheme.lower()):
        host = f"{host}:{port}"
    query = urlencode(sorted(parse_qsl(parts.query, keep_blank_values=True)))
    return f"{host}{parts.path.rstrip('/')}" + (f"?{query}" if query else "")


def _field(doc: Document, names: tuple[str, ...]) -> str | None:
    record = doc.metadata.get("input") or {}
    for name in names:
        value = doc.metadata.get(name, record.get(name) if isinstance(record, dict) else None)
        if isinstance(value, str) and value:
            return value
    return None


def document_keys(doc: Document) -> dict[str, Any]:
    hi, lo = text_hash(doc.text)
    url = _field(doc, URL_FIELDS)
    normalized = normalize_url(url) if url else None
    quality = doc.metadata.get("quality")
    return {
        "uid": doc.metadata["uid"],
        "id": doc.id,
        "quality": float(quality) if isinstance(quality, int | float) else None,
        "date": _field(doc, DATE_FIELDS),
        "text_hi": hi,
        "text_lo": lo,
        "url": xxhash.xxh3_64_intdigest(normalized.encode()) if normalized else None,
    }


# What P1 stores per document (the id and quality are read at P4 from the P3 documents).
P1_KEY_SCHEMA = pa.schema([KEY_SCHEMA.field(name) for name in ("uid", "date", "text_hi", "text_lo", "url")])


def keys_table(docs: Sequence[Document]) -> pa.Table:
    """The P1 keys (P1_KEY_SCHEMA) of `docs`, in order."""
    rows = [document_keys(doc) for doc in docs]
    return pa.Table.from_pylist(rows, schema=KEY_SCHEMA).select(P1_KEY_SCHEMA.names)


def _group_starts(keys: list[np.ndarray]) -> np.ndarray:
    starts = np.ones(len(keys[0]), dtype=bool)
    if len(starts) > 1:
        starts[1:] = np.logical_or.reduce([k[1:] != k[:-1] for k in keys])
    return starts


def _duplicates(table: pa.Table, group_by: list[str], order: list[tuple[str, str]]) -> tuple[pa.Table, int]:
    """Rows of `table` that are not the first of their group under `order`, with their keeper's id;
    and the number of groups with more than one row."""
    if table.num_rows == 0:
        return table.append_column("keeper", pa.array([], pa.string())), 0
    indices = pc.sort_indices(table, sort_keys=[(c, "ascending") for c in group_by] + order)
    ordered = table.take(indices)
    starts = _group_starts([ordered.column(c).to_numpy() for c in group_by])
    first = np.flatnonzero(starts)
    keeper = np.asarray(ordered.column("id").to_pylist(), dtype=object)[first[np.cumsum(starts) - 1]]
    sizes = np.diff(np.r_[first, len(starts)])
    removed = ordered.append_column("keeper", pa.array(keeper, pa.string())).filter(pa.array(~starts))
    return removed, int((sizes > 1).sum())


def find_duplicates(keys: pa.Table, exact: bool, url: bool) -> tuple[pa.Table, dict[str, Any]]:
    """(removed rows: task, uid, stage, keeper) and the per-stage summary, over the keys of the corpus
    (KEY_SCHEMA plus the `task` each row came from)."""
    removed: list[pa.Table] = [REMOVED_SCHEMA.empty_table()]
    summary: dict[str, Any] = {}
    # a missing quality or date ranks below any value in a descending order
    remaining = keys.set_column(
        keys.schema.get_field_index("quality"), "quality", pc.fill_null(keys.column("quality"), -np.inf)
    ).set_column(keys.schema.get_field_index("date"), "date", pc.fill_null(keys.column("date"), ""))
    best = [("quality", "descending")]
    if exact:
        dup, groups = _duplicates(remaining, ["text_hi", "text_lo"], best + [("id", "ascending"), ("uid", "ascending")])
        removed.append(_removed_rows(dup, EXACT_STAGE))
        summary[EXACT_STAGE] = {"documents_in": remaining.num_rows, "groups": groups, "removed": dup.num_rows}
        remaining = remaining.filter(pc.invert(pc.is_in(remaining.column("uid"), dup.column("uid"))))
    if url:
        with_url = remaining.filter(pc.is_valid(remaining.column("url")))
        order = best + [("date", "descending"), ("id", "ascending"), ("uid", "ascending")]
        dup, groups = _duplicates(with_url, ["url"], order)
        removed.append(_removed_rows(dup, URL_STAGE))
        summary[URL_STAGE] = {
            "documents_in": remaining.num_rows,
            "documents_with_url": with_url.num_rows,
            "groups": groups,
            "removed": dup.num_rows,
        }
    return pa.concat_tables(removed).sort_by([("task", "ascending"), ("uid", "ascending")]), summary


def _removed_rows(dup: pa.Table, stage: str) -> pa.Table:
    stages = pa.array([stage] * dup.num_rows, pa.string())
    columns = {"task": dup.column("task"), "uid": dup.column("uid"), "stage": stages, "keeper": dup.column("keeper")}
    return pa.table(columns, schema=REMOVED_SCHEMA)


def removed_file(work_dir: str | Path, rank: int) -> Path:
    """removed/<rank>.parquet (REMOVED_SCHEMA) under the exact-dedup folder `work_dir`."""
    return task_file(Path(work_dir) / "removed", rank)


def load_removed(work_dir: str | Path, rank: int) -> dict[int, tuple[str, str]]:
    """uid -> (stage, keeper id) of task `rank`'s removed documents; empty when exact and URL dedup are off."""
    path = removed_file(work_dir, rank)
    if not path.is_file():
        return {}
    table = pq.read_table(path, columns=["uid", "stage", "keeper"])
    stages, keepers = table.column("stage").to_pylist(), table.column("keeper").to_pylist()
    return dict(zip(table.column("uid").to_pylist(), zip(stages, keepers)))


def removed_uids(work_dir: str | Path, rank: int) -> np.ndarray:
    """The uids of task `rank`'s removed documents (int64; empty when exact and URL dedup are off)."""
    path = removed_file(work_dir, rank)
    if not path.is_file():
        return np.empty(0, dtype=np.int64)
    return pq.read_table(path, columns=["uid"]).column(0).to_numpy()


def dedup_summary(work_dir: str | Path) -> dict[str, Any]:
    path = Path(work_dir) / "summary.json"
    return json.loads(path.read_text()) if path.is_file() else {}
