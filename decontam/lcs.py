"""The exact contamination rule (Qwen2 report) and the LCS computations behind it.

A training sequence s_t is contaminated by a test sequence s_e when
|LCS(s_t, s_e)| >= min_tokens and |LCS(s_t, s_e)| >= ratio x min(|s_t|, |s_e|), LCS being the
longest common *subsequence* in tokens. `ratio` and `window_factor` are taken as the decimals the
user wrote (0.6 is 3/5 exactly), so a pair exactly at the ratio matches whatever float rounding.

`lcs_length` is the production check (rapidfuzz's bit-parallel LCSseq on token-id lists);
`lcs_dp` and `brute_force_matches` are the plain dynamic-programming reference that the tests and
the benchmark compare against.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from fractions import Fraction

from rapidfuzz.distance import LCSseq


def _exact(value: float) -> Fraction:
    return Fraction(repr(value))


def required_lcs(min_tokens: int, ratio: float, train_tokens: int, item_tokens: int) -> int:
    """The smallest LCS that makes (s_t, s_e) contaminated, for these lengths."""
    return max(min_tokens, math.ceil(_exact(ratio) * min(train_tokens, item_tokens)))


def window_length(window_factor: float, item_tokens: int) -> int:
    """w = ceil(window_factor x |s_e|)."""
    return math.ceil(_exact(window_factor) * item_tokens)


def lcs_length(a: Sequence[Hashable], b: Sequence[Hashable], score_cutoff: int = 0) -> int:
    """|LCS(a, b)| if it is at least `score_cutoff`, else 0 (bit-parallel, stops early)."""
    return int(LCSseq.similarity(a, b, score_cutoff=score_cutoff))


def lcs_dp(a: Sequence[Hashable], b: Sequence[Hashable]) -> int:
    """|LCS(a, b)| by the textbook dynamic program, O(|a| x |b|)."""
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def lcs_pairs(a: Sequence[Hashable], b: Sequence[Hashable]) -> list[tuple[int, int]]:
    """One longest common subsequence as (index in a, index in b) pairs (for highlighting)."""
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) - 1, -1, -1):
        for j in range(len(b) - 1, -1, -1):
            table[i][j] = table[i + 1][j + 1] + 1 if a[i] == b[j] else max(table[i + 1][j], table[i][j + 1])
    pairs, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        if a[i] == b[j]:
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif table[i + 1][j] >= table[i][j + 1]:
            i += 1
        else:
            j += 1
    return pairs


def brute_force_matches(
    doc: Sequence[Hashable],
    items: Sequence[Sequence[Hashable]],
    mode: str,
    window_factor: float,
    min_tokens: int,
    ratio: float,
) -> dict[int, int]:
    """{item index: best LCS over the document's windows} for every contaminating item, trying
    every window of every pair with `lcs_dp`, straight from the rule's wording."""
    found = {}
    for index, item in enumerate(items):
        if mode == "document":
            windows = [doc]
        else:
            w = math.ceil(Fraction(str(window_factor)) * len(item))
            windows = [doc[s : s + w] for s in range(max(1, len(doc) - w + 1))]
        best = 0
        for window in windows:
            lcs = lcs_dp(window, item)
            if lcs >= min_tokens and lcs >= Fraction(str(ratio)) * min(len(window), len(item)):
                best = max(best, lcs)
        if best:
            found[index] = best
    return found
