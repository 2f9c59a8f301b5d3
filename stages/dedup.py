"""Near-duplicate clusters from MinHash signatures (P4) and their removal (P5).

P4 never holds the whole LSH index in one worker. It runs as two datatrove steps and one small
global step, all under `work_dir` (RUN/work/p4_dedup):

- `LshBucketStep`, one task per signature file r (written by P1, never recomputed here): hashes
  each band of each signature to a 64-bit bucket key and writes buckets/<r>.parquet, rows
  (part, band, key, uid, row) sorted by partition part = key mod P, one row group per partition.
  Only documents still present in the P3 documents get rows, so a document dropped after P1 can
  never be chosen as a keeper. It also writes members/<r>.parquet (uid, id, quality, signed) of
  every P3 document: the attributes the keeper choice needs, without reading the texts again.
- `LshCandidateStep`, one task per partition p: reads partition p of every bucket file (row-group
  pruning), groups rows by (band, key) and links every member of a bucket to the bucket's smallest
  uid: a star, k - 1 edges instead of k(k-1)/2 pairs. Writes edges/<p>.parquet.
- `assign_clusters` then takes connected components over the edges (only documents that have
  a duplicate appear in them), picks one keeper per cluster and writes assignment/<r>.parquet
  (uid, cluster, size, keeper, is_keeper) per task of the documents it holds, so a P5 task loads
  only its own slice.

Verification (`dedup.verify`, default on): a band collision alone also links pairs well below the
threshold (14 x 8: one pair in 16 at Jaccard 0.5, one in 4 at 0.6), and a star turns each false
link into a merge of whole clusters. A verified edge needs the members' estimated Jaccard
(signature agreement) >= the threshold. The signatures are read for candidate documents only, by
(task, row) carried in the bucket rows, from a raw copy of each P1 signature file that step A
writes (signatures/<r>.npy) and step B memory-maps: only the pages of the rows asked for are read.
Carrying every signature through the shuffle would multiply its size by the number of bands, and
reading them from the compressed Parquet would decompress whole row groups per partition.
A member that fails against the bucket's root is compared with the bucket's other failures
(smallest uid first), so two similar members of a bucket whose root is a false hit stay linked.

Keeper: the highest `quality`; a document without `quality` ranks below any with one; ties go to
the smallest id, then the smallest uid (ids may repeat in real data), so the choice never depends
on task order or worker count. Documents with no word (no signature) are never clustered.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
import pyarrow.parquet as pq
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter

from pipeline.config import DedupConfig
from pipeline.docio import RejectWriter, task_file, write_json_atomic
from stages.minhash import (
    lsh_shape,
    read_signatures,
    verify_threshold,
    write_table_atomic,
)

BUCKET_SCHEMA = pa.schema(
    [("part", pa.int32()), ("band", pa.int16()), ("key", pa.uint64()), ("uid", pa.int64()), ("row", pa.int32())]
)
MEMBER_SCHEMA = pa.schema(
    [("uid", pa.int64()), ("id", pa.string()), ("quality", pa.float64()), ("signed", pa.bool_())]
)
EDGE_SCHEMA = pa.schema([("uid", pa.int64()), ("root", pa.int64())])
ASSIGNMENT_SCHEMA = pa.schema(
    [
        ("uid", pa.int64()),
        ("cluster", pa.int64()),
        ("size", pa.int32()),
        ("keeper", pa.string()),
        ("is_keeper", pa.bool_()),
    ]
)
_METADATA_PARSE = pa_json.ParseOptions(
    explicit_schema=pa.schema([("uid", pa.int64()), ("quality", pa.float64())]), unexpected_field_behavior="ignore"
)
_ONE_THREAD = pa_json.ReadOptions(use_threads=False)
LARGEST_CLUSTERS = 10
# MurmurHash3 fmix64 constants.
_FMIX64_M1 = np.uint64(0xFF51AFD7ED558CCD)
_FMIX64_M2 = np.uint64(0xC4CEB9FE1A85EC53)
_SHIFT33 = np.uint64(33)


def _fmix64(values: np.ndarray) -> np.ndarray:
    values = values ^ (values >> _SHIFT33)
    values *= _FMIX64_M1
    values ^= values >> _SHIFT33
    values *= _FMIX64_M2
    return values ^ (values >> _SHIFT33)


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n, bands) uint64 bucket keys: a chained fmix64 over each band's values, seeded by the band.

    Each step h -> fmix64(h ^ v) is a bijection of h for a given v, so two different bands meet
    only by a 64-bit accident (~n^2 / 2^65 over the corpus); the band seed keeps equal values in
    different bands apart, which lets one partition hold several bands.
    """
    values = signatures[:, : bands * rows].astype(np.uint64).reshape(len(signatures), bands, rows)
    keys = np.repeat(_fmix64(np.arange(1, bands + 1, dtype=np.uint64))[None, :], len(signatures), axis=0)
    for j in range(rows):
        keys = _fmix64(keys ^ values[:, :, j])
    return keys


