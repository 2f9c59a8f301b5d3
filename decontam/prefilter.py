"""The candidate filter of decontam/index.py, compiled with numba: a batch of documents in one
call, with no Python per document, posting or window. The filter walks ~30k postings per real
document against the 35k items of the 7 shared test sets; numpy's per-call overhead alone cost
3.5 ms per document, and a call with numba's argument checks ~25 us, hence the batches.

Every function here only computes *bounds*; the proofs that a contaminating pair always passes
them are in decontam/index.py's docstring.

Scratch: `unit_count` (tokens of the current unit), `window_count`, `item_count` and the low
half of `state` (zero between units and calls), per slot `done` (the last document that kept it)
and `tally` (stamp << 32 | count, for items longer than the document). The filter is bound by
the ~60k postings a real document walks, each a read-modify-write of one slot's word: `state` is
need << shift | count, and a posting costs an increment, an equality test that is rarely true and
a branch-free append to the list of touched slots, which is reset after the unit (a stamp per
slot, as before, cost a mispredicted branch on every first touch: 3x). The words are 32-bit
(shift 16: the state of 35k slots stays in L2, 15% faster than 64-bit) unless an item's prefix
reaches 2^16 tokens, when the index passes 64-bit words and shift 32 (a count never exceeds the
prefix, so it never reaches the need's bits).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _capped_overlap(tokens, times, counts):
    """sum over the item's distinct tokens of min(times in the item, count in `counts`)."""
    overlap = 0
    for i in range(len(tokens)):
        overlap += min(times[i], counts[tokens[i]])
    return overlap


@njit(cache=True)
def _suffix_bound(tokens, times, first_times, counts, slack):
    """True when the item's suffix (its tokens past the prefix, `first_times` of tokens[0] and all
    of the others) misses at most `slack` occurrences in `counts` (capped by the item's times).
    It stops at the first excess, so most failing candidates cost a few reads."""
    for i in range(len(tokens)):
        t = first_times if i == 0 else times[i]
        slack -= t - min(t, counts[tokens[i]])
        if slack < 0:
            return False
    return True


@njit(cache=True)
def _best_window(codes, a, b, w, k, tokens, times, item_count, window_count):
    """The largest capped multiset overlap of the item with a window of min(w, b - a) tokens
    inside codes[a:b] (sliding: one step per token), or the first value >= k."""
    for i in range(len(tokens)):
        item_count[tokens[i]] = times[i]
    width = min(w, b - a)
    overlap = best = 0
    p = a
    while p < b:
        t = codes[p]
        if item_count[t] > 0:
            if window_count[t] < item_count[t]:
                overlap += 1
            window_count[t] += 1
        if p - a >= width:
            t = codes[p - width]
            if item_count[t] > 0:
                if window_count[t] <= item_count[t]:
                    overlap -= 1
                window_count[t] -= 1
        if p - a >= width - 1 and overlap > best:
            best = overlap
            if best >= k:
                break
        p += 1
    for q in range(max(a, min(p, b - 1) - width + 1), min(p + 1, b)):  # the last window's counts
        window_count[codes[q]] = 0
    for i in range(len(tokens)):
        item_count[tokens[i]] = 0
    return best


@njit(cache=True)
def _push(out, doc, slot, exact):
    """Append (doc, slot, exact) to `out`: out[0] triples follow it, flat. Plain loops: numba's 2-D
    slice and tuple assignments cost ~14 s of compile time on a fresh install, and a count or an
    `exact` passed as a literal would compile a second version."""
    at = 1 + 3 * out[0]
    if at == len(out):
        grown = np.empty(2 * len(out) - 1, dtype=np.int64)
        for i in range(len(out)):
            grown[i] = out[i]
        out = grown
    out[at] = doc
    out[at + 1] = slot
    out[at + 2] = exact
    out[0] += 1
    return out


@njit(cache=True)
def _shorter(
    codes,
    ordered,
    k,
    extra,
    full_ptr,
    full_slots,
    slot_n,
    item_ptr,
    item_tokens,
    item_times,
    unit_count,
    tally,
    stamp,
    candidates,
):
    """Items longer than the document: its `extra` + |known| - k rarest known tokens over the full
    postings of those items (token t's are full_slots[full_ptr[t]:full_ptr[t + 1]], longest item
    first); survivors must share k tokens with the document (its one window). `ordered` is the
    document's codes sorted (unknown tokens, 0, first). Returns how many slots survive, at the
    start of `candidates`."""
    length = len(codes)
    zeros = 0
    while zeros < length and ordered[zeros] == 0:
        zeros += 1
    known = ordered[zeros:]
    if len(known) < k:
        return 0
    p = min(len(known), len(known) - k + extra)
    needed = p - (len(known) - k)
    filled = 0
    i = 0
    while i < p:
        t = known[i]
        j = i
        while j < p and known[j] == t:
            j += 1
        for e in range(full_ptr[t], full_ptr[t + 1]):
            s = full_slots[e]
            if slot_n[s] <= length:
                break
            if tally[s] >> 32 != stamp:
                tally[s] = stamp << 32
            before = tally[s] & 0xFFFFFFFF
            tally[s] += j - i
            if before < needed <= before + j - i:
                candidates[filled] = s
                filled += 1
        i = j
    for p in range(length):
        unit_count[codes[p]] += 1
    kept = 0
    for i in range(filled):
        s = candidates[i]
        lo, hi = item_ptr[s], item_ptr[s + 1]
        if _capped_overlap(item_tokens[lo:hi], item_times[lo:hi], unit_count) >= k:
            candidates[kept] = s
            kept += 1
    for p in range(length):
        unit_count[codes[p]] = 0
    return kept


