"""The exact contamination rule (Qwen2 report) and the LCS computations behind it.

A training sequence s_t is contaminated by a test sequence s_e when
|LCS(s_t, s_e)| >= min_tokens and |LCS(s_t, s_e)| >= ratio x min(|s_t|, |s_e|), LCS being the
longest common *subsequence* in tokens. In window mode s_t ranges over the document's contiguous
windows of ceil(window_factor x |s_e|) tokens (the whole document when it is shorter); in document
mode s_t is the document. `ratio` and `window_factor` are taken as the decimals the user wrote (0.6
is 3/5 exactly), so a pair exactly at the ratio matches whatever float rounding.

`lcs_length` is the production check (rapidfuzz's bit-parallel LCSseq); `lcs_dp` and
`brute_force_matches` are the plain dynamic-programming reference that the tests and the benchmark
compare against.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import numpy as np
from rapidfuzz.distance import LCSseq


def _exact(value: float) -> Fraction:
    return Fraction(repr(value))


@dataclass(frozen=True)
class Rule:
    """The rule's four settings: what the index and the reference take (never a config section)."""

    mode: Literal["window", "document"] = "window"
    window_factor: float = 2.0
    min_tokens: int = 13
    ratio: float = 0.6

    def __post_init__(self) -> None:
        # A window shorter than its item would break the index's bounds (window >= item tokens).
        if (
            self.mode not in ("window", "document")
            or self.window_factor < 1
            or self.min_tokens < 1
            or not 0 < self.ratio <= 1
        ):
            raise ValueError(f"invalid contamination rule {self}")

    def required(self, train_tokens: int, item_tokens: int) -> int:
        """The smallest LCS that makes (s_t, s_e) contaminated, for these lengths."""
        return max(self.min_tokens, math.ceil(_exact(self.ratio) * min(train_tokens, item_tokens)))

    def window(self, item_tokens: int) -> int:
        """w = ceil(window_factor x |s_e|)."""
        return math.ceil(_exact(self.window_factor) * item_tokens)

    # The same for arrays of item lengths, in exact integer arithmetic (a Fraction per item cost
    # ~1 s on 35k items).
    def required_alone(self, item_tokens: np.ndarray) -> np.ndarray:
        """`required(n, n)` for each item length n."""
        ratio = _exact(self.ratio)
        return np.maximum(self.min_tokens, -(-item_tokens * ratio.numerator // ratio.denominator))

    def windows(self, item_tokens: np.ndarray) -> np.ndarray:
        """`window(n)` for each item length n."""
        factor = _exact(self.window_factor)
        return -(-item_tokens * factor.numerator // factor.denominator)


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


def brute_force_matches(doc: Sequence[Hashable], items: Sequence[Sequence[Hashable]], rule: Rule) -> dict[int, int]:
    """{item index: best LCS over the document's windows} for every contaminating item, trying
    every window of every pair with `lcs_dp`, straight from the rule's wording."""
    found = {}
    for index, item in enumerate(items):
        if rule.mode == "document":
            windows = [doc]
        else:
            w = math.ceil(Fraction(str(rule.window_factor)) * len(item))
            windows = [doc[s : s + w] for s in range(max(1, len(doc) - w + 1))]
        best = 0
        for window in windows:
            lcs = lcs_dp(window, item)
            if lcs >= rule.min_tokens and lcs >= Fraction(str(rule.ratio)) * min(len(window), len(item)):
                best = max(best, lcs)
        if best:
            found[index] = best
    return found