def _shared_rows(band: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Indices of the rows whose (band, key) bucket holds at least one other row."""
    order = np.lexsort((key, band))
    b, k = band[order], key[order]
    same = (b[1:] == b[:-1]) & (k[1:] == k[:-1])
    shared = np.zeros(len(order), dtype=bool)
    shared[1:] |= same
    shared[:-1] |= same
    return np.sort(order[shared])


def estimated_jaccard(signatures: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Share of equal MinHash values of each row of `signatures` with `reference`."""
    return (signatures == reference).mean(axis=1)


def bucket_edges(
    band: np.ndarray,
    key: np.ndarray,
    uid: np.ndarray,
    signatures: tuple[np.ndarray, np.ndarray] | None = None,
    threshold: float = 0.0,
) -> np.ndarray:
    """Unique (uid, root) edges, root < uid, linking the members of each (band, key) bucket.

    Without `signatures` every member links to the bucket's smallest uid. With them, given as
    (sorted unique uids, their signature rows), a member links to the smallest uid it agrees with
    on >= `threshold` of the values, among the bucket's root and, failing that, the other members
    that failed it.
    """
    if len(uid) == 0:
        return np.empty((0, 2), dtype=np.int64)
    order = np.lexsort((uid, key, band))
    band, key, uid = band[order], key[order], uid[order]
    starts = np.r_[True, (band[1:] != band[:-1]) | (key[1:] != key[:-1])]
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)[group]
    members = np.flatnonzero(~starts)
    if signatures is None:
        return np.unique(np.stack([uid[members], uid[first[members]]], axis=1), axis=0)
    signed_uids, matrix = signatures
    sig = np.searchsorted(signed_uids, uid)
    agree = np.empty(len(members), dtype=bool)
    for lo in range(0, len(members), 1 << 14):  # bounds the (rows x num_perm) comparison
        chunk = members[lo : lo + (1 << 14)]
        agree[lo : lo + len(chunk)] = (matrix[sig[chunk]] == matrix[sig[first[chunk]]]).mean(axis=1) >= threshold
    pairs = [np.stack([uid[members[agree]], uid[first[members[agree]]]], axis=1)]
    failed = members[~agree]
    # Rare (a band collision of dissimilar documents): a short loop per bucket concerned.
    for g in np.unique(group[failed]):
        rest = failed[group[failed] == g]
        while len(rest) > 1:
            close = estimated_jaccard(matrix[sig[rest[1:]]], matrix[sig[rest[0]]]) >= threshold
            pairs.append(np.stack([uid[rest[1:][close]], np.full(int(close.sum()), uid[rest[0]])], axis=1))
            rest = rest[1:][~close]
    return np.unique(np.concatenate(pairs), axis=0)


