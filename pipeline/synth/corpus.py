"""`generate`: plan the whole corpus (kinds, domains, near-duplicate groups, planted documents), then
write every document, its ground truth and its teacher label in document order."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from classifiers.taxonomy import DEFAULT_DOMAINS, DEFAULT_RUBRIC, load_rubric, load_taxonomy
from pipeline.synth.benchmark import benchmark_items, benchmark_spec, plant, write_benchmark
from pipeline.synth.documents import (
    FOREIGN_LANGUAGES,
    boilerplate_text,
    clean_text,
    doc_words,
    fix_articles,
    foreign_text,
    repetition_text,
    short_text,
    spam_text,
    symbols_text,
)
from pipeline.synth.neardup import DupGroups, dup_groups, edit_words
from pipeline.synth.styles import domain_styles
from pipeline.synth.truth import quality_dims, teacher_labels
from pipeline.synth.vocab import NO_MIX, SHARED_POOLS, Mix, Vocabulary, Writer

SPAM_DOMAIN = "other_spam"
FOREIGN_DOMAIN = "travel_lifestyle"
KIND_SHARES = {
    "spam": 0.04,
    "boilerplate": 0.035,
    "repetition": 0.03,
    "short": 0.025,
    "symbols": 0.02,
    "non_english": 0.04,
}
DUP_SHARE = 0.08
PLANT_SHARE = 0.01
# Web pages mix topics: this share of clean docs takes MIXED_SHARE of its domain words from one
# second domain, so that a domain classifier has honest errors to make.
MIXED_DOCS = 0.2
MIXED_SHARE = (0.25, 0.45)


@dataclass(frozen=True)
class CorpusLayout:
    """Every document's kind and domain index, the near-duplicate groups and the planted documents."""

    kinds: np.ndarray
    domain_idx: np.ndarray
    dups: DupGroups
    planted: frozenset[int]


def _layout(rng: np.random.Generator, docs: int, weights: np.ndarray) -> CorpusLayout:
    """Kinds (exact counts, shuffled), domains, dup groups and planted docs for the whole corpus."""
    kinds = np.full(docs, "clean", dtype=object)
    order = rng.permutation(docs)
    start = 0
    for kind, share in KIND_SHARES.items():
        count = int(round(share * docs))
        kinds[order[start : start + count]] = kind
        start += count
    domain_idx = rng.choice(len(weights), size=docs, p=weights / weights.sum())
    clean = np.flatnonzero(kinds == "clean")
    dups = dup_groups(rng, clean, int(round(DUP_SHARE * docs)))
    free = np.setdiff1d(clean, np.array(sorted(dups.group_of), dtype=np.int64))
    planted = (
        rng.permutation(free)[: max(1, int(round(PLANT_SHARE * len(free))))]
        if len(free)
        else np.array([], dtype=np.int64)
    )
    return CorpusLayout(kinds, domain_idx, dups, frozenset(int(i) for i in planted))


def _doc_mix(rng: np.random.Generator, others: list[int]) -> Mix:
    """NO_MIX, or (share, second domain) for a MIXED_DOCS share of clean documents."""
    if rng.random() >= MIXED_DOCS:
        return NO_MIX
    return float(rng.uniform(*MIXED_SHARE)), others[int(rng.integers(len(others)))]


