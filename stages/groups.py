"""Mixture groups: the key a mixture samples by, from `mixture.group_by` (domain, language, source,
quality bucket, length bucket) and the user's bin edges.

P6 computes a group from a document's P5 stats row and P7 from its metadata, through the same
`Grouping.values`, so the plan and the sampler can never disagree on where a document belongs.
A group's name is its values joined by "/" in `group_by` order ("code/3-4"); multipliers and
shares name groups, or glob patterns over group names ("*/0-2").
"""

from __future__ import annotations

import fnmatch
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from pipeline.config import MixtureConfig
from pipeline.docio import MISSING_QUALITY, UNKNOWN_DOMAIN, doc_domain, doc_quality

UNSCORED = "unscored"
UNKNOWN = "unknown"
SEPARATOR = "/"


def bucket_labels(edges: Iterable[float]) -> list[str]:
    """[2, 3.5] -> ["0-2", "2-3.5", "3.5+"]: half-open bins [lo, hi)."""
    edges = list(edges)
    lows = [0, *edges]
    return [f"{lo:g}-{hi:g}" for lo, hi in zip(lows, edges)] + [f"{lows[-1]:g}+"]


def bucket(value: float, edges: list[float], labels: list[str]) -> str:
    return labels[bisect_right(edges, value)]


def input_file(source: str | None) -> str:
    """The input file of a "<file>:<line>" source."""
    return UNKNOWN if not source else source.rsplit(":", 1)[0]


@dataclass(frozen=True)
class Grouping:
    keys: tuple[str, ...]
    quality_bins: tuple[float, ...]
    length_bins: tuple[int, ...]
    source_field: str | None

    @classmethod
    def from_config(cls, config: MixtureConfig) -> Grouping:
        return cls(tuple(config.group_by), tuple(config.quality_bins), tuple(config.length_bins), config.source_field)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Grouping:
        return cls(tuple(raw["keys"]), tuple(raw["quality_bins"]), tuple(raw["length_bins"]), raw["source_field"])

    @cached_property
    def _quality_labels(self) -> tuple[list[float], list[str]]:
        return list(self.quality_bins), bucket_labels(self.quality_bins)

    @cached_property
    def _length_labels(self) -> tuple[list[float], list[str]]:
        return list(self.length_bins), bucket_labels(self.length_bins)

    def values(
        self, domain: str, language: str | None, source: str | None, quality: float, tokens: int
    ) -> tuple[str, ...]:
        """The group values of one document, in `keys` order."""
        fields = {
            "domain": domain or UNKNOWN_DOMAIN,
            "language": language or UNKNOWN,
            "source": source or UNKNOWN,
            "quality_bucket": UNSCORED if quality == MISSING_QUALITY else bucket(quality, *self._quality_labels),
            "length_bucket": bucket(tokens, *self._length_labels),
        }
        return tuple(fields[key] for key in self.keys)

    def doc_source(self, metadata: Mapping[str, Any]) -> str:
        if self.source_field is None:
            return input_file(metadata.get("source"))
        value = (metadata.get("input") or {}).get(self.source_field)
        return UNKNOWN if value is None else str(value)

    def doc_values(self, metadata: Mapping[str, Any]) -> tuple[str, ...]:
        """Group values from a document's metadata (P7)."""
        return self.values(
            doc_domain(metadata),
            metadata.get("language"),
            self.doc_source(metadata),
            doc_quality(metadata),
            int(metadata["token_count"]),
        )

    def name(self, values: Iterable[str]) -> str:
        return SEPARATOR.join(values)


def match_key(group: str, keys: Iterable[str]) -> str | None:
    """The multiplier or share key that applies to `group`: its exact name, else the first glob
    pattern (in the order written) that matches it."""
    keys = list(keys)
    if group in keys:
        return group
    return next((key for key in keys if fnmatch.fnmatchcase(group, key)), None)
