"""Candidate generation that cannot miss, and the exact window search.

A (document, item) pair contaminates only if some window s_t and the item s_e (n tokens) have
|LCS| >= k = rule.required(|s_t|, n); the LCS's tokens form a multiset M, |M| >= k, held by both.
Token codes are ranks by rarity (how many items hold the token), so sorting a token list puts its
rarest tokens first. Four filters, each a bound that a contaminating pair always passes:

1. Item prefix, for documents of at least n tokens (then min(|s_t|, n) = n, since windows are
   never shorter than the item, and k = required(n, n) is fixed per item). The item's
   p = min(n, n - k + PREFIX_EXTRA) rarest tokens hold at least need = p - (n - k) tokens of M:
   only n - p item tokens lie outside them. M lies in the window, so the window holds `need`
   prefix tokens. An inverted index over prefix tokens (a token twice in a prefix is posted twice)
   counts, for every item at once, the prefix tokens present in a *unit* of the document; items
   under `need` are dropped. Posting only a few tokens past the classic n - k + 1 keeps the posting
   lists short (prefix filtering with a count bound, as in similarity joins).
2. Units (window mode). Items are put in levels by window length w <= W_l = LEVEL_BASE x 2^l.
   With q = CHUNK_STRIDE, the units of level l are the chunks [j q W_l, min(L, j q W_l + (q + 1) W_l)),
   j = 0..J, J = max(0, ceil((L - (q + 1) W_l) / (q W_l))): the window [s, s + w) lies in chunk
   min(floor(s / (q W_l)), J), because s + w <= (floor(s / (q W_l)) + 1) q W_l + W_l, and chunk J
   runs to the document's end. A document of at most (q + 1) W_l tokens is one unit; in document
   mode the document is the only unit. Every bound below holds per unit.
3. Document prefix, for documents shorter than the item (L < n <= w: the one window is the
   document and k = required(L, L), the same for all those items). Symmetrically, the document's
   L' - k + PREFIX_EXTRA rarest known tokens (L' known tokens; unknown ones are in no item) hold
   `need'` positions of M, each a token of the item: full postings of items longer than L, sorted
   longest first, count them for every item at once.
4. Count bounds: |LCS| <= the capped multiset overlap sum_t min(times in item, times in window),
   and a window lies in its unit, so a candidate needs overlap >= k with the whole unit, then with
   some window of w tokens inside it (sliding, one step per token). When the unit is the one
   window (document mode, or L <= w) the second is the first. Before the capped overlap, a cheaper
   bound of it: the prefix postings whose token the unit holds (the walk of 1 counted them) plus
   the suffix's occurrences the unit holds, each token capped (min(a + b, c) <= min(a, c) +
   min(b, c) splits a token between prefix and suffix); the suffix scan stops at the first miss
   too many, which is where most candidates end.

Filters 1-4 run compiled (decontam/prefilter.py). The survivors are few: their LCS comes from
rapidfuzz's bit-parallel LCSseq, directly when the window is the document, else by the exact
window search: only windows *starting at a token of the item* (or the last window) need a
check, since moving a window's start right over tokens that are not in the item only drops tokens
that cannot be in the LCS and adds tokens at the end, so the LCS cannot shrink. Those windows must
also hold k of the item's tokens; windows that overlap are first checked together (the LCS of
their union bounds each of them).

Documents and items are strings of one character per token (its rarity code; 0 for tokens in no
item), so rapidfuzz compares them natively and numpy reads the codes with one `encode`. The tests
compare all of this with the brute-force DP of decontam/lcs.py on random and adversarial cases.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import repeat
from typing import Any

import numpy as np

from decontam.benchmarks import Benchmark
from decontam.lcs import Rule, lcs_length
from decontam.prefilter import survivors
from decontam.tokenize import Tokenizer

# Prefix tokens posted past the classic n - k + 1, i.e. the count each candidate needs. Measured on
# real documents against the 35k items of the 7 shared test sets: 1 leaves ~5,500 candidates per
# document, 8 about 500 for twice the postings walked; 4 and 16 were slower than 8.
PREFIX_EXTRA = 8
# Window length of the smallest level (items up to 128 tokens in window mode). Since the filter's
# candidates became cheap to reject, 256 walks fewer postings for ~5% less time than 128.
LEVEL_BASE = 256
# Chunks of a level are (CHUNK_STRIDE + 1) x W_l tokens, CHUNK_STRIDE x W_l apart: 2 and 3 walk
# fewer postings but leave more candidates in long documents, and were slower than 1.
CHUNK_STRIDE = 1
UNKNOWN = "\0"  # the character of document tokens that no item holds: never part of an LCS
_NEVER = 1 << 40  # a window length no document reaches
_SURROGATES = 0xD800  # str cannot hold code points 0xD800-0xDFFF: codes skip them


def _code(rank: int) -> int:
    code = rank + 1
    return code if code < _SURROGATES else code + 0x800


@dataclass(frozen=True)
class Hit:
    """One contaminating item in a document. The best window is the earliest with the largest LCS;
    tokens [start, end) are the tightest span inside it that still holds that LCS."""

    item: int
    lcs: int
    window_tokens: int
    start: int
    end: int


def _unique(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct values and their counts (numpy 2.4's np.unique took 3 s on 3M integers, sorting 0.1 s)."""
    ordered = np.sort(values)
    starts = np.flatnonzero(np.diff(ordered, prepend=ordered[:1] - 1))  # values are >= 0
    return ordered[starts], np.diff(np.append(starts, len(ordered)))