@njit(cache=True)
def survivors(
    codes,
    ordered,
    offsets,
    min_tokens,
    ratio_num,
    ratio_den,
    extra,
    stride,
    level_w,
    level_start,
    bounds,
    prefix_slots,
    slot_n,
    slot_w,
    slot_k,
    item_ptr,
    item_tokens,
    item_times,
    full_ptr,
    full_slots,
    max_n,
    unit_count,
    item_count,
    window_count,
    split,
    split_times,
    shift,
    state,
    touched,
    done,
    tally,
    candidates,
    stamp,
):
    """(document, slot, exact) triples, flat, for every pair of the batch that passes every bound:
    exact = 1 when the pair's one window is the whole document, 0 when it needs the window search.
    Documents are codes[offsets[d]:offsets[d + 1]], and the same sorted in `ordered`; stamp[0] is
    bumped per document."""
    levels = len(level_w)
    count_bits = (1 << shift) - 1  # a slot's prefix postings in the unit so far
    out = np.zeros(1 + 3 * 64, dtype=np.int64)
    for doc in range(len(offsets) - 1):
        doc_codes = codes[offsets[doc] : offsets[doc + 1]]
        length = len(doc_codes)
        if length < min_tokens:
            continue
        stamp[0] += 1
        doc_stamp = stamp[0]
        if length < max_n:
            k = max(min_tokens, (ratio_num * length + ratio_den - 1) // ratio_den)
            kept = _shorter(
                doc_codes,
                ordered[offsets[doc] : offsets[doc + 1]],
                k,
                extra,
                full_ptr,
                full_slots,
                slot_n,
                item_ptr,
                item_tokens,
                item_times,
                unit_count,
                tally,
                doc_stamp,
                candidates,
            )
            for i in range(kept):  # L < n <= w: the one window is the document
                s = candidates[i]
                out = _push(out, doc, s, length <= slot_w[s])
        # Items no longer than the document: item prefixes per unit (chunks of a level, or the document).
        top = levels
        for lv in range(levels):
            if (stride + 1) * level_w[lv] >= length:
                top = lv
                break
        for lv in range(min(top + 1, levels)):
            first, end = (lv, lv + 1) if lv < top else (top, levels)
            if level_start[first] == level_start[end]:
                continue
            width = level_w[lv] if lv < top else length
            step = stride * width
            for j in range(max(0, -(-(length - step - width) // step)) + 1 if lv < top else 1):
                a, b = j * step, min(length, j * step + step + width)
                filled = touches = 0
                for p in range(a, b):
                    t = doc_codes[p]
                    unit_count[t] += 1
                    if t == 0 or unit_count[t] > 1:
                        continue
                    for e in range(bounds[t * levels + first], bounds[t * levels + end]):
                        s = prefix_slots[e]
                        v = state[s] + 1
                        state[s] = v
                        touched[touches] = s
                        touches += (v & count_bits) == 1
                        if (v & count_bits) == v >> shift:  # reaches the need: once per slot and unit
                            candidates[filled] = s
                            filled += 1
                for i in range(filled):
                    s = candidates[i]
                    if slot_n[s] > length or done[s] == doc_stamp:
                        continue
                    n, k = slot_n[s], slot_k[s]
                    # |M| <= (prefix postings whose token the unit holds) + (suffix occurrences it holds)
                    slack = (state[s] & count_bits) + n - min(n, n - k + extra) - k
                    lo, hi = split[s], item_ptr[s + 1]
                    if slack < 0 or not _suffix_bound(
                        item_tokens[lo:hi], item_times[lo:hi], split_times[s], unit_count, slack
                    ):
                        continue
                    tokens = item_tokens[item_ptr[s] : hi]
                    times = item_times[item_ptr[s] : hi]
                    if _capped_overlap(tokens, times, unit_count) < k:
                        continue
                    whole = b - a == length and length <= slot_w[s]  # the unit is the one window
                    if (
                        whole
                        or _best_window(doc_codes, a, b, slot_w[s], k, tokens, times, item_count, window_count) >= k
                    ):
                        done[s] = doc_stamp
                        out = _push(out, doc, s, whole)
                for i in range(touches):
                    state[touched[i]] &= ~count_bits
                for p in range(a, b):
                    unit_count[doc_codes[p]] = 0
    return out[1 : 1 + 3 * out[0]]
