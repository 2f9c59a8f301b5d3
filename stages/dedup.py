"""Exact, URL and near-duplicate decisions (P4) and the removal of every duplicate (P5).

Exact and URL dedup (stages/exact_dedup.py) run first, on the keys P1 stored and the quality of
the P3 documents; LSH then sees only what they kept. P5 drops all three kinds in one pass
(`DedupFilter`): no phase copies the documents for dedup's sake.

P4 runs as datatrove steps and one global step, all under `work_dir` (RUN/work/p4_dedup). Each
P1 task r left a signature file (uid, id) and its raw matrix (signatures/<r>.npy); they are never
recomputed here. Only documents still present in the P3 documents take part, so a document dropped
after P1 can never be chosen as a keeper. Every band of every signature is hashed to a 64-bit
bucket key (`band_keys`); the members of a bucket are linked to the bucket's smallest uid: a star,
k - 1 edges instead of k(k-1)/2 pairs.

- Few tasks (<= FUSED_MAX_TASKS): one step, `LshStep`, one task, holds every document's bucket
  keys (8 B a band: 224 B/doc for 14 bands and their offset bands) and nothing else: two executor
  runs and a Parquet shuffle of one row per band and document cost more than the work itself below
  a few hundred thousand documents (see bench_dedup.py).
- More tasks: P4 never holds the whole index in one worker. `LshBucketStep`, one task per
  signature file r, writes buckets/<r>.parquet, rows (part, key, uid, source, row) sorted by
  partition part = key mod P, one row group per partition; `LshCandidateStep`, one task per
  partition p, reads partition p of every bucket file (row-group pruning) and links its buckets.
Both write members/<r>.parquet (uid, id, quality, signed, and the exact and URL keys: what the
keeper choices need, without reading the texts again) and edges/<p>.parquet; exact and URL
duplicates are found over all members in one task (in `LshStep`, or `DuplicateKeysStep` between
the bucket and candidate steps) and leave LSH; the same buckets give the same edges in either
layout. `assign_clusters` then takes connected components over the edges (only documents that have
a duplicate appear in them), picks one keeper per cluster and writes assignment/<r>.parquet (uid,
cluster, size, keeper, is_keeper) per task, so a P5 task loads only its own slice.

Verification (`dedup.verify`, default on): a band collision alone also links pairs well below the
threshold (14 x 8: one pair in 16 at Jaccard 0.5, one in 4 at 0.6), and a star turns each false
link into a merge of whole clusters. A pair is kept when its Jaccard is >= the threshold: judged by
the signature agreement (the estimate) when it is clearly on one side, and by the exact Jaccard of
the two documents' shingle hashes (stored by P1) when the estimate lies within VERIFY_SIGMAS
standard deviations of the threshold, where a 112-value estimate falls on the wrong side of it for
up to 1 pair in 3 (e.g. true 0.74, estimated 0.71): on held-out real near-duplicates, this is what
kept recall below 0.99. Only candidate documents' signatures are read (one positioned read each,
from P1's matrix), and only the shingles of the uncertain pairs' documents (a few hundred on the
real corpus). A member that fails against the bucket's root is compared with the bucket's other
failures (smallest uid first), so two similar members of a bucket whose root is a false hit stay
linked.

Keeper: the highest `quality`; a document without `quality` ranks below any with one; ties go to
the smallest id, then the smallest uid (ids may repeat in real data), so the choice never depends
on task order or worker count. Documents with no word (no signature) are never clustered.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
import pyarrow.parquet as pq
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from pipeline.config import DedupConfig
from pipeline.docio import RejectWriter, task_file, write_json_atomic
from stages.exact_dedup import (
    EXACT_STAGE,
    KEY_SCHEMA,
    P1_KEY_SCHEMA,
    URL_STAGE,
    find_duplicates,
    load_removed,
    removed_file,
    removed_uids,
)
from stages.lsh import (
    band_count,
    band_keys,
    bucket_edges,
    connected_components,
    pair_verifier,
    shared_in_bands,
    shared_mask,
)
from stages.minhash import keys_file, lsh_shape, matrix_chunks, write_table_atomic

BUCKET_SCHEMA = pa.schema(
    [
        ("part", pa.int32()),
        ("key", pa.uint64()),
        ("uid", pa.int64()),
        ("source", pa.int32()),
        ("row", pa.int32()),
    ]
)
# What the keeper choices need, without reading the texts again: the near-dedup rule's uid, id and
# quality, whether the document has a signature, and the exact and URL dedup keys (null when off).
MEMBER_SCHEMA = pa.schema(
    [("uid", pa.int64()), ("id", pa.string()), ("quality", pa.float64()), ("signed", pa.bool_())]
    + [field for field in P1_KEY_SCHEMA if field.name != "uid"]
)
# Rejected stage and reason of the documents P5 drops; exact and URL dedup keep their results under work/exact.
NEAR_STAGE = "dedup"
EXACT_DIR = "exact"
REASONS = {EXACT_STAGE: "exact_duplicate", URL_STAGE: "url_duplicate", NEAR_STAGE: "near_duplicate"}
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
# Up to this many tasks P4 is one task (LshStep): at 32 MB of text per shard, a few hundred
# thousand documents, whose keys (112 B/doc) one worker holds easily.
FUSED_MAX_TASKS = 8
# Signature rows per chunk when computing bucket keys (112 x 4 B x 2048 = 0.9 MB).
_KEY_CHUNK_ROWS = 2048


def _members_of(documents_file: Path) -> pa.Table:
    """(uid, id, quality) of the P3 documents of one task, from their metadata only.

    Arrow's JSON reader parses the metadata strings (one JSON object per line: json.dumps escapes
    newlines) about 4x faster than json.loads per document (measured), reading top-level keys only.
    Batch by batch, and on one thread (the engine gives a task one CPU): reading whole columns at
    once held 2x the memory of the result in arrow's allocator.
    """
    parts = [MEMBER_SCHEMA.empty_table().select(["uid", "id", "quality"])]
    for batch in pq.ParquetFile(documents_file).iter_batches(columns=["id", "metadata"], use_threads=False):
        lines = "\n".join(batch.column("metadata").to_pylist()).encode()
        parsed = pa_json.read_json(pa.BufferReader(lines), read_options=_ONE_THREAD, parse_options=_METADATA_PARSE)
        columns = {"uid": parsed.column("uid"), "id": batch.column("id"), "quality": parsed.column("quality")}
        parts.append(pa.table(columns, schema=parts[0].schema))
    return pa.concat_tables(parts).combine_chunks()


def _task_members(signatures_dir: str, documents_dir: str, work: Path, rank: int, keys: bool) -> pa.Table:
    """Writes and returns members/<rank>.parquet: the task's P3 documents, whether each has a
    signature, and (with `keys`) the exact and URL dedup keys P1 stored for them, joined by uid."""
    members = _members_of(task_file(documents_dir, rank))
    uids = members.column("uid").to_numpy()
    path = task_file(signatures_dir, rank)
    signed = np.isin(uids, pq.read_table(path, columns=["uid"], use_threads=False).column(0).to_numpy())
    members = members.append_column("signed", pa.array(signed))
    key_table = pq.read_table(keys_file(path), use_threads=False) if keys else None
    if key_table is not None:  # every P3 document is a P1 document: each uid is found
        key_uids = key_table.column("uid").to_numpy()
        order = np.argsort(key_uids, kind="stable")
        key_table = key_table.take(pa.array(order[np.searchsorted(key_uids, uids, sorter=order)]))
    for name in MEMBER_SCHEMA.names[len(members.schema) :]:
        nulls = pa.nulls(len(uids), MEMBER_SCHEMA.field(name).type)
        members = members.append_column(name, key_table.column(name) if key_table is not None else nulls)
    members = members.cast(MEMBER_SCHEMA)
    write_table_atomic(members, task_file(work / "members", rank))
    return members


@dataclass(frozen=True)
class _TaskDocuments:
    """The documents of one task that LSH takes: in P3, with a signature, not removed by exact or
    URL dedup. Their uids and signature rows."""

    uid: np.ndarray
    row: np.ndarray


def _task_documents(signatures_dir: str, rank: int, members: pa.Table, removed: np.ndarray) -> _TaskDocuments:
    sig_uids = pq.read_table(task_file(signatures_dir, rank), columns=["uid"], use_threads=False).column(0).to_numpy()
    uids = members.column("uid").to_numpy()
    # signatures of documents dropped after P1 (not in P3) or by exact and URL dedup take no part
    present = np.flatnonzero(np.isin(sig_uids, uids[~np.isin(uids, removed)]))
    return _TaskDocuments(sig_uids[present], present.astype(np.int32))


def write_duplicates(work: Path, members: list[pa.Table], exact: bool, url: bool) -> list[np.ndarray]:
    """Exact then URL duplicates over every task's members: exact/removed/<r>.parquet per task and
    exact/summary.json; returns the removed uids of each task."""
    keys = pa.concat_tables(
        [KEY_SCHEMA.append(pa.field("task", pa.int32())).empty_table()]
        + [
            m.select(KEY_SCHEMA.names).append_column("task", pa.array(np.full(m.num_rows, r, dtype=np.int32)))
            for r, m in enumerate(members)
        ]
    )
    removed, summary = find_duplicates(keys, exact, url)
    tasks = removed.column("task").to_numpy()
    out = []
    for r in range(len(members)):
        lo, hi = np.searchsorted(tasks, [r, r + 1])
        mine = removed.slice(lo, hi - lo)
        write_table_atomic(mine, removed_file(work / EXACT_DIR, r))
        out.append(mine.column("uid").to_numpy())
    write_json_atomic(work / EXACT_DIR / "summary.json", summary)
    return out


def _task_keys(signatures_dir: str, rank: int, rows: np.ndarray, config: DedupConfig) -> np.ndarray:
    """(len(rows), band_count) bucket keys of the given (ascending) rows of signature file `rank`."""
    bands, band_rows = lsh_shape(config)
    keys = np.empty((len(rows), band_count(config)), dtype=np.uint64)
    lo = 0
    for chunk in matrix_chunks(task_file(signatures_dir, rank), _KEY_CHUNK_ROWS):
        i, j = np.searchsorted(rows, [lo, lo + len(chunk)])
        keys[i:j] = band_keys(chunk[rows[i:j] - lo], bands, band_rows, config.offset_bands)
        lo += len(chunk)
    return keys


def _edge_table(
    config: DedupConfig, signatures_dir: str, key: np.ndarray, uid: np.ndarray, source: np.ndarray, row: np.ndarray
) -> tuple[pa.Table, int]:
    """(verified edges, pairs decided by exact Jaccard) of the bucket rows given (key, uid, source
    task, signature row), all rows of each bucket they touch included."""
    shared = np.flatnonzero(shared_mask(key))
    uids, first, number = np.unique(uid[shared], return_index=True, return_inverse=True)
    verifier = None
    if config.verify:
        located = shared[first]
        verifier = pair_verifier(config, signatures_dir, source[located], row[located])
    pairs = uids[bucket_edges(key[shared], number, verifier)]
    table = pa.table({"uid": pairs[:, 0], "root": pairs[:, 1]}, schema=EDGE_SCHEMA)
    return table, verifier.exact_pairs if verifier else 0


class _LshBase(PipelineStep):
    type = "🫂 - DEDUP"

    def __init__(
        self,
        signatures_dir: str | Path,
        documents_dir: str | Path,
        work_dir: str | Path,
        config: DedupConfig,
        sources: int,
    ):
        super().__init__()
        self.signatures_dir = str(signatures_dir)
        self.documents_dir = str(documents_dir)
        self.work_dir = str(work_dir)
        self.config = config
        self.sources = sources

    @property
    def exact_or_url(self) -> bool:
        return self.config.exact or self.config.url

    def _members(self, rank: int) -> pa.Table:
        return _task_members(self.signatures_dir, self.documents_dir, Path(self.work_dir), rank, self.exact_or_url)

    def _write_edges(self, rank: int, *rows: np.ndarray) -> None:
        edges, exact = _edge_table(self.config, self.signatures_dir, *rows)
        write_table_atomic(edges, task_file(Path(self.work_dir) / "edges", rank))
        self.stat_update("bucket_rows_shared", value=len(rows[0]))
        self.stat_update("edges", value=edges.num_rows)
        self.stat_update("exact_pairs", value=exact)


class LshStep(_LshBase):
    """P4 in one task: every task's members, exact and URL duplicates among them, the bucket keys of
    the rest, then the (verified) edges of all buckets."""

    name = "🪣 LSH"

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        bands = band_count(self.config)
        with self.track_time():
            members = [self._members(source) for source in range(self.sources)]
            if self.exact_or_url:
                removed = write_duplicates(Path(self.work_dir), members, self.config.exact, self.config.url)
            else:
                removed = [np.empty(0, dtype=np.int64)] * self.sources
            keys, tasks = [], []
            for source in range(self.sources):
                task = _task_documents(self.signatures_dir, source, members[source], removed[source])
                keys.append(_task_keys(self.signatures_dir, source, task.row, self.config))
                tasks.append(task)
            del members
            # what arrow's allocator keeps from reading the documents is not needed any more
            pa.default_memory_pool().release_unused()
            key = np.concatenate(keys).reshape(-1, bands)
            shared = shared_in_bands(key)
            # the attributes of a key's document, indexed by key row // bands
            uid, row = (np.concatenate([getattr(t, a) for t in tasks]) for a in ("uid", "row"))
            source = np.repeat(np.arange(self.sources, dtype=np.int32), [len(t.uid) for t in tasks])
            d = shared // bands
            self._write_edges(0, key.ravel()[shared], uid[d], source[d], row[d])
        self.stat_update("signed", value=len(uid))
        yield from ()


class LshBucketStep(_LshBase):
    """P4 task r (many tasks): task r's members, and the bucket rows of its signed documents,
    partitioned by key (documents that exact or URL dedup will remove included: `LshCandidateStep`
    leaves them out)."""

    name = "🪣 LSH buckets"

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        bands = band_count(self.config)
        with self.track_time():
            task = _task_documents(self.signatures_dir, rank, self._members(rank), np.empty(0, dtype=np.int64))
            keys = _task_keys(self.signatures_dir, rank, task.row, self.config).ravel()
            part = (keys % np.uint64(self.sources)).astype(np.int32)
            order = np.argsort(part, kind="stable")
            d = order // bands
            table = pa.table(
                {
                    "part": part[order],
                    "key": keys[order],
                    "uid": task.uid[d],
                    "source": np.full(len(order), rank, dtype=np.int32),
                    "row": task.row[d],
                },
                schema=BUCKET_SCHEMA,
            )
            # one row group per partition at most: a candidate task reads only its own
            bounds = np.searchsorted(table.column("part").to_numpy(), np.arange(self.sources + 1))
            path = task_file(Path(self.work_dir) / "buckets", rank)
            tmp = path.with_name(f".{path.name}.tmp")
            path.parent.mkdir(parents=True, exist_ok=True)
            with pq.ParquetWriter(tmp, BUCKET_SCHEMA, compression="zstd") as writer:
                for lo, hi in zip(bounds[:-1], bounds[1:]):
                    if hi > lo:
                        writer.write_table(table.slice(lo, hi - lo), row_group_size=hi - lo)
                if table.num_rows == 0:
                    writer.write_table(table)
            tmp.replace(path)
        self.stat_update("signed", value=len(task.uid))
        yield from ()


class DuplicateKeysStep(_LshBase):
    """P4, one task between the bucket and candidate steps (many tasks): exact then URL duplicates
    over the members of every task (keys only: ~50 bytes a document)."""

    name = "🫂 exact + url duplicates"

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        work = Path(self.work_dir)
        with self.track_time():
            members = [pq.read_table(task_file(work / "members", r)) for r in range(self.sources)]
            removed = write_duplicates(work, members, self.config.exact, self.config.url)
        self.stat_update("removed", value=sum(map(len, removed)))
        yield from ()


class LshCandidateStep(_LshBase):
    """P4 task p (many tasks): the (verified) edges of partition p of every bucket file, without the
    documents exact and URL dedup removed."""

    name = "🔗 LSH candidates"

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        columns = ["key", "uid", "source", "row"]
        work = Path(self.work_dir)
        with self.track_time():
            rows = pa.concat_tables(
                [BUCKET_SCHEMA.empty_table().select(columns)]
                + [
                    pq.read_table(task_file(work / "buckets", s), columns=columns, filters=[("part", "=", rank)])
                    for s in range(self.sources)
                ]
            )
            removed = np.concatenate([removed_uids(work / EXACT_DIR, s) for s in range(self.sources)])
            if len(removed):
                rows = rows.filter(pa.array(~np.isin(rows.column("uid").to_numpy(), removed)))
            self._write_edges(rank, *(rows.column(c).to_numpy() for c in columns))
        yield from ()


def lsh_partitions(tasks: int) -> int:
    """Edge files P4 writes for `tasks` P1 tasks: one when it runs as one task, else one per task."""
    return 1 if tasks <= FUSED_MAX_TASKS else tasks


def lsh_step_lists(
    signatures_dir: str | Path, documents_dir: str | Path, work_dir: str | Path, config: DedupConfig, tasks: int
) -> list[tuple[str, list[PipelineStep], int]]:
    """P4's datatrove step lists, (name, steps, task count), each run for its ranks in order;
    `assign_clusters(work_dir, tasks)` then takes over. Many tasks: as many partitions as P1
    tasks, so a partition stays about the size of one task's bucket rows."""
    args = (signatures_dir, documents_dir, work_dir, config, tasks)
    if lsh_partitions(tasks) == 1:
        return [("lsh", [LshStep(*args)], 1)]
    duplicates = [("duplicates", [DuplicateKeysStep(*args)], 1)] if config.exact or config.url else []
    return [("buckets", [LshBucketStep(*args)], tasks), *duplicates, ("candidates", [LshCandidateStep(*args)], tasks)]


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


