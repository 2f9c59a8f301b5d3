"""Heuristic quality filters as YAML presets over datatrove's Gopher, C4 and FineWeb filters, per language.

`filters: [gopher_quality, {name: c4_quality, params: {filter_curly_bracket: false}}]` names the presets
and their order. Each listed language (`langid.languages`) builds every preset as the datatrove filter
with its own word tokenizer and parameters: datatrove's defaults, then configs/languages/<code>.yaml,
then the preset's `params`, then `langid.overrides.<code>.<preset>`. With langid off every document gets
English defaults. Every drop goes to rejected/<preset>/.
"""

from __future__ import annotations

import inspect
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters import (
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
)
from datatrove.pipeline.filters.base_filter import BaseFilter

from pipeline.config import LANGUAGES_DIR, FilterSpec, LangIdConfig
from pipeline.docio import RejectWriter
from pipeline.errors import ConfigError
from stages.fused_heuristics import HeuristicFilters, Implementation, LanguageRules
from stages.langid import LanguageFilter, LanguageTagger

FILTER_CLASSES: dict[str, type[BaseFilter]] = {
    "gopher_quality": GopherQualityFilter,
    "gopher_repetition": GopherRepetitionFilter,
    "c4_quality": C4QualityFilter,
    "fineweb_quality": FineWebQualityFilter,
}
ENGLISH = "en"


def preset_name(spec: str | FilterSpec) -> str:
    return spec if isinstance(spec, str) else spec.name


def _checked(cls: type[BaseFilter], params: dict[str, Any], key: str) -> dict[str, Any]:
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "exclusion_writer"}
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise ConfigError(
            f"{key}: unknown parameter(s) {', '.join(unknown)}; {cls.__name__} accepts: {', '.join(sorted(accepted))}"
        )
    return params


@cache
def language_settings(code: str) -> dict[str, Any]:
    """configs/languages/<code>.yaml: `tokenizer` (datatrove's word tokenizer key) and `filters` params."""
    return yaml.safe_load((LANGUAGES_DIR / f"{code}.yaml").read_text())


def language_rules(code: str, filters: list[str | FilterSpec], overrides: dict[str, dict[str, Any]]) -> LanguageRules:
    """The presets of one language, in order, as datatrove filters built with its tokenizer and parameters."""
    settings = language_settings(code)
    chain: list[tuple[str, BaseFilter]] = []
    for spec in filters:
        name = preset_name(spec)
        cls = FILTER_CLASSES[name]
        params = dict(settings["filters"].get(name, {}))
        if isinstance(spec, FilterSpec):
            params |= _checked(cls, dict(spec.params), f"filters.{name}.params")
        params |= _checked(cls, dict(overrides.get(name, {})), f"langid.overrides.{code}.{name}")
        params.setdefault("language", settings["tokenizer"])
        chain.append((name, cls(**params)))
    return LanguageRules(settings["tokenizer"], chain)


def build_heuristic_steps(
    filters: list[str | FilterSpec],
    langid: LangIdConfig,
    rejected_dir: str | Path,
    implementation: Implementation = "fused",
) -> list[PipelineStep]:
    """P1's deciding steps after the reader: language ID and its filter (if enabled), then one step for
    all heuristic presets, each document filtered with its own language's rules."""
    steps: list[PipelineStep] = []
    if langid.enabled:
        steps += [LanguageTagger(), LanguageFilter(langid, RejectWriter(rejected_dir, "langid"))]
    if not filters:
        return steps
    languages = langid.languages if langid.enabled else [ENGLISH]
    rules = {code: language_rules(code, filters, langid.overrides.get(code, {})) for code in languages}
    writers = {preset_name(spec): RejectWriter(rejected_dir, preset_name(spec)) for spec in filters}
    default = ENGLISH if ENGLISH in rules else languages[0]
    steps.append(HeuristicFilters(rules, default, writers, langid.enabled, implementation))
    return steps
