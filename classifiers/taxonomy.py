"""The domain taxonomy and the quality rubric, loaded from configs/taxonomy/*.yaml (the source of truth)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from pipeline.config import CONFIGS_DIR
from pipeline.errors import ConfigError

DEFAULT_DOMAINS = CONFIGS_DIR / "taxonomy" / "domains.yaml"
DEFAULT_RUBRIC = CONFIGS_DIR / "taxonomy" / "quality.yaml"
SCORE_LABELS = ("0", "1", "2", "3", "4", "5")


@dataclass(frozen=True)
class Domain:
    id: str
    letter: str
    description: str


@dataclass(frozen=True)
class Dimension:
    id: str
    weight: float
    description: str


@dataclass(frozen=True)
class Taxonomy:
    domains: tuple[Domain, ...]

    @property
    def letters(self) -> tuple[str, ...]:
        return tuple(d.letter for d in self.domains)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(d.id for d in self.domains)

    def by_letter(self) -> dict[str, str]:
        return {d.letter: d.id for d in self.domains}


@dataclass(frozen=True)
class Rubric:
    dimensions: tuple[Dimension, ...]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(d.id for d in self.dimensions)

    def aggregate(self, scores: dict[str, float]) -> float:
        """Weighted mean of the dimensions present (weights renormalised over them)."""
        pairs = [(d.weight, scores[d.id]) for d in self.dimensions if d.id in scores]
        total = sum(w for w, _ in pairs)
        return sum(w * s for w, s in pairs) / total if total else float("nan")


def _load_list(path: Path, key: str) -> list[dict]:
    try:
        tree = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read taxonomy file {path}: {exc.strerror}") from exc
    items = tree.get(key) if isinstance(tree, dict) else None
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{path}: expected a non-empty list under '{key}'")
    return items


def load_taxonomy(path: str | Path = DEFAULT_DOMAINS) -> Taxonomy:
    domains = []
    for i, item in enumerate(_load_list(Path(path), "domains")):
        missing = {"id", "letter", "description"} - set(item)
        if missing:
            raise ConfigError(f"{path}: domains[{i}] lacks {', '.join(sorted(missing))}")
        letter = str(item["letter"])
        # The teacher answers with exactly one token: a single character is one token in every BPE vocab.
        if len(letter) != 1:
            raise ConfigError(f"{path}: domains[{i}].letter must be one character, found {letter!r}")
        domains.append(Domain(str(item["id"]), letter, str(item["description"]).strip()))
    for field in ("id", "letter"):
        values = [getattr(d, field) for d in domains]
        if len(set(values)) != len(values):
            raise ConfigError(f"{path}: domain {field}s must be unique")
    return Taxonomy(tuple(domains))


def load_rubric(path: str | Path = DEFAULT_RUBRIC) -> Rubric:
    dims = []
    for i, item in enumerate(_load_list(Path(path), "dimensions")):
        missing = {"id", "weight", "description"} - set(item)
        if missing:
            raise ConfigError(f"{path}: dimensions[{i}] lacks {', '.join(sorted(missing))}")
        weight = float(item["weight"])
        if weight < 0:
            raise ConfigError(f"{path}: dimensions[{i}].weight must be >= 0, found {weight}")
        dims.append(Dimension(str(item["id"]), weight, " ".join(str(item["description"]).split())))
    if len({d.id for d in dims}) != len(dims):
        raise ConfigError(f"{path}: dimension ids must be unique")
    return Rubric(tuple(dims))