def _codes(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)


class CandidateIndex:
    """The rule for a fixed list of items (token sequences) over any number of documents."""

    def __init__(
        self,
        items: Sequence[Sequence[Hashable]],
        rule: Rule,
        prefix_extra: int = PREFIX_EXTRA,
        level_base: int = LEVEL_BASE,
        chunk_stride: int = CHUNK_STRIDE,
    ):
        self.rule = rule
        self.lengths = np.array([len(item) for item in items], dtype=np.int64)
        eligible = np.flatnonzero(self.lengths >= rule.min_tokens)  # shorter items never match
        # Rarity: how many eligible items hold each token (ties by first appearance), counted in numpy.
        ids: dict[Hashable, int] = {}
        first_ids = [ids.setdefault(t, len(ids)) for i in eligible.tolist() for t in items[i]]
        owner = np.repeat(np.arange(len(eligible)), self.lengths[eligible])
        held = _unique(owner * max(1, len(ids)) + np.array(first_ids, dtype=np.int64))[0] % max(1, len(ids))
        ranked = np.argsort(np.bincount(held, minlength=len(ids)), kind="stable")
        self._chars: dict[Hashable, str] = dict(zip(list(ids), [chr(_code(r)) for r in np.argsort(ranked).tolist()]))
        self.texts: list[str] = [self.encode(item) for item in items]
        self._vocab = _code(len(ids)) + 1  # codes are < this
        windows = rule.windows(self.lengths)
        if rule.mode == "window":
            top = int(windows[eligible].max()) if len(eligible) else 1
            levels = max(1, int(np.ceil(np.log2(max(top, level_base) / level_base))) + 1)
            self._level_w = [level_base << level for level in range(levels)]
            level = np.searchsorted(np.array(self._level_w), windows)  # first level with W_l >= w
        else:  # one unit and one window, the document, for every item
            self._level_w = [_NEVER]
            level = np.zeros(len(items), dtype=np.int64)
            windows[:] = _NEVER
        # Slots: the eligible items ordered by level, so a level's items are one slot range.
        self._slot_item = eligible[np.argsort(level[eligible], kind="stable")]
        self._slot_n = self.lengths[self._slot_item]
        self._slot_w = windows[self._slot_item]
        self._slot_text = [self.texts[i] for i in self._slot_item.tolist()]
        self._max_n = int(self._slot_n.max()) if len(self._slot_n) else 0
        self._kernel_args = self._build(level[self._slot_item], prefix_extra, chunk_stride)

    def encode(self, tokens: Sequence[Hashable]) -> str:
        """Tokens as a string of their codes (UNKNOWN for tokens that no item holds)."""
        return "".join(map(self._chars.get, tokens, repeat(UNKNOWN)))

    def _build(self, slot_level: np.ndarray, extra: int, stride: int) -> tuple:
        """The arrays `survivors` takes, in its order."""
        count, vocab, levels = len(self._slot_n), self._vocab, len(self._level_w)
        k = self._slot_k = self.rule.required_alone(self._slot_n)
        owner = np.repeat(np.arange(count), self._slot_n)
        codes = _codes("".join(self._slot_text))
        codes = codes[np.lexsort((codes, owner))]  # each slot's codes, rarest first
        # Prefix: the p = min(n, n - k + extra) rarest tokens of each item, posted once per occurrence.
        p = np.minimum(self._slot_n, self._slot_n - k + extra)
        starts = np.cumsum(self._slot_n) - self._slot_n
        in_prefix = np.arange(len(codes)) - starts[owner] < p[owner]
        keys = codes[in_prefix] * levels + slot_level[owner[in_prefix]]
        by_key = np.argsort(keys, kind="stable")
        bounds = np.searchsorted(keys[by_key], np.arange(vocab * levels + 1))
        prefix_slots = owner[in_prefix][by_key]
        # Each item's distinct tokens with their counts, and the same by token, longest item first.
        cells, times = _unique(owner * vocab + codes)
        cell_slot, cell_token = cells // vocab, cells % vocab
        item_ptr = np.searchsorted(cell_slot, np.arange(count + 1))
        full = cell_token * (self._max_n + 1) + (self._max_n - self._slot_n[cell_slot])
        by_full = np.argsort(full, kind="stable")
        # The suffix (past the prefix) of each slot: from its distinct token `split`, of which
        # `split_times` occurrences lie past the prefix (split = the slot's end when p = n).
        cumulative = np.cumsum(times)
        before = cumulative[item_ptr[:-1] - 1] * (item_ptr[:-1] > 0)
        split = np.searchsorted(cumulative, before + p, side="right")
        split_times = np.where(split < item_ptr[1:], cumulative[np.minimum(split, len(times) - 1)] - before - p, 0)
        ratio = Fraction(repr(self.rule.ratio))
        # need << shift | count (need = min(k, extra) >= 1), in 32-bit words unless a prefix reaches 2^16
        shift = 16 if p.max(initial=0) < 0xFFFF else 32
        state = ((p - (self._slot_n - k)) << shift).astype(np.int32 if shift == 16 else np.int64)
        return (
            self.rule.min_tokens,
            ratio.numerator,
            ratio.denominator,
            extra,
            stride,
            np.array(self._level_w, dtype=np.int64),
            np.searchsorted(slot_level, np.arange(levels + 1)),
            bounds,
            prefix_slots,
            self._slot_n,
            self._slot_w,
            k,
            item_ptr,
            cell_token,
            times,
            np.searchsorted(cell_token[by_full], np.arange(vocab + 1)),
            cell_slot[by_full],
            self._max_n,
            np.zeros(vocab, dtype=np.int32),
            np.zeros(vocab, dtype=np.int32),
            np.zeros(vocab, dtype=np.int32),
            split,
            split_times,
            shift,
            state,
            np.zeros(count + 1, dtype=np.int64),  # touched: written one past the last touch
            np.zeros(count, dtype=np.int64),
            np.zeros(count, dtype=np.int64),
            np.zeros(count, dtype=np.int64),
            np.zeros(1, dtype=np.int64),
        )

    def find(self, tokens: Sequence[Hashable]) -> list[Hit]:
        """Every item that contaminates the document, with its best window, by item."""
        return self.find_many([tokens])[0]

    def find_many(self, docs: Sequence[Sequence[Hashable]]) -> list[list[Hit]]:
        """`find` for each document: one call of the compiled filter for the whole batch."""
        texts = [self.encode(tokens) for tokens in docs]
        hits: list[list[Hit]] = [[] for _ in texts]
        if not self._max_n or not texts:
            return hits
        codes = _codes("".join(texts))
        lengths = [len(t) for t in texts]
        offsets = np.cumsum([0] + lengths)
        # each document's codes sorted, for the filter of documents shorter than an item
        ordered = np.sort(np.repeat(np.arange(len(texts)) * self._vocab, lengths) + codes) % self._vocab
        done, tally, _, stamp = self._kernel_args[-4:]
        if stamp[0] > 1 << 30:  # document stamps live in 32 bits of `tally`: start again from 0
            done[:], tally[:], stamp[0] = 0, 0, 0
        for doc, slot, whole in survivors(codes, ordered, offsets, *self._kernel_args).reshape(-1, 3).tolist():
            text, doc_codes = texts[doc], codes[offsets[doc] : offsets[doc + 1]]
            if whole:  # the one window is the document
                lcs = lcs_length(text, self._slot_text[slot], self.rule.required(len(text), int(self._slot_n[slot])))
                hit = self._exact(text, doc_codes, slot, lcs) if lcs else None
            else:
                hit = self._search(text, doc_codes, slot)
            if hit is not None:
                hits[doc].append(hit)
        return [sorted(found, key=lambda h: h.item) for found in hits]

    def _exact(self, text: str, codes: np.ndarray, slot: int, lcs: int) -> Hit:
        """A hit whose one window is the whole document."""
        item = int(self._slot_item[slot])
        inside = self._positions(codes, item)
        return Hit(item, lcs, len(text), *_tighten(text, self.texts[item], inside, lcs))

    def _positions(self, codes: np.ndarray, item: int) -> np.ndarray:
        """Positions of the document's tokens that occur in the item (a mask over the vocabulary:
        numpy 2.4's np.isin cost ~0.3 ms per call on real documents)."""
        member = np.zeros(self._vocab, dtype=bool)
        member[_codes(self.texts[item])] = True
        return np.flatnonzero(member[codes])

    def _search(self, text: str, codes: np.ndarray, slot: int) -> Hit | None:
        """The exact window search of one candidate whose window is shorter than the document."""
        item, k, w = int(self._slot_item[slot]), int(self._slot_k[slot]), int(self._slot_w[slot])
        sequence, length = self.texts[item], len(text)
        positions = self._positions(codes, item)
        # windows starting at a token of the item that hold >= k of them; past L - w, the last window
        dense = np.flatnonzero(positions[k - 1 :] - positions[: len(positions) - k + 1] < w)
        starts = _unique(np.minimum(positions[dense], length - w))[0].tolist()
        best, best_start = 0, -1
        for group in _overlapping(starts, w):
            if best == len(sequence):
                break
            # The union's LCS bounds every window of the group: skip groups that cannot beat the
            # best so far, and stop at the first window that reaches the bound.
            bound = (
                lcs_length(text[group[0] : group[-1] + w], sequence, max(k, best + 1))
                if len(group) > 1
                else len(sequence)
            )
            if not bound:
                continue
            for start in group:
                lcs = lcs_length(text[start : start + w], sequence, max(k, best + 1))
                if lcs > best:
                    best, best_start = lcs, start
                    if best == bound:
                        break
        if not best:
            return None
        inside = positions[np.searchsorted(positions, best_start) : np.searchsorted(positions, best_start + w)]
        return Hit(item, best, w, *_tighten(text, sequence, inside, best))