def generate(
    output_dir: Path,
    docs: int,
    seed: int = 0,
    taxonomy_path: Path = DEFAULT_DOMAINS,
    rubric_path: Path = DEFAULT_RUBRIC,
) -> dict[str, Any]:
    """Write corpus.jsonl, benchmark.jsonl, benchmarks.yaml and annotations.jsonl into `output_dir`
    (see the package docstring) and return a summary: counts per kind, domain and language."""
    if docs < 1:
        raise ValueError(f"--docs must be at least 1, got {docs}")
    taxonomy = load_taxonomy(taxonomy_path)
    rubric = load_rubric(rubric_path)
    domains = list(taxonomy.ids)
    if SPAM_DOMAIN not in domains:
        raise ValueError(
            f"{taxonomy_path}: the generator needs a '{SPAM_DOMAIN}' domain for spam, boilerplate and symbol soup"
        )
    styles = domain_styles(taxonomy)
    vocab = Vocabulary(styles)
    writers = {d: Writer(vocab, d, styles[d]) for d in domains}
    clean_domains = [d for d in domains if d != SPAM_DOMAIN]
    second = {d: [domains.index(o) for o in clean_domains if o != d] for d in clean_domains}

    layout = _layout(
        np.random.default_rng(seed), docs, np.array([styles[d].weight for d in clean_domains], dtype=float)
    )
    dups = layout.dups
    rng = np.random.default_rng([seed, 1])
    items = benchmark_items()
    edit_pool = SHARED_POOLS["g"] + SHARED_POOLS["r"]
    bases: dict[int, tuple[str, str, dict[str, float]]] = {}  # base index -> (text, domain, dims) for its copies
    needed_bases = set(dups.dup_of.values())

    output_dir.mkdir(parents=True, exist_ok=True)
    counts: dict[str, Counter] = {"kinds": Counter(), "domains": Counter(), "languages": Counter()}
    n_annotations = 0
    width = max(7, len(str(docs)))
    with open(output_dir / "corpus.jsonl", "w") as corpus, open(output_dir / "annotations.jsonl", "w") as annotations:
        for i in range(docs):
            kind = str(layout.kinds[i])
            drawn_domain = clean_domains[int(layout.domain_idx[i])]
            domain = drawn_domain
            language = "en"
            planted: list[dict[str, Any]] = []
            if i in dups.dup_of:
                text, domain, dims = bases[dups.dup_of[i]]
                text = edit_words(rng, text, dups.rate_of[i], edit_pool)
            else:
                if kind in ("spam", "boilerplate", "symbols"):
                    domain = SPAM_DOMAIN
                elif kind == "non_english":
                    domain = FOREIGN_DOMAIN
                dims = quality_dims(rng, styles[domain].edu_prior, kind, rubric)
                writer = writers[domain]
                if kind == "clean":
                    text = clean_text(rng, writer, dims, doc_words(rng), _doc_mix(rng, second[domain]))
                    if i in layout.planted:
                        text, planted = plant(rng, text, items, edit_pool)
                elif kind == "non_english":
                    language = FOREIGN_LANGUAGES[int(rng.integers(len(FOREIGN_LANGUAGES)))]
                    text = foreign_text(rng, language)
                elif kind == "spam":  # spam and boilerplate speak of the drawn domain's things
                    text = spam_text(rng, writers[drawn_domain])
                elif kind == "boilerplate":
                    text = boilerplate_text(rng, writers[drawn_domain])
                elif kind == "symbols":
                    text = symbols_text(rng, writer)
                elif kind == "repetition":
                    text = repetition_text(rng, writer, dims)
                else:
                    text = short_text(rng, writer, dims)
                text = fix_articles(text) if language == "en" else text
                if i in needed_bases:
                    bases[i] = (text, domain, dims)
            doc_id = f"synth-{i + 1:0{width}d}"
            meta = {
                "domain": domain,
                "quality": round(rubric.aggregate(dims), 3),
                "quality_dims": dims,
                "kind": kind,
                "language": language,
                "dup_group": dups.group_of.get(i),
                "dup_edit_rate": dups.rate_of.get(i),
                "planted": planted,
            }
            corpus.write(json.dumps({"id": doc_id, "text": text, "meta": meta}, ensure_ascii=False) + "\n")
            if language == "en" and kind != "spam":
                label = teacher_labels(rng, doc_id, domain, dims, domains, styles[domain].confusable)
                annotations.write(json.dumps(label, ensure_ascii=False) + "\n")
                n_annotations += 1
            counts["kinds"][kind] += 1
            counts["domains"][domain] += 1
            counts["languages"][language] += 1

    write_benchmark(output_dir / "benchmark.jsonl")
    (output_dir / "benchmarks.yaml").write_text(benchmark_spec("benchmark.jsonl"))
    return {
        "docs": docs,
        "seed": seed,
        **{k: dict(sorted(v.items())) for k, v in counts.items()},
        "dup_groups": dups.count,
        "dup_docs": len(dups.group_of),
        "planted": len(layout.planted),
        "benchmark_items": len(items),
        "annotations": n_annotations,
    }
