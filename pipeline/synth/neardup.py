"""Near-duplicate groups: which clean documents are copies of which, and the word edits that make a
copy near rather than exact."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DUP_EDIT_RATES = (0.0, 0.01, 0.03, 0.05, 0.1, 0.2)
GROUP_SIZES = (2, 6)  # inclusive


@dataclass(frozen=True)
class DupGroups:
    """copy index -> base index, member -> group id, member -> edit rate (0 for the base)."""

    dup_of: dict[int, int]
    group_of: dict[int, int]
    rate_of: dict[int, float]
    count: int


def dup_groups(rng: np.random.Generator, clean: np.ndarray, members: int) -> DupGroups:
    """Draw `members` of the `clean` indices into groups of 2-6; the lowest index of a group is its
    base (written first, rate 0) and every other member a copy with a rate from DUP_EDIT_RATES."""
    chosen = rng.permutation(clean)[:members]
    dup_of: dict[int, int] = {}
    group_of: dict[int, int] = {}
    rate_of: dict[int, float] = {}
    pos = 0
    group = 0
    while len(chosen) - pos >= 2:
        size = min(int(rng.integers(GROUP_SIZES[0], GROUP_SIZES[1] + 1)), len(chosen) - pos)
        block = np.sort(chosen[pos : pos + size])
        pos += size
        base = int(block[0])
        group_of[base], rate_of[base] = group, 0.0
        for copy in block[1:]:
            dup_of[int(copy)] = base
            group_of[int(copy)] = group
            rate_of[int(copy)] = float(DUP_EDIT_RATES[int(rng.integers(len(DUP_EDIT_RATES)))])
        group += 1
    return DupGroups(dup_of, group_of, rate_of, group)


def edit_words(rng: np.random.Generator, text: str, rate: float, pool: list[str]) -> str:
    """Apply round(rate x words) word edits (substitute, insert or delete, equally likely) at distinct
    positions. Only plain alphabetic tokens are touched, so line and paragraph breaks survive."""
    tokens = text.split(" ")
    editable = np.flatnonzero([t.isalpha() for t in tokens])
    n_edits = min(len(editable), int(round(rate * len(tokens))))
    if n_edits == 0:
        return text
    positions = rng.choice(editable, size=n_edits, replace=False)
    ops = rng.integers(3, size=n_edits)
    words = rng.integers(len(pool), size=n_edits)
    edits = {int(p): (int(o), pool[int(w)]) for p, o, w in zip(positions, ops, words)}
    out = []
    for i, tok in enumerate(tokens):
        op = edits.get(i)
        if op is None:
            out.append(tok)
        elif op[0] == 0:
            out.append(op[1])
        elif op[0] == 1:
            out.extend((tok, op[1]))
        # op 2: delete
    return " ".join(out)
