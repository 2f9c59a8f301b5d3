"""P6 sampling rates per group (stages/groups.py) toward a target mixture, and the P7 deterministic sampler.

A group's rate r = k + f means k whole copies of every document plus one more copy with
probability f (uniform selection) or for the best documents carrying a fraction f of the group's
tokens (quality selection). Upsampling is capped at `max_repeats` epochs, after "Scaling
Data-Constrained Language Models" (Muennighoff et al. 2023): up to ~4 repeats are almost as good
as fresh data. Every random choice hashes (seed, doc id, repeat index), so the mixture does not
depend on how documents are sharded or ordered.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from time import perf_counter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from pipeline.config import SHARE_TOLERANCE, MixtureConfig
from pipeline.docio import MISSING_QUALITY, RejectWriter, doc_quality, write_json_atomic
from pipeline.errors import ConfigError
from stages.checkpoint import TaskStats
from stages.groups import UNKNOWN, Grouping, input_file, match_key

_HASH_RANGE = 2**64
# Metadata key of a mixture copy's group values ({group key: value}): the writer's partition folders.
GROUP_METADATA = "mix_group"
# Histogram of quality scores (0-5) in half-point bins, for the domain-mix report.
QUALITY_EDGES = np.linspace(0.0, 5.0, 11)


def unit_hash(seed: int, doc_id: str, repeat: int) -> int:
    """64-bit hash of (seed, document id, repeat index): the only source of randomness."""
    return xxhash.xxh64_intdigest(f"{seed}\x1f{doc_id}\x1f{repeat}".encode())


def quality_histogram(quality: np.ndarray) -> dict[str, list[int] | int]:
    """Counts per half-point bin over [0, 5] and the number of unscored documents."""
    scored = quality[quality != MISSING_QUALITY]
    counts, _ = np.histogram(np.clip(scored, 0.0, 5.0), bins=QUALITY_EDGES)
    return {"counts": counts.tolist(), "missing": int(quality.size - scored.size)}


@dataclass(frozen=True)
class Rates:
    """Outcome of the rate computation: what each group gets and what could not be honoured."""

    rates: dict[str, float]
    target_shares: dict[str, float]
    warnings: list[str]
    # Why a group's target could not be met, per group (shown beside it in the reports).
    notes: dict[str, str] = field(default_factory=dict)


def _infeasible(message: str, strict: bool, warnings: list[str], key: str) -> None:
    if strict:
        raise ConfigError(f"{message} ({key}.strict is true; fix the mixture or set it to false)")
    warnings.append(message)


def _multiplier_rates(
    tokens: dict[str, int], config: MixtureConfig, key: str, warnings: list[str], notes: dict[str, str]
) -> dict[str, float]:
    present = [g for g, t in tokens.items() if t > 0]
    for name in sorted(k for k in config.multipliers if not any(match_key(g, [k]) for g in present)):
        warnings.append(f"{key}.multipliers.{name}: no documents in group {name!r}; the multiplier has no effect")
    rates = {}
    for group in tokens:
        matched = match_key(group, config.multipliers)
        rates[group] = config.default_multiplier if matched is None else config.multipliers[matched]
    if config.token_budget is not None:
        natural = sum(rates[g] * t for g, t in tokens.items())
        if natural > 0:
            rates = {g: r * config.token_budget / natural for g, r in rates.items()}
    for group in sorted(rates):
        if rates[group] > config.max_repeats:
            _infeasible(
                f"group {group!r} needs sampling rate {rates[group]:.3g}, above {key}.max_repeats = "
                f"{config.max_repeats:g}; closest feasible: rate {config.max_repeats:g} for {group!r}"
                + (f" (the output falls short of {key}.token_budget)" if config.token_budget else ""),
                config.strict,
                warnings,
                key,
            )
            notes[group] = f"capped at {key}.max_repeats = {config.max_repeats:g} (needed rate {rates[group]:.3g})"
            rates[group] = float(config.max_repeats)
    return rates


def _share_rates(
    tokens: dict[str, int], config: MixtureConfig, key: str, warnings: list[str], notes: dict[str, str]
) -> dict[str, float]:
    # Each share key takes the groups it names (or matches); groups no key takes share what the
    # keys leave, in their natural proportions.
    members: dict[str, list[str]] = {k: [] for k in config.shares}
    rest: list[str] = []
    for group in sorted(tokens):
        matched = match_key(group, config.shares)
        (members[matched] if matched is not None else rest).append(group)
    total_share = sum(config.shares.values())  # validated by MixtureConfig: >= 0 each, at most 1 in all
    sets: dict[str, tuple[list[str], float]] = {k: (members[k], s) for k, s in sorted(config.shares.items()) if s > 0}
    rest_share = max(0.0, 1.0 - total_share)
    if rest_share > SHARE_TOLERANCE:
        sets[f"(groups not in {key}.shares)"] = (rest, rest_share)
    elif rest:
        warnings.append(f"{key}.shares sum to 1, so groups not named get no tokens: {', '.join(rest)}")
        notes.update(dict.fromkeys(rest, f"not in {key}.shares, which sum to 1"))
    set_tokens = {k: sum(tokens.get(g, 0) for g in groups) for k, (groups, _) in sets.items()}
    empty = [k for k in sets if set_tokens[k] == 0]
    if empty:
        kept = {k: s for k, (_, s) in sets.items() if k not in empty}
        norm = sum(kept.values())
        closest = {k: round(s / norm, 4) for k, s in kept.items()} if norm > 0 else {}
        _infeasible(
            f"{key}.shares: no documents of {', '.join(repr(k) for k in empty)} reached the mixture; "
            f"closest feasible mix: {closest}",
            config.strict,
            warnings,
            key,
        )
        sets = {k: (groups, s / norm) for k, (groups, s) in sets.items() if k not in empty}
    rates = {g: 0.0 for g in tokens}
    if not sets:
        return rates
    # The largest output meeting every share: the set that runs out first (at max_repeats) decides.
    limits = {k: config.max_repeats * set_tokens[k] / s for k, (_, s) in sets.items()}
    binding = min(limits, key=lambda k: (limits[k], k))
    budget = limits[binding]
    if config.token_budget is not None:
        if config.token_budget > budget:
            _infeasible(
                f"{key}.token_budget = {config.token_budget:,} needs {binding!r} above {key}.max_repeats = "
                f"{config.max_repeats:g}; closest feasible: token_budget {int(budget):,}",
                config.strict,
                warnings,
                key,
            )
            for group in sets[binding][0]:
                notes[group] = (
                    f"at {key}.max_repeats = {config.max_repeats:g}: too few tokens for {key}.token_budget "
                    f"= {config.token_budget:,}, so the output is {int(budget):,} tokens"
                )
        else:
            budget = float(config.token_budget)
    for k, (groups, share) in sets.items():
        for g in groups:
            rates[g] = min(config.max_repeats, share * budget / set_tokens[k])
    return rates


def sampling_rates(tokens: dict[str, int], config: MixtureConfig, key: str = "mixture") -> Rates:
    """One sampling rate per group from its token count and the target (pure; no I/O).

    Infeasible targets are moved to the closest feasible mix with a warning, or raise
    `ConfigError` when `config.strict`. `key` is the config section named in messages.
    """
    warnings: list[str] = []
    notes: dict[str, str] = {}
    if config.mode == "shares":
        rates = _share_rates(tokens, config, key, warnings, notes)
    else:
        rates = _multiplier_rates(tokens, config, key, warnings, notes)
    output = sum(rates[g] * t for g, t in tokens.items())
    target_shares = {g: (rates[g] * t / output if output else 0.0) for g, t in tokens.items()}
    return Rates(rates=rates, target_shares=target_shares, warnings=warnings, notes=notes)


@dataclass(frozen=True)
class Cutoff:
    """Keep the extra copy of a document iff quality > `quality`, or == `quality` and hash <= `tie_hash`."""

    quality: float
    tie_hash: int


def quality_cutoff(
    quality: np.ndarray, tokens: np.ndarray, ids: list[str], target_tokens: float, seed: int, repeat: int
) -> Cutoff:
    """The exact quality cutoff whose kept documents carry the token count closest to `target_tokens`.

    Documents are taken best quality first; within the quality level the target falls in, in
    hash order, so the target is met to within one document.
    """
    levels, inverse = np.unique(-quality, return_inverse=True)  # best quality first
    level_tokens = np.bincount(inverse, weights=tokens, minlength=levels.size)
    above = np.concatenate(([0.0], np.cumsum(level_tokens)))
    level = int(np.searchsorted(above[1:], target_tokens, side="left"))
    if level >= levels.size:  # the target covers the whole domain
        return Cutoff(quality=float(-levels[-1]), tie_hash=_HASH_RANGE - 1)
    members = np.flatnonzero(inverse == level)
    hashes = np.array([unit_hash(seed, ids[i], repeat) for i in members], dtype=np.uint64)
    order = np.argsort(hashes, kind="stable")
    cumulative = above[level] + np.concatenate(([0.0], np.cumsum(tokens[members][order])))
    take = int(np.argmin(np.abs(cumulative - target_tokens)))
    tie_hash = -1 if take == 0 else int(hashes[order[take - 1]])
    return Cutoff(quality=float(-levels[level]), tie_hash=tie_hash)


def copy_count(rate: float, cutoff: Cutoff | None, seed: int, doc_id: str, quality: float) -> int:
    """How many copies of a document the mixture gets (0 = sampled away)."""
    whole = math.floor(rate)
    fraction = rate - whole
    if fraction <= 0:
        return whole
    if cutoff is not None:
        extra = quality > cutoff.quality or (
            quality == cutoff.quality and unit_hash(seed, doc_id, whole) <= cutoff.tie_hash
        )
    else:
        extra = unit_hash(seed, doc_id, whole) < fraction * _HASH_RANGE
    return whole + int(extra)


@dataclass
class GroupSampling:
    values: list[str]  # the group's value per `group_by` key
    docs: int
    tokens: int
    rate: float
    target_share: float
    target_tokens: float
    cutoff: Cutoff | None
    quality_hist: dict = field(default_factory=dict)
    note: str | None = None  # why the group's target could not be met


@dataclass
class Sampling:
    """The P6 output every P7 task reads: one rate (and optional quality cutoff) per group."""

    mode: str
    selection: str
    seed: int
    max_repeats: float
    token_budget: int | None
    grouping: dict[str, Any]
    groups: dict[str, GroupSampling]
    warnings: list[str]

    def to_json(self, path: str | os.PathLike) -> None:
        write_json_atomic(path, asdict(self))

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> Sampling:
        raw = json.loads(Path(path).read_text())
        groups = {
            g: GroupSampling(**{**p, "cutoff": None if p["cutoff"] is None else Cutoff(**p["cutoff"])})
            for g, p in raw.pop("groups").items()
        }
        return cls(groups=groups, **raw)

    @cached_property
    def group_by(self) -> Grouping:
        return Grouping.from_dict(self.grouping)


def read_stats(stats_dir: str | os.PathLike) -> pa.Table:
    files = sorted(Path(stats_dir).glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no token stats (*.parquet) in {stats_dir}: run the token-count phase (P5) first")
    return pa.concat_tables(pq.read_table(f) for f in files)


def _field_values(docs_dir: Path, field_name: str) -> dict[str, str]:
    """id -> the input field `field_name` of every clean document (metadata column only, no text)."""
    values: dict[str, str] = {}
    for path in sorted(docs_dir.glob("*.parquet")):
        table = pq.read_table(path, columns=["id", "metadata"])
        for doc_id, raw in zip(table.column("id").to_pylist(), table.column("metadata").to_pylist()):
            values[doc_id] = Grouping((), (), (), field_name).doc_source(json.loads(raw))
    return values


def group_values(stats: pa.Table, grouping: Grouping, docs_dir: str | os.PathLike | None) -> list[tuple[str, ...]]:
    """The group values of every stats row (P6), through the same function P7 uses on metadata."""
    names = ("id", "domain", "language", "source", "quality", "tokens")
    columns = {name: stats.column(name).to_pylist() for name in names}
    sources = columns["source"]
    if "source" in grouping.keys:
        if grouping.source_field is None:
            sources = [input_file(s) for s in sources]
        else:
            if docs_dir is None:
                raise ValueError("group_by source with a source_field needs the clean documents folder")
            field_values = _field_values(Path(docs_dir), grouping.source_field)
            sources = [field_values.get(doc_id, UNKNOWN) for doc_id in columns["id"]]
    rows = zip(columns["domain"], columns["language"], sources, columns["quality"], columns["tokens"])
    return [grouping.values(*row) for row in rows]


def compute_sampling(
    stats_dir: str | os.PathLike, config: MixtureConfig, docs_dir: str | os.PathLike | None = None, key: str = "mixture"
) -> Sampling:
    """P6: per-group rates (and quality cutoffs) from the token stats of every P5 task.

    `docs_dir` (P5's clean documents) is read only to group by an input field (`source_field`).
    """
    stats = read_stats(stats_dir)
    grouping = Grouping.from_config(config)
    tokens = stats.column("tokens").to_numpy()
    quality = stats.column("quality").to_numpy()
    values = group_values(stats, grouping, docs_dir)
    labels = [grouping.name(v) for v in values]
    names, inverse = np.unique(np.array(labels, dtype=str), return_inverse=True)
    group_tokens = np.bincount(inverse, weights=tokens, minlength=names.size).astype(np.int64)
    group_docs = np.bincount(inverse, minlength=names.size)
    rates = sampling_rates({str(g): int(t) for g, t in zip(names, group_tokens)}, config, key)
    ids = stats.column("id")
    plans: dict[str, GroupSampling] = {}
    for index, name in enumerate(names.tolist()):
        rate = rates.rates[name]
        members = np.flatnonzero(inverse == index)
        fraction = rate - math.floor(rate)
        cutoff = None
        if config.selection == "quality" and fraction > 0:
            cutoff = quality_cutoff(
                quality[members],
                tokens[members].astype(np.float64),
                pc.take(ids, pa.array(members)).to_pylist(),
                fraction * group_tokens[index],
                config.seed,
                math.floor(rate),
            )
        plans[name] = GroupSampling(
            values=list(values[members[0]]),
            docs=int(group_docs[index]),
            tokens=int(group_tokens[index]),
            rate=rate,
            target_share=rates.target_shares[name],
            target_tokens=rate * int(group_tokens[index]),
            cutoff=cutoff,
            quality_hist=quality_histogram(quality[members]),
            note=rates.notes.get(name),
        )
    return Sampling(
        mode=config.mode,
        selection=config.selection,
        seed=config.seed,
        max_repeats=config.max_repeats,
        token_budget=config.token_budget,
        grouping=asdict(grouping),
        groups=plans,
        warnings=rates.warnings,
    )


def repeat_id(doc_id: str, repeat: int) -> str:
    """Copy ids: the original id for the first copy, "<id>#r<k>" for the k-th repeat."""
    return doc_id if repeat == 0 else f"{doc_id}#r{repeat}"


class MixtureSampler(PipelineStep):
    """P7: emits each document 0..k+1 times per the plan, each copy with its `repeat` index.

    A document sampled away goes to the exclusion writer (RUN/rejected/rebalance/, reason
    "downsampled") so that every input document still ends in exactly one place.
    """

    name = "🎚 Mixture sampler"
    type = "🔻 - FILTER"

    def __init__(self, plan: Sampling | str | os.PathLike, exclusion_writer: RejectWriter | None = None):
        """`plan`: the P6 plan, or its JSON file (read in the worker, so the step can be built
        before P6 has run, e.g. by the preflight check)."""
        super().__init__()
        self._plan_source = plan
        self.exclusion_writer = exclusion_writer

    @property
    def plan(self) -> Sampling:
        if not isinstance(self._plan_source, Sampling):
            self._plan_source = Sampling.from_json(self._plan_source)
        return self._plan_source

    def _group(self, doc: Document) -> tuple[str, tuple[str, ...], GroupSampling]:
        grouping = self.plan.group_by
        values = grouping.doc_values(doc.metadata)
        name = grouping.name(values)
        plan = self.plan.groups.get(name)
        if plan is None:
            raise ValueError(f"document {doc.id!r} is in group {name!r}, absent from the P6 plan: rerun P5 and P6")
        return name, values, plan

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        keys = self.plan.group_by.keys
        with self.exclusion_writer or nullcontext() as writer, TaskStats(self) as stats:
            for doc in data:
                start = perf_counter()
                name, values, plan = self._group(doc)
                copies = copy_count(plan.rate, plan.cutoff, self.plan.seed, doc.id, doc_quality(doc.metadata))
                stats.seconds += perf_counter() - start
                if copies == 0:
                    stats.counts["dropped_downsampled"] += 1
                    if writer is not None:
                        doc.metadata["filter_reason"] = "downsampled"
                        doc.metadata["reject_details"] = {"group": name, "rate": plan.rate}
                        writer.write(doc, rank)
                    continue
                stats.counts["upsampled_copies"] += copies - 1
                partition = dict(zip(keys, values))
                for repeat in range(copies):
                    yield Document(
                        text=doc.text,
                        id=repeat_id(doc.id, repeat),
                        metadata={**doc.metadata, "repeat": repeat, GROUP_METADATA: partition},
                    )