def connected_components(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted unique nodes, the smallest node of each one's component) over undirected edges.

    Hooking and pointer jumping in numpy: each round hooks every root to the smallest root it has
    an edge to, then compresses paths; parent[i] <= i always holds, so no cycle can form.
    """
    nodes = np.unique(np.concatenate([src, dst]))
    a, b = np.searchsorted(nodes, src), np.searchsorted(nodes, dst)
    parent = np.arange(len(nodes))
    while True:
        ra, rb = parent[a], parent[b]
        if (ra == rb).all():
            return nodes, nodes[parent]
        low = np.minimum(ra, rb)
        np.minimum.at(parent, ra, low)
        np.minimum.at(parent, rb, low)
        while True:
            jumped = parent[parent]
            if (jumped == parent).all():
                break
            parent = jumped


def _members_of(documents_file: Path) -> pa.Table:
    """(uid, id, quality) of the P3 documents of one task, from their metadata only.

    Arrow's JSON reader parses the metadata strings (one JSON object per line: json.dumps escapes
    newlines) about 4x faster than json.loads per document (measured), reading top-level keys only.
    """
    table = pq.read_table(documents_file, columns=["id", "metadata"])
    if table.num_rows == 0:
        return pa.table({"uid": pa.array([], pa.int64()), "id": table.column("id"), "quality": pa.array([], pa.float64())})
    lines = "\n".join(table.column("metadata").to_pylist()).encode()
    # one thread: the engine gives a task one CPU
    parsed = pa_json.read_json(pa.BufferReader(lines), read_options=_ONE_THREAD, parse_options=_METADATA_PARSE)
    return pa.table({"uid": parsed.column("uid"), "id": table.column("id"), "quality": parsed.column("quality")})


class LshBucketStep(PipelineStep):
    """P4 task r: bucket rows of signature file r, partitioned, plus the members file of task r."""

    name = "🪣 LSH buckets"
    type = "🫂 - DEDUP"

    def __init__(
        self, signatures_dir: str | Path, documents_dir: str | Path, work_dir: str | Path, config: DedupConfig, partitions: int
    ):
        super().__init__()
        self.signatures_dir = str(signatures_dir)
        self.documents_dir = str(documents_dir)
        self.work_dir = str(work_dir)
        self.config = config
        self.partitions = partitions

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        bands, rows = lsh_shape(self.config)
        work = Path(self.work_dir)
        with self.track_time():
            documents = _members_of(task_file(self.documents_dir, rank))
            doc_uids = documents.column("uid").to_numpy()
            uids, signatures = read_signatures(task_file(self.signatures_dir, rank))
            # signatures of documents dropped after P1 (not in P3) get no bucket rows
            present = np.flatnonzero(np.isin(uids, doc_uids))
            keys = band_keys(signatures[present], bands, rows).ravel()
            part = (keys % np.uint64(self.partitions)).astype(np.int32)
            order = np.argsort(part, kind="stable")
            table = pa.table(
                {
                    "part": part[order],
                    "band": np.tile(np.arange(bands, dtype=np.int16), len(present))[order],
                    "key": keys[order],
                    "uid": np.repeat(uids[present], bands)[order],
                    "row": np.repeat(present.astype(np.int32), bands)[order],
                },
                schema=BUCKET_SCHEMA,
            )
            # one row group per partition at most: a candidate task reads only its own
            bounds = np.searchsorted(table.column("part").to_numpy(), np.arange(self.partitions + 1))
            path = task_file(work / "buckets", rank)
            tmp = path.with_name(f".{path.name}.tmp")
            path.parent.mkdir(parents=True, exist_ok=True)
            with pq.ParquetWriter(tmp, BUCKET_SCHEMA, compression="zstd") as writer:
                for lo, hi in zip(bounds[:-1], bounds[1:]):
                    if hi > lo:
                        writer.write_table(table.slice(lo, hi - lo), row_group_size=hi - lo)
                if table.num_rows == 0:
                    writer.write_table(table)
            tmp.replace(path)
            members = documents.append_column("signed", pa.array(np.isin(doc_uids, uids))).cast(MEMBER_SCHEMA)
            write_table_atomic(members, task_file(work / "members", rank))
            if self.config.verify:
                _save_matrix_atomic(signatures, _matrix_file(work, rank))
        self.stat_update("documents", value=len(doc_uids))
        self.stat_update("signed", value=len(present))
        yield from ()


def _matrix_file(work: Path, rank: int) -> Path:
    return work / "signatures" / f"{rank:05d}.npy"


def _save_matrix_atomic(matrix: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as fh:
        np.save(fh, matrix)
    tmp.replace(path)


class LshCandidateStep(PipelineStep):
    """P4 task p: the (verified) candidate edges of partition p of every bucket file."""

    name = "🔗 LSH candidates"
    type = "🫂 - DEDUP"

    def __init__(self, work_dir: str | Path, config: DedupConfig, sources: int):
        super().__init__()
        self.work_dir = str(work_dir)
        self.config = config
        self.sources = sources

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        work = Path(self.work_dir)
        with self.track_time():
            parts = []
            for source in range(self.sources):
                table = pq.read_table(
                    task_file(work / "buckets", source), columns=["band", "key", "uid", "row"], filters=[("part", "=", rank)]
                )
                parts.append(table.append_column("source", pa.array(np.full(table.num_rows, source, dtype=np.int32))))
            rows = pa.concat_tables(parts)
            band, key = rows.column("band").to_numpy(), rows.column("key").to_numpy()
            # only rows sharing their bucket can link anything: most documents have no duplicate
            shared = _shared_rows(band, key)
            uid = rows.column("uid").to_numpy()[shared]
            signatures = None
            if self.config.verify:
                signatures = self._signatures(uid, rows.column("source").to_numpy()[shared], rows.column("row").to_numpy()[shared])
            edges = bucket_edges(band[shared], key[shared], uid, signatures, verify_threshold(self.config))
            table = pa.table({"uid": edges[:, 0], "root": edges[:, 1]}, schema=EDGE_SCHEMA)
            write_table_atomic(table, task_file(work / "edges", rank))
        self.stat_update("bucket_rows", value=len(band))
        self.stat_update("shared_bucket_rows", value=len(uid))
        self.stat_update("edges", value=len(edges))
        yield from ()

    def _signatures(self, uid: np.ndarray, source: np.ndarray, row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(sorted unique uids, their signatures), read once per document from step A's raw copies
        of the P1 signatures: a memory map reads only the pages of the rows asked for."""
        unique, at = np.unique(uid, return_index=True)
        source, row = source[at], row[at]
        matrix = np.empty((len(unique), math.prod(lsh_shape(self.config))), dtype=np.uint32)
        for s in np.unique(source):
            mine = np.flatnonzero(source == s)
            matrix[mine] = np.load(_matrix_file(Path(self.work_dir), int(s)), mmap_mode="r")[row[mine]]
        return unique, matrix


