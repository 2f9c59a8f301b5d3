"""Candidate generation that cannot miss, and the exact window search.

Candidates: a (document, item) pair with |LCS| >= k shares at least k tokens as multisets. Token
ids are ranks by rarity (how many items hold the token), so sorting an item's n tokens puts the
rarest first. Its *prefix* is every token but the few most frequent ones, and at least the first
n - k + 1. A document can then only reach k shared tokens if it shares need = p - (n - k) >= 1
of the p prefix tokens (the n - p others count at most once each): an inverted index over prefix
tokens counts that for every item at once (prefix filtering with a count bound, as in similarity
joins), so no pair that satisfies the rule is dropped. k shrinks with min(|s_t|, |s_e|), so
documents shorter than an item also probe a "loose" index over the later tokens of the classic
n - k + 1 prefix, checked against their own length.

Then, per candidate: the exact multiset overlap with the document must reach k (one vectorised pass
over all candidates), then the LCS is computed exactly with rapidfuzz. In window mode only windows
*starting at a token of the item* (or the last window) need a check: moving a window's start right
over tokens that are not in the item only drops tokens that cannot be in the LCS and adds tokens at
the end, so the LCS cannot shrink. Those windows must also hold k of the item's tokens; windows
that overlap are first checked together (the LCS of their union bounds each of them).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from decontam.benchmarks import Benchmark
from decontam.lcs import lcs_length, required_lcs, window_length
from decontam.tokenize import Tokenizer, load_tokenizer
from pipeline.config import DecontamConfig

# The most frequent benchmark tokens are left out of the prefixes: a document nearly always holds
# them, so bounding their share by the item's own count loses little filtering, and their posting
# lists are the longest. Measured with benchmarks/bench_decontam.py (real benchmarks, news text).
COMMON_TOKENS = 64
UNKNOWN = -1  # id of document tokens that no item holds: they can never be part of an LCS


@dataclass(frozen=True)
class Hit:
    """One contaminating item in a document. The best window is the earliest with the largest LCS;
    tokens [start, end) are the tightest span inside it that still holds that LCS."""

    item: int
    lcs: int
    window_tokens: int
    start: int
    end: int


def _ranges(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Concatenated aranges [start, start + size) without a Python loop."""
    offsets = np.cumsum(sizes) - sizes
    return np.repeat(starts - offsets, sizes) + np.arange(int(sizes.sum()))


