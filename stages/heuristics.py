"""Heuristic quality filters as YAML presets over datatrove's own Gopher, C4 and FineWeb filters.

`filters: [gopher_quality, {name: c4_quality, params: {filter_curly_bracket: false}}]` builds each
datatrove filter with its defaults overridden by `params`; every drop goes to rejected/<preset>/.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from datatrove.pipeline.filters import (
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
)
from datatrove.pipeline.filters.base_filter import BaseFilter

from pipeline.config import FilterSpec
from pipeline.errors import ConfigError
from pipeline.docio import RejectWriter

FILTER_CLASSES: dict[str, type[BaseFilter]] = {
    "gopher_quality": GopherQualityFilter,
    "gopher_repetition": GopherRepetitionFilter,
    "c4_quality": C4QualityFilter,
    "fineweb_quality": FineWebQualityFilter,
}


def preset_name(spec: str | FilterSpec) -> str:
    return spec if isinstance(spec, str) else spec.name


def build_filter(spec: str | FilterSpec, rejected_dir: str | Path) -> BaseFilter:
    """One datatrove filter from a preset name or {name, params}; unknown params are a config error."""
    name = preset_name(spec)
    params = {} if isinstance(spec, str) else dict(spec.params)
    cls = FILTER_CLASSES[name]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "exclusion_writer"}
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise ConfigError(
            f"filters.{name}.params: unknown parameter(s) {', '.join(unknown)}; "
            f"{cls.__name__} accepts: {', '.join(sorted(accepted))}"
        )
    return cls(**params, exclusion_writer=RejectWriter(rejected_dir, name))