def lsh_step_lists(
    signatures_dir: str | Path, documents_dir: str | Path, work_dir: str | Path, config: DedupConfig, tasks: int
) -> list[tuple[str, list[PipelineStep]]]:
    """P4's two datatrove step lists, (name, steps), each run for ranks 0..tasks-1 in order.

    As many partitions as P1 tasks: a partition stays about the size of one task's bucket rows.
    `assign_clusters(work_dir, tasks, tasks)` then takes over."""
    return [
        ("buckets", [LshBucketStep(signatures_dir, documents_dir, work_dir, config, partitions=tasks)]),
        ("candidates", [LshCandidateStep(work_dir, config, sources=tasks)]),
    ]


def _keepers(members: pa.Table, nodes: np.ndarray, labels: np.ndarray) -> pa.Table:
    """Assignment rows of the clustered `members`, plus their task, sorted by (task, uid)."""
    uid = members.column("uid").to_numpy()
    cluster = labels[np.searchsorted(nodes, uid)]
    quality = members.column("quality").to_numpy(zero_copy_only=False).astype(np.float64)
    # descending quality, missing (NaN) last; then smallest id, then smallest uid
    rank_quality = np.where(np.isnan(quality), np.inf, -quality)
    ids = np.array(members.column("id").to_pylist(), dtype=str)
    order = np.lexsort((uid, ids, rank_quality, cluster))
    cluster_sorted = cluster[order]
    starts = np.ones(len(order), dtype=bool)  # (not np.r_[True, ...]: no cluster at all must work too)
    starts[1:] = cluster_sorted[1:] != cluster_sorted[:-1]
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    sizes = np.diff(np.r_[first, len(order)])
    keeper_row = order[first[group]]
    back = np.empty_like(order)
    back[order] = np.arange(len(order))
    return pa.table(
        {
            "task": members.column("task"),
            "uid": uid,
            "cluster": cluster,
            "size": sizes[group][back].astype(np.int32),
            "keeper": ids[keeper_row][back],
            "is_keeper": (keeper_row == order)[back],
        }
    ).sort_by([("task", "ascending"), ("uid", "ascending")])


