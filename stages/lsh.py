"""Pure LSH pieces of P4 (stages/dedup.py runs them): bucket keys, shared buckets, star edges with
verification, connected components.

Verification: a pair is similar when its Jaccard is >= the threshold, judged by the signature
agreement (the estimate) when it is clearly on one side, and by the exact Jaccard of the two
documents' shingle hashes (stored by P1, see stages/minhash.py) when the estimate lies within
VERIFY_SIGMAS standard deviations of the threshold.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from pipeline.config import DedupConfig
from pipeline.docio import task_file
from stages.minhash import lsh_shape, matrix_rows, shingle_sets, verify_threshold

# Half-width of the band around the threshold where the exact Jaccard decides, in standard
# deviations of the estimate (sqrt(t(1 - t) / num_perm), 0.042 at 0.72 and 112 values): an estimate
# outside it is on the true side of the threshold with probability > 1 - 3e-5.
VERIFY_SIGMAS = 4.0
# Pairs per chunk of the (pairs x num_perm) signature comparison.
_PAIR_CHUNK = 1 << 14
# MurmurHash3 fmix64 constants.
_FMIX64_M1 = np.uint64(0xFF51AFD7ED558CCD)
_FMIX64_M2 = np.uint64(0xC4CEB9FE1A85EC53)
_SHIFT33 = np.uint64(33)


def _fmix64(values: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer, in place."""
    values ^= values >> _SHIFT33
    values *= _FMIX64_M1
    values ^= values >> _SHIFT33
    values *= _FMIX64_M2
    values ^= values >> _SHIFT33
    return values