def assign_clusters(work_dir: str | Path, sources: int) -> dict[str, Any]:
    """The global step of P4 after `sources` P1 tasks: components of the edges, one keeper per
    cluster, the assignment files (one per task) and the summary, also saved as clusters.json for
    the dedup report."""
    work = Path(work_dir)
    edge_files = [task_file(work / "edges", p) for p in range(lsh_partitions(sources))]
    edges = pa.concat_tables([EDGE_SCHEMA.empty_table()] + [pq.read_table(path) for path in edge_files])
    nodes, labels = connected_components(edges.column("uid").to_numpy(), edges.column("root").to_numpy())
    documents = without_signature = 0
    clustered = [MEMBER_SCHEMA.append(pa.field("task", pa.int32())).empty_table()]
    for task in range(sources):
        members = pq.read_table(task_file(work / "members", task))
        removed = removed_uids(work / EXACT_DIR, task)
        if len(removed):  # MinHash sees only what exact and URL dedup kept
            members = members.filter(pa.array(~np.isin(members.column("uid").to_numpy(), removed)))
        documents += members.num_rows
        without_signature += members.num_rows - (pc.sum(members.column("signed")).as_py() or 0)
        mask = np.isin(members.column("uid").to_numpy(), nodes)
        task_column = pa.array(np.full(int(mask.sum()), task, dtype=np.int32))
        clustered.append(members.filter(mask).append_column("task", task_column))
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


