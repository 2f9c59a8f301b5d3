"""P6 sampling rates per domain toward a target mixture, and the P7 deterministic sampler.

A domain's rate r = k + f means k whole copies of every document plus one more copy with
probability f (uniform selection) or for the best documents carrying a fraction f of the domain's
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
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from pipeline.config import SHARE_TOLERANCE, MixtureConfig
from pipeline.errors import ConfigError
from pipeline.docio import RejectWriter, write_json_atomic
from stages.tokens import MISSING_QUALITY, doc_domain, doc_quality

_HASH_RANGE = 2**64
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
    """Outcome of the rate computation: what each domain gets and what could not be honoured."""

    rates: dict[str, float]
    target_shares: dict[str, float]
    warnings: list[str]


def _infeasible(message: str, strict: bool, warnings: list[str]) -> None:
    if strict:
        raise ConfigError(f"{message} (mixture.strict is true; fix the mixture or set it to false)")
    warnings.append(message)


def _multiplier_rates(tokens: dict[str, int], config: MixtureConfig, warnings: list[str]) -> dict[str, float]:
    for domain in sorted(set(config.multipliers) - {d for d, t in tokens.items() if t > 0}):
        warnings.append(f"mixture.multipliers.{domain}: no documents of domain {domain!r}; the multiplier has no effect")
    rates = {d: config.multipliers.get(d, config.default_multiplier) for d in tokens}
    if config.token_budget is not None:
        natural = sum(rates[d] * t for d, t in tokens.items())
        if natural > 0:
            rates = {d: r * config.token_budget / natural for d, r in rates.items()}
    for domain in sorted(rates):
        if rates[domain] > config.max_repeats:
            _infeasible(
                f"domain {domain!r} needs sampling rate {rates[domain]:.3g}, above mixture.max_repeats = "
                f"{config.max_repeats:g}; closest feasible: rate {config.max_repeats:g} for {domain!r}"
                + (" (the output falls short of mixture.token_budget)" if config.token_budget else ""),
                config.strict,
                warnings,
            )
            rates[domain] = float(config.max_repeats)
    return rates


def _share_rates(tokens: dict[str, int], config: MixtureConfig, warnings: list[str]) -> dict[str, float]:
    shares = dict(config.shares)
    total_share = sum(shares.values())  # validated by MixtureConfig: >= 0 each, at most 1 in all
    # Domains not named share what the named ones leave, in their natural proportions.
    rest = sorted(d for d in tokens if d not in shares)
    groups: dict[str, tuple[list[str], float]] = {d: ([d], s) for d, s in sorted(shares.items()) if s > 0}
    rest_share = max(0.0, 1.0 - total_share)
    if rest_share > SHARE_TOLERANCE:
        groups["(domains not in mixture.shares)"] = (rest, rest_share)
    elif rest:
        warnings.append(f"mixture.shares sum to 1, so domains not named get no tokens: {', '.join(rest)}")
    group_tokens = {g: sum(tokens.get(d, 0) for d in members) for g, (members, _) in groups.items()}
    empty = [g for g in groups if group_tokens[g] == 0]
    if empty:
        kept = {g: s for g, (_, s) in groups.items() if g not in empty}
        norm = sum(kept.values())
        closest = {g: round(s / norm, 4) for g, s in kept.items()} if norm > 0 else {}
        _infeasible(
            f"mixture.shares: no documents of {', '.join(repr(g) for g in empty)} reached the mixture; "
            f"closest feasible mix: {closest}",
            config.strict,
            warnings,
        )
        groups = {g: (members, s / norm) for g, (members, s) in groups.items() if g not in empty}
    rates = {d: 0.0 for d in tokens}
    if not groups:
        return rates
    # The largest output meeting every share: the group that runs out first (at max_repeats) decides.
    limits = {g: config.max_repeats * group_tokens[g] / s for g, (_, s) in groups.items()}
    binding = min(limits, key=lambda g: (limits[g], g))
    budget = limits[binding]
    if config.token_budget is not None:
        if config.token_budget > budget:
            _infeasible(
                f"mixture.token_budget = {config.token_budget:,} needs {binding!r} above mixture.max_repeats = "
                f"{config.max_repeats:g}; closest feasible: token_budget {int(budget):,}",
                config.strict,
                warnings,
            )
        else:
            budget = float(config.token_budget)
    for g, (members, share) in groups.items():
        for d in members:
            rates[d] = min(config.max_repeats, share * budget / group_tokens[g])
    return rates


def sampling_rates(tokens: dict[str, int], config: MixtureConfig) -> Rates:
    """One sampling rate per domain from its token count and the target (pure; no I/O).

    Infeasible targets are moved to the closest feasible mix with a warning, or raise
    `ConfigError` when `config.strict`.
    """
    warnings: list[str] = []
    if config.mode == "shares":
        rates = _share_rates(tokens, config, warnings)
    else:
        rates = _multiplier_rates(tokens, config, warnings)
    output = sum(rates[d] * t for d, t in tokens.items())
    target_shares = {d: (rates[d] * t / output if output else 0.0) for d, t in tokens.items()}
    return Rates(rates=rates, target_shares=target_shares, warnings=warnings)


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
class DomainPlan:
    docs: int
    tokens: int
    rate: float
    target_share: float
    target_tokens: float
    cutoff: Cutoff | None
    quality_hist: dict = field(default_factory=dict)


@dataclass
class Plan:
    """The P6 output every P7 task reads: one rate (and optional quality cutoff) per domain."""

    mode: str
    selection: str
    seed: int
    max_repeats: float
    token_budget: int | None
    domains: dict[str, DomainPlan]
    warnings: list[str]

    def to_json(self, path: str | os.PathLike) -> None:
        write_json_atomic(path, asdict(self))

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> Plan:
        raw = json.loads(Path(path).read_text())
        domains = {
            d: DomainPlan(**{**p, "cutoff": None if p["cutoff"] is None else Cutoff(**p["cutoff"])})
            for d, p in raw.pop("domains").items()
        }
        return cls(domains=domains, **raw)


def read_stats(stats_dir: str | os.PathLike) -> pa.Table:
    files = sorted(Path(stats_dir).glob("*.parquet"))
    if not files:
        raise FileNotFoundError(f"no token stats (*.parquet) in {stats_dir}: run the token-count phase (P5) first")
    return pa.concat_tables(pq.read_table(f) for f in files)


def compute_plan(stats_dir: str | os.PathLike, config: MixtureConfig) -> Plan:
    """P6: per-domain rates (and quality cutoffs) from the token stats of every P5 task."""
    stats = read_stats(stats_dir)
    domains = stats.column("domain").to_numpy(zero_copy_only=False).astype(str)
    tokens = stats.column("tokens").to_numpy()
    quality = stats.column("quality").to_numpy()
    names, inverse = np.unique(domains, return_inverse=True)
    domain_tokens = np.bincount(inverse, weights=tokens, minlength=names.size).astype(np.int64)
    domain_docs = np.bincount(inverse, minlength=names.size)
    rates = sampling_rates({str(d): int(t) for d, t in zip(names, domain_tokens)}, config)
    ids = stats.column("id")
    plans: dict[str, DomainPlan] = {}
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
                fraction * domain_tokens[index],
                config.seed,
                math.floor(rate),
            )
        plans[name] = DomainPlan(
            docs=int(domain_docs[index]),
            tokens=int(domain_tokens[index]),
            rate=rate,
            target_share=rates.target_shares[name],
            target_tokens=rate * int(domain_tokens[index]),
            cutoff=cutoff,
            quality_hist=quality_histogram(quality[members]),
        )
    return Plan(
        mode=config.mode,
        selection=config.selection,
        seed=config.seed,
        max_repeats=config.max_repeats,
        token_budget=config.token_budget,
        domains=plans,
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

    def __init__(self, plan: Plan | str | os.PathLike, exclusion_writer: RejectWriter | None = None):
        """`plan`: the P6 plan, or its JSON file (read in the worker, so the step can be built
        before P6 has run, e.g. by the preflight check)."""
        super().__init__()
        self._plan_source = plan
        self.exclusion_writer = exclusion_writer

    @property
    def plan(self) -> Plan:
        if not isinstance(self._plan_source, Plan):
            self._plan_source = Plan.from_json(self._plan_source)
        return self._plan_source

    def _copies(self, doc: Document) -> int:
        domain = doc_domain(doc.metadata)
        plan = self.plan.domains.get(domain)
        if plan is None:
            raise ValueError(f"document {doc.id!r} has domain {domain!r}, absent from the P6 plan: rerun P5 and P6")
        return copy_count(plan.rate, plan.cutoff, self.plan.seed, doc.id, doc_quality(doc.metadata))

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> Iterator[Document]:
        with self.exclusion_writer or nullcontext() as writer:
            for doc in data:
                with self.track_time():
                    copies = self._copies(doc)
                if copies == 0:
                    self.stat_update("dropped_downsampled")
                    if writer is not None:
                        domain = doc_domain(doc.metadata)
                        doc.metadata["filter_reason"] = "downsampled"
                        doc.metadata["reject_details"] = {"domain": domain, "rate": self.plan.domains[domain].rate}
                        writer.write(doc, rank)
                    continue
                self.stat_update("upsampled_copies", value=copies - 1)
                for repeat in range(copies):
                    yield Document(
                        text=doc.text,
                        id=repeat_id(doc.id, repeat),
                        metadata={**doc.metadata, "repeat": repeat},
                    )