def band_keys(signatures: np.ndarray, bands: int, rows: int, offset: bool = False) -> np.ndarray:
    """(n, bands) uint64 bucket keys, (n, 2 x bands) with `offset`: a chained fmix64 over each
    band's values, seeded by the band.

    Band b holds values b * rows .. b * rows + rows - 1; offset band b (seeded bands + b) the same
    values shifted by rows // 2, the last one wrapping around to the first values. Each step
    h -> fmix64(h ^ v) is a bijection of h for a given v, so two different bands meet only by a
    64-bit accident (~n^2 / 2^65 over the corpus); the band seed keeps equal values in different
    bands apart, so buckets are told apart by their key alone.
    """
    sets = [signatures[:, : bands * rows]]
    if offset and rows > 1:
        sets.append(np.roll(sets[0], -(rows // 2), axis=1))
    keys = np.empty((len(signatures), bands * len(sets)), dtype=np.uint64)
    keys[:] = _fmix64(np.arange(1, keys.shape[1] + 1, dtype=np.uint64))
    for k, values in enumerate(sets):
        part = keys[:, k * bands : (k + 1) * bands]
        for j in range(rows):
            # value j of band b is column b * rows + j
            part ^= values[:, j : bands * rows : rows]
            _fmix64(part)
    return keys


def band_count(config: DedupConfig) -> int:
    """Bucket keys per document: `bands`, twice that with `dedup.offset_bands` (and rows > 1)."""
    bands, rows = lsh_shape(config)
    return bands * (2 if config.offset_bands and rows > 1 else 1)


def shared_mask(key: np.ndarray) -> np.ndarray:
    """Whether each row's bucket key is held by at least one other row."""
    order = np.argsort(key)
    k = key[order]
    same = k[1:] == k[:-1]
    shared = np.zeros(len(order), dtype=bool)
    shared[order[1:][same]] = True
    shared[order[:-1][same]] = True
    return shared


def shared_in_bands(keys: np.ndarray) -> np.ndarray:
    """Flat indices (document * bands + band), ascending, of the (n, bands) keys that another
    document shares. One band at a time (keys of two bands never meet, see `band_keys`), so the
    sort's temporaries are 1/bands of the keys' size: they were the peak of a one-task P4."""
    bands = keys.shape[1]
    found = [np.flatnonzero(shared_mask(np.ascontiguousarray(keys[:, b]))) * bands + b for b in range(bands)]
    return np.sort(np.concatenate(found)) if found else np.empty(0, dtype=np.int64)


def _pair_codes(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    return a.astype(np.int64) * n + b


def bucket_edges(
    key: np.ndarray, doc: np.ndarray, similar: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
) -> np.ndarray:
    """Unique (doc, root) edges, root < doc, linking the members of each bucket (rows of one key).

    Documents are numbered so that a smaller number is a smaller uid. Without `similar` every
    member links to the bucket's smallest document. With it (a vectorized test of document pairs),
    a member links to the smallest document it is similar to, among the bucket's root, failing
    that the members that passed the root (which joins it to the root's cluster, as a pairwise
    test of the bucket would), and failing that the other members that failed it.
    """
    if len(doc) == 0:
        return np.empty((0, 2), dtype=np.int64)
    order = np.lexsort((doc, key))
    key, doc = key[order], doc[order].astype(np.int64)
    starts = np.ones(len(key), dtype=bool)
    starts[1:] = key[1:] != key[:-1]
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)[group]
    # a document met twice in one bucket: two of its own bands collided (a 64-bit accident)
    members = np.flatnonzero(~starts & (doc != doc[first]))
    if similar is None:
        return np.unique(np.stack([doc[members], doc[first[members]]], axis=1), axis=0)
    n = int(doc.max()) + 1
    codes, inverse = np.unique(_pair_codes(doc[members], doc[first[members]], n), return_inverse=True)
    agree = similar(codes // n, codes % n)[inverse]
    pairs = [np.stack([doc[members[agree]], doc[first[members[agree]]]], axis=1)]
    passed, failed = members[agree], members[~agree]
    # Rare (a band collision of dissimilar documents): a short loop per bucket concerned. Rows are
    # sorted by bucket, so each bucket's failures and passes are contiguous runs.
    buckets, lo = np.unique(group[failed], return_index=True)
    hi = np.r_[lo[1:], len(failed)]
    mates_lo, mates_hi = np.searchsorted(group[passed], buckets), np.searchsorted(group[passed], buckets, "right")
    for f_lo, f_hi, m_lo, m_hi in zip(lo.tolist(), hi.tolist(), mates_lo.tolist(), mates_hi.tolist()):
        rest = doc[failed[f_lo:f_hi]]
        mates = doc[passed[m_lo:m_hi]]
        if len(mates):
            close = similar(np.repeat(rest, len(mates)), np.tile(mates, len(rest))).reshape(len(rest), len(mates))
            joined = close.any(axis=1)
            mate = mates[np.argmax(close[joined], axis=1)]  # the smallest similar one (mates ascend)
            pairs.append(np.sort(np.stack([mate, rest[joined]], axis=1), axis=1)[:, ::-1])
            rest = rest[~joined]
        while len(rest) > 1:
            close = similar(rest[1:], np.full(len(rest) - 1, rest[0]))
            pairs.append(np.stack([rest[1:][close], np.full(int(close.sum()), rest[0])], axis=1))
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


@dataclass
class PairVerifier:
    """Whether pairs of documents have Jaccard >= `threshold`: the signature estimate decides
    outside threshold +- `margin`, `exact` (exact Jaccard of pairs of documents) inside it."""

    matrix: np.ndarray  # signatures, one row per document number
    threshold: float
    margin: float
    exact: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    exact_pairs: int = field(default=0, init=False)

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        estimate = np.empty(len(a))
        for lo in range(0, len(a), _PAIR_CHUNK):  # bounds the (pairs x num_perm) comparison
            hi = lo + _PAIR_CHUNK
            estimate[lo:hi] = (self.matrix[a[lo:hi]] == self.matrix[b[lo:hi]]).mean(axis=1)
        similar = estimate >= self.threshold
        unsure = np.flatnonzero(np.abs(estimate - self.threshold) < self.margin)
        if self.exact is not None and len(unsure):
            similar[unsure] = self.exact(a[unsure], b[unsure]) >= self.threshold
            self.exact_pairs += len(unsure)
        return similar


class DocumentShingles:
    """Exact Jaccard of pairs of numbered documents (source task, signature row), from the shingle
    hashes P1 stored beside the signatures: only the documents asked for are read, each once."""

    def __init__(self, signatures_dir: str | Path, source: np.ndarray, row: np.ndarray):
        self.signatures_dir = str(signatures_dir)
        self.source, self.row = source, row
        self._sets: dict[int, np.ndarray] = {}

    def jaccard(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        self._load(np.unique(np.concatenate([a, b])))
        out = np.empty(len(a))
        for i, (x, y) in enumerate(zip(a.tolist(), b.tolist())):
            sx, sy = self._sets[x], self._sets[y]
            inter = len(np.intersect1d(sx, sy, assume_unique=True))
            out[i] = inter / (len(sx) + len(sy) - inter)
        return out

    def _load(self, docs: np.ndarray) -> None:
        missing = np.array([d for d in docs.tolist() if d not in self._sets], dtype=np.int64)
        for source in np.unique(self.source[missing]).tolist():
            mine = missing[self.source[missing] == source]
            path = task_file(self.signatures_dir, source)
            ends = pq.read_table(path, columns=["shingles_end"], use_threads=False).column(0).to_numpy()
            self._sets.update(zip(mine.tolist(), shingle_sets(path, ends, self.row[mine])))


def pair_verifier(config: DedupConfig, signatures_dir: str, source: np.ndarray, row: np.ndarray) -> PairVerifier:
    """The verifier of the numbered documents (source task, signature row): their signatures read
    by row from P1's matrices, their shingle hashes only if a pair is uncertain."""
    matrix = np.empty((len(source), math.prod(lsh_shape(config))), dtype=np.uint32)
    for s in np.unique(source).tolist():
        mine = np.flatnonzero(source == s)
        matrix[mine] = matrix_rows(task_file(signatures_dir, s), row[mine])
    threshold = verify_threshold(config)
    margin = VERIFY_SIGMAS * math.sqrt(threshold * (1 - threshold) / matrix.shape[1])
    exact = DocumentShingles(signatures_dir, source, row).jaccard
    return PairVerifier(matrix, threshold, margin, exact)
