"""MinHash signatures of documents (phase P1): normalized word n-gram shingles, exact MinHash values.

Shingles. Text is lowercased, punctuation is stripped and whitespace collapsed; a shingle is a run
of `ngram` consecutive words. A document with fewer words than `ngram` (but at least one) has one
shingle, its whole normalized text, so short near-copies still match each other. A document with
no word left after normalization (empty, whitespace or punctuation only) has no signature and never
joins a cluster.

Shingle hash. Each word's UTF-8 bytes are hashed once with xxh3-64; the 32-bit hash of a shingle is
the top half of the polynomial sum_k h(word_k) * P^(len-1-k) mod 2^64. It is a hash of the shingle
bytes (`shingle_hash` computes it from them), but one Python call per word instead of one join,
encode and hash per shingle makes shingling about 3x faster, which bounds the whole step.

MinHash. The scheme is datasketch's default since 2.0 ("affine32"): the 32-bit shingle hash is
pre-mixed by the MurmurHash3 finalizer and permuted by h -> a*h + b mod 2^32 with odd `a`, drawn
from `np.random.RandomState(seed)` exactly as datasketch draws them, so `datasketch.MinHash(
num_perm, seed, hashfunc=shingle_hash)` gives the same values (tests/test_dedup.py). The products
are computed in uint32, whose wraparound *is* the modulus 2^32: unlike the legacy scheme
(a*h + b) % (2^61 - 1), no product is truncated before its intended modulo, which is the uint64
overflow of datatrove issue #198. Odd `a` makes each permutation a bijection, so it adds no hash
collisions (datasketch issue #212).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from pipeline.config import DedupConfig
from pipeline.docio import task_file
from stages.exact_dedup import P1_KEY_SCHEMA, keys_table

_PUNCTUATION = re.compile(r"[^\w\s]+")
# Odd 64-bit multiplier of the shingle polynomial (the golden-ratio constant, as in splitmix64).
_SHINGLE_BASE = np.uint64(0x9E3779B97F4A7C15)
# MurmurHash3 fmix32 constants, the pre-mix of datasketch's affine32 scheme.
_FMIX_M1 = np.uint32(0x85EBCA6B)
_FMIX_M2 = np.uint32(0xC2B2AE35)
# Shingles per block of the (permutations x shingles) matrix: 112 x 8192 x 4 B = 3.7 MB stays in
# cache. Measured on the real corpus: 2048 is 30% slower (per-block overhead), 32768 60% slower.
_BLOCK_SHINGLES = 8192


# ASCII fast path of `words`: bytes.translate deletes what the regex strips (ASCII that is neither
# \w nor \s, e.g. "_" stays) and maps the separators str.split knows but bytes.split does not
# (\x1c-\x1f) to spaces. 2.3x faster than the regex on the real corpus, same words (tested).
_ASCII_DELETE = bytes(c for c in range(128) if not re.match(r"[\w\s]", chr(c)))
_ASCII_TABLE = bytes.maketrans(b"\x1c\x1d\x1e\x1f", b"    ")


_NON_ASCII = re.compile(r"[^\x00-\x7f]")
# Non-ASCII character -> what normalization makes of it: "" (punctuation), " " (whitespace) or
# itself (a word character). Filled as characters are met: a corpus uses few distinct ones.
_NON_ASCII_MAP: dict[str, str] = {}


def _non_ascii(char: str) -> str:
    if char not in _NON_ASCII_MAP:
        _NON_ASCII_MAP[char] = " " if char.isspace() else char if _PUNCTUATION.match(char) is None else ""
    return _NON_ASCII_MAP[char]


def words(text: str) -> list[bytes]:
    """UTF-8 words of the normalized text: lowercased, punctuation stripped ("Don't!" -> b"dont").

    The same words as `_PUNCTUATION.sub("", text.lower()).split()`, encoded (tested). Text with
    non-ASCII characters (37% of the real corpus's bytes, 0.8% of its characters) replaces each
    distinct one first, then takes the ASCII path: 2x faster than the regex over the whole text.
    """
    text = text.lower()
    if not text.isascii():
        for char in set(_NON_ASCII.findall(text)):
            if (replacement := _non_ascii(char)) != char:
                text = text.replace(char, replacement)
    return text.encode().translate(_ASCII_TABLE, _ASCII_DELETE).split()


def shingles(text: str, ngram: int) -> list[bytes]:
    """The shingles of `text` (words joined by one space); the reference for interop and tests."""
    tokens = words(text)
    if not tokens:
        return []
    width = min(ngram, len(tokens))
    return [b" ".join(tokens[i : i + width]) for i in range(len(tokens) - width + 1)]


def _combine(word_hashes: np.ndarray, width: int) -> np.ndarray:
    """32-bit hash of every window of `width` consecutive word hashes (the polynomial above)."""
    count = len(word_hashes) - width + 1
    acc = word_hashes[:count].copy()
    for k in range(1, width):
        acc *= _SHINGLE_BASE
        acc += word_hashes[k : k + count]
    return (acc >> np.uint64(32)).astype(np.uint32)


def shingle_hash(shingle: bytes) -> int:
    """The 32-bit hash of one shingle given as bytes (as `shingles` returns it); a datasketch `hashfunc`."""
    words = np.array([xxhash.xxh3_64_intdigest(w) for w in shingle.split(b" ")], dtype=np.uint64)
    return int(_combine(words, len(words))[0])


def batch_shingle_hashes(texts: Sequence[str], ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint32 hashes of the shingles of all `texts`, concatenated in order; shingles per text).

    One numpy pass over the whole batch's words instead of one per document: the per-call overhead
    of ~10 small numpy operations per document was half the shingling time on the real corpus.
    """
    tokens = [words(text) for text in texts]
    counts = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
    every_word = chain.from_iterable(tokens)
    hashes = np.fromiter(map(xxhash.xxh3_64_intdigest, every_word), dtype=np.uint64, count=int(counts.sum()))
    sizes = np.where(counts >= ngram, counts - ngram + 1, np.minimum(counts, 1))
    out = np.empty(int(sizes.sum()), dtype=np.uint32)
    word_start, out_start = np.cumsum(counts) - counts, np.cumsum(sizes) - sizes
    long = counts >= ngram
    if long.any():
        # every window of the concatenation, then only those that start and end in one document
        windows = _combine(hashes, ngram)
        per = sizes[long]
        within = np.arange(int(per.sum())) - np.repeat(np.cumsum(per) - per, per)
        out[np.repeat(out_start[long], per) + within] = windows[np.repeat(word_start[long], per) + within]
    for doc in np.flatnonzero((counts > 0) & ~long):  # fewer words than the n-gram: one shingle of them all
        start, count = int(word_start[doc]), int(counts[doc])
        out[out_start[doc]] = _combine(hashes[start : start + count], count)[0]
    return out, sizes


def shingle_hashes(text: str, ngram: int) -> np.ndarray:
    """uint32 hashes of the shingles of `text`, in order (empty when it has no word)."""
    return batch_shingle_hashes([text], ngram)[0]


def fmix32(values: np.ndarray) -> np.ndarray:
    """MurmurHash3's finalizer on uint32 (a bijection that spreads weak or structured hashes)."""
    values = values ^ (values >> np.uint32(16))
    values *= _FMIX_M1
    values ^= values >> np.uint32(13)
    values *= _FMIX_M2
    return values ^ (values >> np.uint32(16))


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) of the affine permutations, drawn in datasketch's order so the values interoperate."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