def assign_clusters(work_dir: str | Path, sources: int, partitions: int) -> dict[str, Any]:
    """The global step of P4: components of the edges, one keeper per cluster, the assignment files
    (one per task) and the summary, also saved as clusters.json for the dedup report."""
    work = Path(work_dir)
    edges = pa.concat_tables([EDGE_SCHEMA.empty_table()] + [pq.read_table(task_file(work / "edges", p)) for p in range(partitions)])
    nodes, labels = connected_components(edges.column("uid").to_numpy(), edges.column("root").to_numpy())
    documents = without_signature = 0
    clustered = [MEMBER_SCHEMA.append(pa.field("task", pa.int32())).empty_table()]
    for task in range(sources):
        members = pq.read_table(task_file(work / "members", task))
        documents += members.num_rows
        without_signature += members.num_rows - (pc.sum(members.column("signed")).as_py() or 0)
        mask = np.isin(members.column("uid").to_numpy(), nodes)
        clustered.append(members.filter(mask).append_column("task", pa.array(np.full(int(mask.sum()), task, dtype=np.int32))))
    assignment = _keepers(pa.concat_tables(clustered), nodes, labels)
    tasks = assignment.column("task").to_numpy()
    for task in range(sources):
        lo, hi = np.searchsorted(tasks, [task, task + 1])
        write_table_atomic(assignment.slice(lo, hi - lo).drop_columns(["task"]), task_file(work / "assignment", task))
    keepers = assignment.filter(assignment.column("is_keeper"))
    sizes = keepers.column("size").to_numpy()
    largest = np.lexsort((keepers.column("cluster").to_numpy(), -sizes))[:LARGEST_CLUSTERS]
    summary = {
        "documents_in": documents,
        "documents_without_signature": without_signature,
        "documents_in_clusters": assignment.num_rows,
        "clusters": keepers.num_rows,
        "removed": assignment.num_rows - keepers.num_rows,
        "cluster_size_histogram": {str(k): v for k, v in sorted(Counter(sizes.tolist()).items())},
        "largest_clusters": [
            {"cluster": row["cluster"], "size": row["size"], "keeper": row["keeper"]}
            for row in keepers.take(largest).select(["cluster", "size", "keeper"]).to_pylist()
        ],
    }
    write_json_atomic(work / "clusters.json", summary)
    return summary


def load_assignment(work_dir: str | Path, rank: int) -> dict[int, tuple[int, int, str, bool]]:
    """uid -> (cluster, size, keeper id, is_keeper) of the clustered documents of task `rank`."""
    table = pq.read_table(task_file(Path(work_dir) / "assignment", rank))
    columns = [table.column(c).to_pylist() for c in ("cluster", "size", "keeper", "is_keeper")]
    return dict(zip(table.column("uid").to_pylist(), zip(*columns)))


class DedupFilter(BaseFilter):
    """P5: drops non-keepers ("near_duplicate", details {"keeper": id}); tags kept cluster members
    with `dup_cluster` and `dup_cluster_size`. Documents outside any cluster pass untouched."""

    name = "🫂 near-duplicate filter"

    def __init__(self, work_dir: str | Path, exclusion_writer: RejectWriter | None = None):
        super().__init__(exclusion_writer)
        self.work_dir = str(work_dir)
        self._assignment: dict[int, tuple[int, int, str, bool]] = {}

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        # once per task: the assignment slice of this task only, never the whole corpus's
        self._assignment = load_assignment(self.work_dir, rank)
        yield from super().run(data, rank, world_size)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        entry = self._assignment.get(doc.metadata["uid"])
        if entry is None:
            return True
        cluster, size, keeper, is_keeper = entry
        if is_keeper:
            doc.metadata["dup_cluster"] = cluster
            doc.metadata["dup_cluster_size"] = size
            return True
        doc.metadata["reject_details"] = {"keeper": keeper}
        return False, "near_duplicate"