class DedupFilter(PipelineStep):
    """P5: drops the documents exact, URL and near-dedup removed, each into its stage's rejected/
    folder (`writers`, keyed by EXACT_STAGE, URL_STAGE and NEAR_STAGE) with reason exact_duplicate,
    url_duplicate or near_duplicate and details {"keeper": id}; tags kept cluster members with
    `dup_cluster` and `dup_cluster_size`. Other documents pass untouched.

    One lookup per document and one stats update per task: datatrove's BaseFilter updates its
    stats per document, which cost more than the lookups on the real corpus (measured)."""

    name = "🫂 dedup filter"
    type = "🔻 - FILTER"

    def __init__(self, work_dir: str | Path, writers: Mapping[str, RejectWriter]):
        super().__init__()
        self.work_dir = str(work_dir)
        self.writers = dict(writers)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        # once per task: the slices of this task only, never the whole corpus's
        removed = load_removed(Path(self.work_dir) / EXACT_DIR, rank)
        assignment = load_assignment(self.work_dir, rank)
        counts: Counter[str] = Counter()
        with ExitStack() as stack:
            for writer in self.writers.values():
                stack.enter_context(writer)
            for doc in data:
                uid = doc.metadata["uid"]
                verdict = removed.get(uid)
                if verdict is None and (entry := assignment.get(uid)) is not None:
                    cluster, size, keeper, is_keeper = entry
                    if is_keeper:
                        doc.metadata["dup_cluster"] = cluster
                        doc.metadata["dup_cluster_size"] = size
                    else:
                        verdict = NEAR_STAGE, keeper
                writer = None if verdict is None else self.writers.get(verdict[0])
                if writer is None:
                    counts["forwarded"] += 1
                    yield doc
                    continue
                stage, keeper = verdict
                doc.metadata["filter_reason"] = REASONS[stage]
                doc.metadata["reject_details"] = {"keeper": keeper}
                writer.write(doc, rank)
                counts[f"dropped_{REASONS[stage]}"] += 1
        for key, value in counts.items():
            self.stat_update(key, value=value)