@dataclass(frozen=True)
class MinHasher:
    """Signatures of `num_perm` = bands x rows values per document."""

    ngram: int
    num_perm: int
    seed: int
    _a: np.ndarray = field(init=False, repr=False, compare=False)
    _b: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        a, b = permutations(self.num_perm, self.seed)
        object.__setattr__(self, "_a", a)
        object.__setattr__(self, "_b", b)

    @classmethod
    def from_config(cls, config: DedupConfig) -> MinHasher:
        bands, rows = lsh_shape(config)
        return cls(ngram=config.ngram, num_perm=bands * rows, seed=config.seed)

    def signatures_of_hashes(self, hash_sets: Sequence[np.ndarray]) -> np.ndarray:
        """(len(hash_sets), num_perm) uint32 MinHash values; every set must be non-empty."""
        sizes = np.fromiter(map(len, hash_sets), dtype=np.int64, count=len(hash_sets))
        flat = np.concatenate(hash_sets) if len(hash_sets) else np.empty(0, dtype=np.uint32)
        return self._minhash(flat, sizes)

    def _minhash(self, flat: np.ndarray, sizes: np.ndarray) -> np.ndarray:
        """MinHash values of the consecutive shingle sets of `sizes` elements each in `flat`.

        All shingles of a block of documents go through one (shingles x permutations) product, then
        `np.minimum.reduceat` takes each document's minima.
        """
        if (sizes == 0).any():
            raise ValueError("every shingle set must be non-empty: a document without words has no signature")
        out = np.empty((self.num_perm, len(sizes)), dtype=np.uint32)
        a, b = self._a[:, None], self._b[:, None]
        ends = np.cumsum(sizes)
        start = 0
        while start < len(sizes):
            # Whole documents per block (at least one), about _BLOCK_SHINGLES shingles in all.
            done = ends[start - 1] if start else 0
            stop = max(start + 1, int(np.searchsorted(ends, done + _BLOCK_SHINGLES, side="right")))
            block = fmix32(flat[done : ends[stop - 1]])
            # Permutations x shingles: reduceat along the contiguous axis runs 2.5x faster than
            # along axis 0 (measured, 112 x 8192).
            product = a * block
            product += b
            offsets = ends[start:stop] - sizes[start:stop] - done
            out[:, start:stop] = np.minimum.reduceat(product, offsets, axis=1)
            start = stop
        return np.ascontiguousarray(out.T)

    def signatures(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(signatures of the texts that have words, boolean mask of those texts)."""
        signatures, mask, _, _ = self.signatures_and_shingles(texts)
        return signatures, mask

    def signatures_and_shingles(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(signatures of the texts that have words, boolean mask of those texts, the shingle
        hashes of those texts concatenated in order, and how many each has)."""
        flat, sizes = batch_shingle_hashes(texts, self.ngram)
        mask = sizes > 0
        return self._minhash(flat, sizes[mask]), mask, flat, sizes[mask]


def candidate_probability(similarity: float, bands: int, rows: int, offset: bool = False) -> float:
    """The LSH S-curve: P(two documents of Jaccard `similarity` share at least one band), also with
    the offset bands (stages/lsh.py `band_keys`).

    With them, the values form a cycle of 2 x bands segments, alternately of rows // 2 and
    rows - rows // 2 values, and every two consecutive segments are a band: a pair is a candidate
    unless no two consecutive segments agree entirely. Segments agree independently (probability
    similarity^length), so a 2-state transfer matrix (did the previous segment agree?) around the
    cycle counts the rest exactly.
    """
    if not offset or rows < 2:
        return 1.0 - (1.0 - similarity**rows) ** bands
    period = np.eye(2)
    for length in (rows // 2, rows - rows // 2):
        agree = similarity**length
        period = period @ np.array([[1.0 - agree, agree], [1.0 - agree, 0.0]])
    return float(1.0 - np.trace(np.linalg.matrix_power(period, bands)))


def lsh_threshold(bands: int, rows: int) -> float:
    """Similarity at the S-curve's steepest point, about (1/bands)^(1/rows): 0.72 for 14 x 8."""
    return (1.0 / bands) ** (1.0 / rows)


def bands_rows_for_threshold(threshold: float, num_perm: int = 112) -> tuple[int, int]:
    """(bands, rows) with bands x rows <= num_perm minimizing the false positive plus false negative
    area under the S-curve around `threshold` (equal weights), as datasketch's MinHashLSH does."""
    grid = np.linspace(0.0, 1.0, 1001)
    best: tuple[float, int, int] | None = None
    for rows in range(1, num_perm + 1):
        for bands in range(1, num_perm // rows + 1):
            curve = 1.0 - (1.0 - grid**rows) ** bands
            error = np.trapezoid(np.where(grid < threshold, curve, 1.0 - curve), grid)
            if best is None or error < best[0]:
                best = (float(error), bands, rows)
    assert best is not None
    return best[1], best[2]


def lsh_shape(config: DedupConfig) -> tuple[int, int]:
    """(bands, rows): derived from `dedup.threshold` when set, else `dedup.bands` x `dedup.rows`."""
    if config.threshold is None:
        return config.bands, config.rows
    return bands_rows_for_threshold(config.threshold, config.bands * config.rows)


def verify_threshold(config: DedupConfig) -> float:
    """Estimated Jaccard a candidate pair needs when `dedup.verify` is on."""
    if config.threshold is not None:
        return config.threshold
    return lsh_threshold(*lsh_shape(config))


def write_table_atomic(table: pa.Table, path: str | Path, row_group_size: int | None = None) -> None:
    """Write a whole table through a temporary name so readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp, compression="zstd", row_group_size=row_group_size)
    os.replace(tmp, path)


def matrix_file(path: str | Path) -> Path:
    """The raw signature matrix beside a signature file: `<rank>.npy` next to `<rank>.parquet`."""
    return Path(path).with_suffix(".npy")


def shingles_file(path: str | Path) -> Path:
    """The shingle hashes beside a signature file: raw uint32, document after document."""
    return Path(path).with_suffix(".shingles")


def keys_file(path: str | Path) -> Path:
    """The exact and URL dedup keys of a signature file's task, every document's (with or without a
    signature): `keys/<rank>.parquet` beside `<rank>.parquet` (stages/exact_dedup.py)."""
    path = Path(path)
    return path.parent / "keys" / path.name


def write_signatures(
    path: str | Path,
    uids: np.ndarray,
    ids: list[str],
    matrix: np.ndarray,
    shingle_ends: np.ndarray,
    shingles_tmp: Path | None,
) -> None:
    """A signature file (uid, id, shingles_end), its matrix and its shingle hashes (already
    written to `shingles_tmp`, None when `dedup.verify` is off: nothing reads them then). The
    Parquet file, written last, marks a complete set.

    The matrix is a plain .npy, so that P4 reads chunks or single rows without Parquet decoding.
    The shingle hashes (4 B a word) let P4 verify a pair near the threshold exactly without reading
    texts back from Parquet, which holds ~5x a row group's text in memory (measured: 40 MB for an
    8 MB row group, the peak of P4)."""
    target = matrix_file(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    with tmp.open("wb") as fh:
        np.save(fh, np.ascontiguousarray(matrix, dtype=np.uint32))
    os.replace(tmp, target)
    if shingles_tmp is not None:
        os.replace(shingles_tmp, shingles_file(path))
    table = pa.table(
        {
            "uid": pa.array(uids, pa.int64()),
            "id": pa.array(ids, pa.string()),
            "shingles_end": pa.array(shingle_ends, pa.int64()),
        }
    )
    write_table_atomic(table, path)


def read_signatures(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(uids int64, signatures (n, num_perm) uint32) of one signature file."""
    uids = pq.read_table(path, columns=["uid"]).column("uid").to_numpy()
    return uids, np.load(matrix_file(path))


def shingle_sets(path: str | Path, ends: np.ndarray, rows: np.ndarray) -> list[np.ndarray]:
    """The sorted distinct shingle hashes of the given rows of a signature file, `ends` being its
    `shingles_end` column; one positioned read each."""
    out = []
    with shingles_file(path).open("rb") as fh:
        for row in rows.tolist():
            start = int(ends[row - 1]) if row else 0
            data = os.pread(fh.fileno(), (int(ends[row]) - start) * 4, start * 4)
            out.append(np.unique(np.frombuffer(data, dtype=np.uint32)))
    return out


def _matrix_layout(fh: BinaryIO) -> tuple[int, int, int]:
    """(rows, columns, byte offset of row 0) of an open .npy signature matrix."""
    read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    shape, _, _ = read_header[np.lib.format.read_magic(fh)](fh)
    return shape[0], shape[1], fh.tell()


def matrix_chunks(path: str | Path, chunk_rows: int) -> Iterator[np.ndarray]:
    """The matrix of a signature file, `chunk_rows` rows at a time, read (not mapped): a memory
    map would keep every page it touched resident until unmapped, counted in the peak RSS."""
    with matrix_file(path).open("rb") as fh:
        rows, columns, _ = _matrix_layout(fh)
        for lo in range(0, rows, chunk_rows):
            count = min(chunk_rows, rows - lo) * columns
            yield np.fromfile(fh, dtype=np.uint32, count=count).reshape(-1, columns)


def matrix_rows(path: str | Path, rows: np.ndarray) -> np.ndarray:
    """The given rows of the matrix of a signature file, one positioned read each."""
    with matrix_file(path).open("rb") as fh:
        _, columns, offset = _matrix_layout(fh)
        size = columns * 4
        out = np.empty((len(rows), columns), dtype=np.uint32)
        for i, row in enumerate(rows.tolist()):
            out[i] = np.frombuffer(os.pread(fh.fileno(), size, offset + row * size), dtype=np.uint32)
    return out


class MinhashSignatureStep(PipelineStep):
    """P1: passes documents through unchanged and writes the task's signatures, in document order:
    `signatures_dir/<rank>.parquet` (uid, id) and the matrix `signatures_dir/<rank>.npy`; with
    `dedup.exact` or `dedup.url`, also the keys of exact and URL dedup (`keys_file`), computed here
    while the text is at hand so that P4 never reads the texts again."""

    name = "🎯 minhash signatures"
    type = "🫂 - DEDUP"

    def __init__(self, config: DedupConfig, signatures_dir: str | Path, batch_size: int = 1024):
        super().__init__()
        self.config = config
        self.signatures_dir = str(signatures_dir)
        self.batch_size = batch_size

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        hasher = MinHasher.from_config(self.config)
        path = task_file(self.signatures_dir, rank)
        path.parent.mkdir(parents=True, exist_ok=True)
        # `dedup.verify` off: nothing reads the shingles, the largest part of the files (4 B a word)
        shingles_tmp = path.with_name(f".{path.name}.shingles-{os.getpid()}") if self.config.verify else None
        uids: list[np.ndarray] = []
        ids: list[str] = []
        sigs: list[np.ndarray] = []
        sizes: list[np.ndarray] = []
        keys: list[pa.Table] | None = [P1_KEY_SCHEMA.empty_table()] if self.config.exact or self.config.url else None
        batch = []
        # the shingle hashes go to disk batch by batch: 4 B a word, more than the signatures
        with shingles_tmp.open("wb") if shingles_tmp else contextlib.nullcontext() as shingles_out:
            for doc in data:
                batch.append(doc)
                if len(batch) == self.batch_size:
                    self._sign(hasher, batch, uids, ids, sigs, sizes, shingles_out, keys)
                    yield from batch
                    batch = []
            if batch:
                self._sign(hasher, batch, uids, ids, sigs, sizes, shingles_out, keys)
                yield from batch
        signatures = np.concatenate(sigs) if sigs else np.empty((0, hasher.num_perm), dtype=np.uint32)
        ends = np.cumsum(np.concatenate(sizes)) if sizes else np.empty(0, np.int64)
        all_uids = np.concatenate(uids) if uids else np.empty(0, np.int64)
        if keys is not None:  # before the signature file, which marks a complete set
            write_table_atomic(pa.concat_tables(keys), keys_file(path))
        write_signatures(path, all_uids, ids, signatures, ends, shingles_tmp)

    def _sign(
        self,
        hasher: MinHasher,
        batch: list,
        uids: list,
        ids: list,
        sigs: list,
        sizes: list,
        shingles_out: BinaryIO | None,
        keys: list[pa.Table] | None,
    ) -> None:
        with self.track_time():
            signatures, mask, flat, counts = hasher.signatures_and_shingles([doc.text for doc in batch])
            if shingles_out is not None:
                shingles_out.write(flat.tobytes())
            if keys is not None:
                keys.append(keys_table(batch))
        kept = [doc for doc, has in zip(batch, mask) if has]
        uids.append(np.array([doc.metadata["uid"] for doc in kept], dtype=np.int64))
        ids.extend(str(doc.id) for doc in kept)
        sigs.append(signatures)
        sizes.append(counts)
        self.stat_update("signatures", value=len(kept))
        self.stat_update("no_signature", value=len(batch) - len(kept))