def _csr(rows: dict[int, list], size: int, width: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """{key: [entry, ...]} -> (ptr over keys 0..size-1, entries in key order); entries are ints,
    or tuples of `width` ints (then one column each)."""
    ptr = np.zeros(size + 1, dtype=np.int64)
    for key, values in rows.items():
        ptr[key + 1] = len(values)
    entries = np.array([entry for key in sorted(rows) for entry in rows[key]], dtype=np.int64)
    return np.cumsum(ptr), entries.reshape(-1, width) if width > 1 else entries


class CandidateIndex:
    """The rule for a fixed list of items (token sequences) over any number of documents."""

    def __init__(self, items: Sequence[Sequence[Hashable]], config: DecontamConfig, common_tokens: int = COMMON_TOKENS):
        self.window = config.mode == "window"
        self.window_factor = config.window_factor
        self.min_tokens = config.min_tokens
        self.ratio = config.ratio
        ratio = Fraction(repr(config.ratio))
        self._ratio_num, self._ratio_den = ratio.numerator, ratio.denominator
        self.lengths = np.array([len(item) for item in items], dtype=np.int64)
        eligible = [i for i, item in enumerate(items) if len(item) >= self.min_tokens]  # shorter never match
        # Ids are ranks by rarity: sorting an item's ids sorts its tokens rarest first.
        df = Counter(token for i in eligible for token in set(items[i]))
        self.vocab: dict[Hashable, int] = {t: r for r, (t, _) in enumerate(sorted(df.items(), key=lambda kv: (kv[1], kv[0])))}
        self.items: list[list[int]] = [[self.vocab.get(t, UNKNOWN) for t in item] for item in items]
        self._windows = np.array([window_length(self.window_factor, n) for n in self.lengths], dtype=np.int64)
        self._max_len = int(self.lengths[eligible].max()) if eligible else 0
        self._build(eligible, len(self.vocab) - common_tokens)
        # Per-document scratch arrays over the vocabulary (+1 slot that UNKNOWN = -1 indexes).
        self._counts = np.zeros(len(self.vocab) + 1, dtype=np.int64)
        self._member = np.zeros(len(self.vocab) + 1, dtype=bool)

    def _build(self, eligible: list[int], common_from: int) -> None:
        count, vocab = len(self.items), len(self.vocab)
        prefix: dict[int, list[int]] = {}  # token -> items, once per occurrence in the item's prefix
        loose: dict[int, list[tuple[int, int]]] = {}  # token -> [(item, first sorted position)]
        distinct: dict[int, list[tuple[int, int]]] = {}  # item -> [(token, times in the item)]
        self._prefix_len = np.zeros(count, dtype=np.int64)
        self._need_full = np.full(count, np.iinfo(np.int64).max, dtype=np.int64)  # never, for short items
        for i in eligible:
            ids = sorted(self.items[i])
            n = len(ids)
            k = required_lcs(self.min_tokens, self.ratio, n, n)
            # A document must share k tokens: if the prefix (all tokens but the common ones, and at
            # least n - k + 1) holds p of them, it must share p - (n - k) with the prefix.
            p = max(n - k + 1, sum(1 for t in ids if t < common_from))
            self._prefix_len[i], self._need_full[i] = p, p - (n - k)
            for token in ids[:p]:  # a token twice in the prefix is posted twice
                prefix.setdefault(token, []).append(i)
            first: dict[int, int] = {}
            for position in range(p, n - self.min_tokens + 1):
                first.setdefault(ids[position], position)
            in_prefix = set(ids[:p])
            for token, position in first.items():
                if token not in in_prefix:  # only documents shorter than the item need these
                    loose.setdefault(token, []).append((i, position))
            distinct[i] = list(Counter(ids).items())
        ptr, items = _csr(prefix, vocab)
        self._prefix = ptr, items.astype(np.int32)  # half the bytes to concatenate per document
        # Loose postings are probed only for items longer than the document: sorted longest first
        # under one key per token, a searchsorted finds each token's eligible run.
        for postings in loose.values():
            postings.sort(key=lambda entry: -self.lengths[entry[0]])
        self._loose = _csr(loose, vocab, width=2)
        ptr, entries = self._loose
        items = entries[:, 0]
        self._loose_key = np.repeat(np.arange(vocab), np.diff(ptr)) * (self._max_len + 1) + (self._max_len - self.lengths[items])
        self._item_tokens = _csr(distinct, count, width=2)

    def encode(self, tokens: Sequence[Hashable]) -> list[int]:
        get = self.vocab.get
        return [get(t, UNKNOWN) for t in tokens]

    def _candidates(self, length: int, tokens: np.ndarray) -> np.ndarray:
        """Items that may contaminate a document of `length` tokens whose distinct known token ids
        are `tokens` (a superset of the true ones)."""
        # Upper bound of the prefix tokens shared (a document's count is not capped at the item's):
        # two passes over the postings; the exact multiset overlap of the few candidates follows.
        ptr, items = self._prefix
        posted = [items[a:b] for a, b in zip(ptr[tokens].tolist(), ptr[tokens + 1].tolist()) if b > a]
        shared = np.bincount(np.concatenate(posted), minlength=len(self.items)) if posted else np.zeros(len(self.items), np.int64)
        if length >= self._max_len:
            return np.flatnonzero(shared >= self._need_full)
        # Items longer than the document need fewer shared tokens (k depends on min(|s_t|, |s_e|)),
        # down to none of the prefix: then any token of the first n - k + 1 makes a candidate.
        longer = self.lengths > length
        k = required_lcs(self.min_tokens, self.ratio, length, length)
        need = np.where(longer, self._prefix_len - self.lengths + k, self._need_full)
        ptr, entries = self._loose
        ends = np.searchsorted(self._loose_key, tokens * (self._max_len + 1) + (self._max_len - length))
        items, positions = entries[_ranges(ptr[tokens], ends - ptr[tokens])].T
        loose = np.zeros(len(self.items), dtype=bool)
        loose[items[positions <= self.lengths[items] - k]] = True
        return np.flatnonzero((shared >= np.maximum(need, 1)) | ((need <= 0) & longer & ((shared >= 1) | loose)))

    def find(self, tokens: Sequence[Hashable]) -> list[Hit]:
        """Every item that contaminates the document, with its best window."""
        length = len(tokens)
        if length < self.min_tokens or not self._max_len:
            return []
        ids = self.encode(tokens)
        doc = np.array(ids, dtype=np.int64)
        uniq, counts = np.unique(doc[doc >= 0], return_counts=True)
        cands = self._candidates(length, uniq)
        if not len(cands):
            return []
        train = np.minimum(self._windows[cands], length) if self.window else np.full(len(cands), length)
        shortest = np.minimum(train, self.lengths[cands])
        need = np.maximum(self.min_tokens, -((-self._ratio_num * shortest) // self._ratio_den))
        self._counts[uniq] = counts
        try:
            keep = self._overlap(cands) >= need
        finally:
            self._counts[uniq] = 0
        hits = []
        for item, k, w in zip(cands[keep].tolist(), need[keep].tolist(), train[keep].tolist()):
            hit = self._verify(ids, doc, item, k, w)
            if hit is not None:
                hits.append(hit)
        return hits

    def _overlap(self, cands: np.ndarray) -> np.ndarray:
        """Multiset overlap of each candidate with the document (whose counts are in _counts)."""
        ptr, entries = self._item_tokens
        tokens, times = entries[:, 0], entries[:, 1]
        sizes = ptr[cands + 1] - ptr[cands]
        flat = _ranges(ptr[cands], sizes)
        shared = np.minimum(self._counts[tokens[flat]], times[flat])
        return np.add.reduceat(shared, np.cumsum(sizes) - sizes)

    def _positions(self, doc: np.ndarray, item: int) -> np.ndarray:
        """Positions of the document's tokens that occur in the item."""
        ptr, entries = self._item_tokens
        members = entries[ptr[item] : ptr[item + 1], 0]
        self._member[members] = True
        try:
            return np.flatnonzero(self._member[doc])
        finally:
            self._member[members] = False

    def _verify(self, ids: list[int], doc: np.ndarray, item: int, k: int, w: int) -> Hit | None:
        """The exact check of one candidate: w is the window length (the document if shorter)."""
        sequence = self.items[item]
        length = len(ids)
        positions = self._positions(doc, item)
        if w >= length:  # one window: the whole document (document mode, or a short document)
            lcs = lcs_length(ids, sequence, k)
            return Hit(item, lcs, length, *_tighten(ids, sequence, positions, lcs)) if lcs else None
        # windows starting at a token of the item that hold >= k of them; past L - w, the last window
        dense = np.flatnonzero(positions[k - 1 :] - positions[: len(positions) - k + 1] < w)
        starts = np.unique(np.minimum(positions[dense], length - w)).tolist()
        best, best_start = 0, -1
        for group in _overlapping(starts, w):
            if best == len(sequence):
                break
            # The union's LCS bounds every window of the group: skip groups that cannot beat the
            # best so far, and stop at the first window that reaches the bound.
            bound = lcs_length(ids[group[0] : group[-1] + w], sequence, max(k, best + 1)) if len(group) > 1 else len(sequence)
            if not bound:
                continue
            for start in group:
                lcs = lcs_length(ids[start : start + w], sequence, max(k, best + 1))
                if lcs > best:
                    best, best_start = lcs, start
                    if best == bound:
                        break
        if not best:
            return None
        inside = positions[np.searchsorted(positions, best_start) : np.searchsorted(positions, best_start + w)]
        return Hit(item, best, w, *_tighten(ids, sequence, inside, best))


def _tighten(ids: list[int], sequence: list[int], inside: np.ndarray, lcs: int) -> tuple[int, int]:
    """The span [start, end) of the window's shared tokens that still holds the whole LCS: the
    latest start, then the earliest end (LCS only grows with the span: two binary searches)."""
    points = inside.tolist()
    lo, hi = 0, len(points) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if lcs_length(ids[points[mid] : points[-1] + 1], sequence, lcs):
            lo = mid
        else:
            hi = mid - 1
    first, hi = lo, len(points) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if lcs_length(ids[points[first] : points[mid] + 1], sequence, lcs):
            hi = mid
        else:
            lo = mid + 1
    return points[first], points[lo] + 1


def _overlapping(starts: list[int], w: int) -> list[list[int]]:
    """Sorted window starts grouped into runs of overlapping windows."""
    groups: list[list[int]] = []
    for start in starts:
        if groups and start < groups[-1][-1] + w:
            groups[-1].append(start)
        else:
            groups.append([start])
    return groups


class BenchmarkIndex:
    """Benchmarks + tokenizer + candidate index: `scan(text)` gives the document's match rows."""

    def __init__(self, benchmarks: Sequence[Benchmark], config: DecontamConfig, tokenizer: Tokenizer | None = None):
        self.tokenizer = tokenizer or load_tokenizer(config.tokenizer)
        self.refs = [(b.name, item_id) for b in benchmarks for item_id in b.item_ids]
        self.index = CandidateIndex([self.tokenizer.tokens(t) for b in benchmarks for t in b.texts], config)

    def scan(self, text: str) -> list[dict[str, Any]]:
        """Match rows (benchmark, item_id, lcs, window_tokens, item_tokens, start_char, end_char),
        sorted by benchmark and item id."""
        hits = self.index.find(self.tokenizer.tokens(text))
        if not hits:
            return []
        spans = self.tokenizer.spans(text)
        rows = []
        for hit in hits:
            benchmark, item_id = self.refs[hit.item]
            rows.append(
                {
                    "benchmark": benchmark,
                    "item_id": item_id,
                    "lcs": hit.lcs,
                    "window_tokens": hit.window_tokens,
                    "item_tokens": int(self.index.lengths[hit.item]),
                    "start_char": spans[hit.start][0],
                    "end_char": spans[hit.end - 1][1],
                }
            )
        return sorted(rows, key=lambda r: (r["benchmark"], r["item_id"]))

    def too_short(self) -> dict[str, int]:
        """Per benchmark, the items with fewer than min_tokens tokens: they can never match."""
        short = Counter(name for (name, _), n in zip(self.refs, self.index.lengths) if n < self.index.min_tokens)
        return {name: short.get(name, 0) for name in dict.fromkeys(name for name, _ in self.refs)}
