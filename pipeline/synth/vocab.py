"""The synthetic corpus's words: configs/synth/*.yaml loaded once, and the vectorised template filler.

Templates have named slots (`{n}`, `{a}`...); `Vocabulary` holds every pool of every domain in one
array so that a whole document's slot words are drawn with a few numpy operations, and `Writer`
draws one domain's sentences from the shared and the domain's templates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import numpy as np
import yaml

from pipeline.config import CONFIGS_DIR

SYNTH_DIR = CONFIGS_DIR / "synth"
BORROW_SHARE = 0.1  # share of domain slots filled from another domain's pool: domains overlap, as on the web
BORROWABLE_SLOTS = ("n", "a", "v", "e")  # the slots every domain has
DEFAULT_WEIGHT = 3.0
DEFAULT_EDU_PRIOR = 2.5
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C parser, where PyYAML was built with it

Mix = tuple[float, int]  # (share of domain slots borrowed, from which domain index; -1: any)
NO_MIX: Mix = (BORROW_SHARE, -1)


@cache
def load_data(name: str) -> Any:
    """configs/synth/<name>.yaml, parsed once per process. Callers must not mutate the result."""
    with open(SYNTH_DIR / f"{name}.yaml", encoding="utf-8") as fh:
        return yaml.load(fh, Loader=_Loader)


@dataclass(frozen=True)
class DomainStyle:
    """One domain's word pools and templates, its share and educational prior, the domain a teacher
    confuses it with, and the name of its optional block (pipeline/synth/styles.BLOCKS)."""

    pools: dict[str, list[str]]
    templates: tuple[str, ...]
    title: str = ""
    block: str | None = None
    weight: float = DEFAULT_WEIGHT
    edu_prior: float = DEFAULT_EDU_PRIOR
    confusable: str | None = None


def _shared_pools() -> dict[str, list[str]]:
    data = load_data("shared")
    pools = {slot: list(words) for slot, words in data["pools"].items()}
    for slot, (low, high) in data["number_ranges"].items():
        pools[slot] = [str(i) for i in range(low, high + 1)]
    return pools


SHARED_POOLS: dict[str, list[str]] = _shared_pools()
SHARED_TEMPLATES: dict[str, tuple[str, ...]] = {
    group: tuple(load_data("shared")["templates"][group]) for group in ("neutral", "edu", "filler")
}


def pick(rng: np.random.Generator, items: list[str] | tuple[str, ...]) -> str:
    return items[int(rng.integers(len(items)))]


@lru_cache(maxsize=4096)
def compile_template(template: str) -> tuple[str, tuple[str, ...]]:
    """'{a} {n}.' -> ('{} {}.', ('a', 'n')): slots are filled positionally, which is fast."""
    slots = tuple(re.findall(r"\{(\w+)\}", template))
    return re.sub(r"\{(\w+)\}", "{}", template), slots


class Vocabulary:
    """All word pools in one object array, addressed by (domain, slot) -> (offset, length), so that
    one doc's slot words are drawn with a handful of vectorised numpy operations."""

    def __init__(self, styles: dict[str, DomainStyle]):
        self.domains = list(styles)
        slot_names = sorted(set(SHARED_POOLS) | {s for st in styles.values() for s in st.pools})
        self.slot_index = {s: i for i, s in enumerate(slot_names)}
        words: list[str] = []
        self.offsets = np.zeros((len(self.domains), len(slot_names)), dtype=np.int64)
        self.lengths = np.zeros_like(self.offsets)
        shared_at = {}
        for name, pool in SHARED_POOLS.items():
            shared_at[name] = (len(words), len(pool))
            words.extend(pool)
        for d, style in enumerate(styles.values()):
            for name, j in self.slot_index.items():
                if name in shared_at:
                    self.offsets[d, j], self.lengths[d, j] = shared_at[name]
                elif name in style.pools:
                    self.offsets[d, j], self.lengths[d, j] = len(words), len(style.pools[name])
                    words.extend(style.pools[name])
                else:  # a slot this domain lacks borrows the general nouns
                    self.offsets[d, j], self.lengths[d, j] = shared_at["g"]
        self.words = np.array(words, dtype=object)
        self.flat_offsets, self.flat_lengths = self.offsets.ravel(), self.lengths.ravel()
        self.borrowable = np.array([s in BORROWABLE_SLOTS for s in slot_names])

    def draw(self, rng: np.random.Generator, domain: int, slots: np.ndarray, mix: Mix = NO_MIX) -> list[str]:
        """Words for `slots`; a share `mix[0]` of the domain slots come from domain `mix[1]` (-1: any)."""
        n = len(slots)
        u = rng.random(2 * n)
        pick_u, borrow = u[:n], u[n:]
        share, other = mix
        # A borrow draw below `share` is itself uniform on [0, share): rescaled, it picks the domain.
        source = (borrow * (len(self.domains) / share)).astype(np.int64) if other < 0 else other
        doms = np.where((borrow < share) & self.borrowable[slots], source, domain)
        cell = doms * self.offsets.shape[1] + slots
        idx = self.flat_offsets[cell] + (pick_u * self.flat_lengths[cell]).astype(np.int64)
        return self.words[idx].tolist()


class Writer:
    """Draws English sentences for one domain from compiled templates."""

    def __init__(self, vocab: Vocabulary, domain: str, style: DomainStyle):
        self.vocab = vocab
        self.domain = vocab.domains.index(domain)
        self.style = style
        self.templates: list[tuple[str, np.ndarray]] = []
        self.group: list[str] = []
        for name, templates in (*SHARED_TEMPLATES.items(), ("domain", style.templates)):
            for t in templates:
                fmt, slots = compile_template(t)
                self.templates.append((fmt, np.array([vocab.slot_index[s] for s in slots], dtype=np.int64)))
                self.group.append(name)

    def fill(self, rng: np.random.Generator, text: str, mix: Mix = NO_MIX) -> str:
        fmt, slots = compile_template(text)
        slot_ids = np.array([self.vocab.slot_index[s] for s in slots], dtype=np.int64)
        return fmt.format(*self.vocab.draw(rng, self.domain, slot_ids, mix))

    def sentences(self, rng: np.random.Generator, count: int, dims: dict[str, float], mix: Mix = NO_MIX) -> list[str]:
        """`count` sentences; templates are drawn without replacement (Gumbel top-k) within a pass,
        so a document repeats no template until it has used them all. Quality shows in the mix:
        explanatory sentences grow with educational_value, filler shrinks with information_density."""
        edu = dims.get("educational_value", 2.5)
        density = dims.get("information_density", 2.5)
        weight = {"neutral": 1.0, "edu": 0.15 + edu / 5 * 1.6, "filler": 0.05 + (5 - density) / 5 * 1.2, "domain": 1.6}
        logw = np.log(np.array([weight[g] for g in self.group]))
        order: list[int] = []
        while len(order) < count:
            keys = logw - np.log(-np.log(rng.random(len(logw))))
            order.extend(np.argsort(-keys)[: count - len(order)].tolist())
        chosen = [self.templates[i] for i in order]
        words = self.vocab.draw(rng, self.domain, np.concatenate([s for _, s in chosen]), mix)
        out = []
        pos = 0
        for fmt, slots in chosen:
            s = fmt.format(*words[pos : pos + len(slots)])
            pos += len(slots)
            out.append(s[0].upper() + s[1:])
        if dims.get("writing_quality", 3.0) < 2.0:  # sloppy writing: lowercase sentence starts, as careless posts do
            out = [s[0].lower() + s[1:] if rng.random() < 0.6 else s for s in out]
        return out