def _tighten(text: str, sequence: str, inside: np.ndarray, lcs: int) -> tuple[int, int]:
    """The span [start, end) of the window's shared tokens that still holds the whole LCS: the
    latest start, then the earliest end (LCS only grows with the span: two binary searches)."""
    points = inside.tolist()
    lo, hi = 0, len(points) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if lcs_length(text[points[mid] : points[-1] + 1], sequence, lcs):
            lo = mid
        else:
            hi = mid - 1
    first, hi = lo, len(points) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if lcs_length(text[points[first] : points[mid] + 1], sequence, lcs):
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

    def __init__(self, benchmarks: Sequence[Benchmark], rule: Rule, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self.refs = [(b.name, item_id) for b in benchmarks for item_id in b.item_ids]
        self.index = CandidateIndex([tokenizer.tokens(t) for b in benchmarks for t in b.texts], rule)

    def scan(self, text: str) -> list[dict[str, Any]]:
        """Match rows (benchmark, item_id, lcs, window_tokens, item_tokens, start_char, end_char),
        sorted by benchmark and item id."""
        return self.scan_many([text])[0]

    def scan_many(self, texts: Sequence[str]) -> list[list[dict[str, Any]]]:
        """`scan` for each text, the index's filter running once for the batch."""
        found = self.index.find_many([self.tokenizer.tokens(text) for text in texts])
        return [self._rows(text, hits) if hits else [] for text, hits in zip(texts, found)]

    def _rows(self, text: str, hits: list[Hit]) -> list[dict[str, Any]]:
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

    def too_short(self) -> dict[str, list[str]]:
        """Per benchmark, the ids of its items under min_tokens tokens: they can never match."""
        short: dict[str, list[str]] = {name: [] for name, _ in self.refs}
        for (name, item_id), n in zip(self.refs, self.index.lengths.tolist()):
            if n < self.index.rule.min_tokens:
                short[name].append(item_id)
        return short
