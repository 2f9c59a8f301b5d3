"""Exact LCS decontamination against a brute-force DP and a 13-gram exact-overlap lookup.

    python benchmarks/bench_decontam.py [--synthetic-docs 5000] [--real-docs 2000] [--brute-pairs 30]

All timings are process CPU time on one core, tokenization included, for the same documents
(the whole-process runs also give wall time, and a first run on an empty numba cache):

1. Synthetic corpus (pipeline.synth, planted synthbench copies verbatim and word-edited at 10% and
   20%) against synthbench. Ours (`BenchmarkIndex.scan`, window mode); the 13-gram lookup (a set
   of every item's word 13-grams, a document flagged when any of its 13-grams is in it, as
   datatrove's NGramsDecontFilter); a naive exact scan without our index (rapidfuzz LCS on every
   window of every pair, on a subsample of documents); and the brute-force DP reference
   (`brute_force_matches`, every window of every pair) timed per pair on --brute-pairs random
   (document, item) pairs and extrapolated to docs/s. Ours is checked against the brute force on
   those pairs. Recall of the 13-gram lookup relative to the exact rule is counted on the
   documents the rule flags, split by the planted copy's edit rate.
2. Flag rates on text unrelated to the benchmark, window mode vs document mode.
3. When /work/shared/data/benchmarks exists: the same on real benchmarks (GSM8K, MATH, MMLU,
   HumanEval, MBPP, HellaSwag, ARC; presets) against real documents, plus 300 edited copies of
   random real items planted into real documents, and the flag rates of unrelated real text per
   benchmark in both modes.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from decontam.benchmarks import Benchmark, load_benchmark, load_benchmarks
from decontam.tokenize import WordTokenizer
from pipeline.synth import SHARED_POOLS, edit_words, generate

if TYPE_CHECKING:
    from decontam.index import BenchmarkIndex
    from decontam.lcs import Rule

# decontam.index (numba) and decontam.lcs (rapidfuzz) are imported where ours runs: the 13-gram
# child process must not pay for imports that a user of a 13-gram lookup would never make.

DATA = Path("/work/shared/data")
REAL_SPECS = [
    {"name": "gsm8k", "path": "gsm8k/test.jsonl", "preset": "gsm8k"},
    {"name": "math", "path": "MATH/test.jsonl", "preset": "math"},
    {"name": "mmlu", "path": "mmlu/test/*.csv", "preset": "mmlu"},
    {"name": "humaneval", "path": "humaneval/HumanEval.jsonl.gz", "preset": "humaneval"},
    {"name": "mbpp", "path": "mbpp/mbpp.jsonl", "preset": "mbpp"},
    {"name": "hellaswag", "path": "hellaswag/hellaswag_val.jsonl", "preset": "hellaswag"},
    {"name": "arc", "path": "arc_*/*.jsonl", "preset": "arc"},
]
NGRAM = 13
WORDS = WordTokenizer()
BATCH = 256  # documents per call of the index's compiled filter, as ContaminationFilter batches them


def cpu_time(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.process_time()
    result = fn()
    return result, time.process_time() - start


class NgramLookup:
    """The 13-gram exact-overlap baseline: flagged when a document shares any word 13-gram."""

    def __init__(self, benchmarks: Sequence[Benchmark]):
        self.grams = set()
        for b in benchmarks:
            for text in b.texts:
                tokens = WORDS.tokens(text)
                self.grams.update(zip(*(tokens[i:] for i in range(NGRAM))))

    def flagged(self, text: str) -> bool:
        tokens = WORDS.tokens(text)
        return not self.grams.isdisjoint(zip(*(tokens[i:] for i in range(NGRAM))))


def naive_pair(doc: Sequence, item: Sequence, rule: Rule) -> bool:
    """The exact rule for one pair without any filter: rapidfuzz LCS on every window."""
    from decontam.lcs import lcs_length

    if len(item) < rule.min_tokens:
        return False
    w = rule.window(len(item)) if rule.mode == "window" else len(doc)
    k = rule.required(min(w, len(doc)), len(item))
    return any(lcs_length(doc[s : s + w], item, k) for s in range(max(1, len(doc) - w + 1)))


def naive_scan(index: BenchmarkIndex, text: str, rule: Rule) -> set[int]:
    """The exact rule without the index: rapidfuzz on every window of every item."""
    doc = index.index.encode(WORDS.tokens(text))
    return {i for i, item in enumerate(index.index.texts) if naive_pair(doc, item, rule)}


def rate(n: int, d: int) -> str:
    return f"{n}/{d} ({100 * n / d:.1f}%)" if d else "0/0"


Planted = tuple[float, tuple[str, str]] | None  # (edit rate, (benchmark, item id)) of a planted copy


def compare(
    label: str,
    benchmarks: list[Benchmark],
    texts: list[str],
    planted: list[Planted],
    naive_docs: int,
    args: argparse.Namespace,
) -> None:
    """Throughput of ours vs the baselines, agreement with the brute force, 13-gram recall."""
    from decontam.index import BenchmarkIndex
    from decontam.lcs import Rule, brute_force_matches

    rule = Rule()
    (index, build) = cpu_time(lambda: BenchmarkIndex(benchmarks, rule, WORDS))
    items = len(index.refs)
    print(f"\n== {label}: {len(texts)} documents, {items} items, index built in {build:.1f}s CPU")
    rows, ours = cpu_time(
        lambda: [r for i in range(0, len(texts), BATCH) for r in index.scan_many(texts[i : i + BATCH])]
    )
    ngram = NgramLookup(benchmarks)
    flags, base = cpu_time(lambda: [ngram.flagged(t) for t in texts])
    sample = texts[:naive_docs]
    naive, naive_t = cpu_time(lambda: [naive_scan(index, t, rule) for t in sample])
    # Half random pairs, half (document, planted item) pairs: the brute force sees both outcomes.
    rng = random.Random(0)
    refs = {ref: n for n, ref in enumerate(index.refs)}
    with_plants = [(n, refs[p[1]]) for n, p in enumerate(planted) if p is not None]
    pairs = [(rng.randrange(len(texts)), rng.randrange(items)) for _ in range(args.brute_pairs - args.brute_pairs // 2)]
    pairs += rng.sample(with_plants, min(len(with_plants), args.brute_pairs // 2))
    item_tokens = [WORDS.tokens(t) for b in benchmarks for t in b.texts]

    def brute() -> list[bool]:
        return [bool(brute_force_matches(WORDS.tokens(texts[d]), [item_tokens[i]], rule)) for d, i in pairs]

    brute_flags, brute_t = cpu_time(brute)
    ours_pairs = [refs_hit(rows[d], refs, i) for d, i in pairs]
    naive_agree = all({refs[(r["benchmark"], r["item_id"])] for r in rows[n]} == naive[n] for n in range(len(sample)))
    per_pair = brute_t / len(pairs)
    print(f"ours (index + exact LCS):  {len(texts) / ours:10.1f} docs/s")
    print(f"13-gram lookup:            {len(texts) / base:10.1f} docs/s  -> ours takes {ours / base:.2f}x its time")
    print(
        f"naive exact (no index):    {len(sample) / naive_t:10.2f} docs/s on {len(sample)} docs"
        f"  -> ours {naive_t / len(sample) / (ours / len(texts)):,.0f}x faster; same matches: {naive_agree}"
    )
    print(
        f"brute-force DP reference:  {per_pair * 1000:10.1f} ms per (doc, item) pair on {len(pairs)} pairs"
        f" -> {1 / (per_pair * items):.2e} docs/s; ours {per_pair * items / (ours / len(texts)):,.0f}x faster"
    )
    print(
        "agreement with brute force on the sampled pairs:"
        f" {sum(a == b for a, b in zip(ours_pairs, brute_flags))}/{len(pairs)}"
        f" ({sum(brute_flags)} positive)"
    )
    flagged = [bool(r) for r in rows]
    print(f"flagged: ours {rate(sum(flagged), len(texts))}, 13-gram {rate(sum(flags), len(texts))}")
    both = sum(f and g for f, g in zip(flagged, flags))
    print(f"13-gram recall relative to the exact rule (documents): {rate(both, sum(flagged))}")
    for edit in sorted({p[0] for p in planted if p is not None}):
        docs = [n for n, p in enumerate(planted) if p is not None and p[0] == edit]
        print(
            f"  planted copies edited at {edit:.0%}: rule found {rate(sum(flagged[n] for n in docs), len(docs))},"
            f" 13-gram found {rate(sum(flags[n] for n in docs), len(docs))}"
        )


def refs_hit(rows: list[dict], refs: dict, item: int) -> bool:
    return any(refs[(r["benchmark"], r["item_id"])] == item for r in rows)


def chunks(texts: list[str], words: int, count: int) -> list[str]:
    """Consecutive documents joined into `count` chunks of at least `words` words."""
    out, current, size = [], [], 0
    for text in texts:
        current.append(text)
        size += len(WORDS.tokens(text))
        if size >= words:
            out.append("\n\n".join(current))
            current, size = [], 0
            if len(out) == count:
                break
    return out


def mode_rates(label: str, benchmarks: list[Benchmark], texts: list[str], args: argparse.Namespace) -> None:
    """Flag rates of text that holds no benchmark item, per benchmark, window vs document mode,
    on the documents as they are and on 1,000- and 4,000-word chunks of them."""
    from decontam.index import BenchmarkIndex
    from decontam.lcs import Rule

    print(f"\n-- {label}: flag rate of unrelated text, window vs document mode")
    samples = {
        "documents": texts[: args.mode_docs],
        "1000-word chunks": chunks(texts, 1000, args.mode_chunks),
        "4000-word chunks": chunks(texts, 4000, max(1, args.mode_chunks // 3)),
    }
    for name, sample in samples.items():
        words = [len(WORDS.tokens(t)) for t in sample]
        print(f"   {name}: {len(sample)}, {np.mean(words):.0f} words on average")
    for b in benchmarks:
        indexes = {mode: BenchmarkIndex([b], Rule(mode=mode), WORDS) for mode in ("window", "document")}
        cells = []
        for name, sample in samples.items():
            flagged = {mode: sum(bool(index.scan(t)) for t in sample) for mode, index in indexes.items()}
            cells.append(
                f"{name}: window {100 * flagged['window'] / len(sample):5.1f}%"
                f" document {100 * flagged['document'] / len(sample):5.1f}%"
            )
        print(f"   {b.name:10s} " + " | ".join(cells))


def synthetic(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp), docs=args.synthetic_docs, seed=1)
        records = [json.loads(line) for line in (Path(tmp) / "corpus.jsonl").read_text().splitlines()]
        benchmarks = load_benchmarks(Path(tmp) / "benchmarks.yaml")
    texts = [r["text"] for r in records]
    planted = [
        (p[0]["edit_rate"], (p[0]["benchmark"], p[0]["item_id"])) if (p := r["meta"]["planted"]) else None
        for r in records
    ]
    compare("synthetic corpus vs synthbench", benchmarks, texts, planted, args.naive_docs, args)
    unrelated = [t for t, p in zip(texts, planted) if p is None]
    mode_rates("synthetic", benchmarks, unrelated, args)


def real(args: argparse.Namespace) -> None:
    if not args.real_docs:
        return
    if not (DATA / "benchmarks").is_dir():
        print(f"\n(no real data under {DATA}: real benchmarks skipped)")
        return
    benchmarks = real_benchmarks(0)
    texts, planted = planted_corpus(benchmarks, args.real_docs, 300)
    compare("real corpus vs real benchmarks", benchmarks, texts, planted, args.naive_real_docs, args)
    unrelated = [t for t, p in zip(texts, planted) if p is None]
    mode_rates("real", benchmarks, unrelated, args)


def real_benchmarks(items: int) -> list[Benchmark]:
    """The 7 shared test sets, or a seeded sample of `items` of their items (a held-out set)."""
    benchmarks = [load_benchmark(spec, DATA / "benchmarks", spec["name"]) for spec in REAL_SPECS]
    total = sum(len(b.texts) for b in benchmarks)
    if not items or items >= total:
        return benchmarks
    keep = set(random.Random(0).sample(range(total), items))
    sampled, start = [], 0
    for b in benchmarks:
        chosen = [i for i in range(len(b.texts)) if start + i in keep]
        start += len(b.texts)
        sampled.append(
            Benchmark(b.name, b.source, tuple(b.item_ids[i] for i in chosen), tuple(b.texts[i] for i in chosen))
        )
    return sampled


def planted_corpus(benchmarks: list[Benchmark], docs: int, plants: int) -> tuple[list[str], list[Planted]]:
    """The shared real corpus with `plants` edited copies (0/10/20% of words) of random items of
    13-400 words put in the middle of random documents (seeded: the same in every process)."""
    with gzip.open(DATA / "corpus" / "real_corpus.jsonl.gz", "rt") as fh:
        texts = [json.loads(line)["text"] for _, line in zip(range(docs or 10**9), fh)]
    rng = np.random.default_rng(0)
    pool = SHARED_POOLS["g"] + SHARED_POOLS["r"]
    candidates = [
        (b.name, i, t) for b in benchmarks for i, t in zip(b.item_ids, b.texts) if 13 <= len(WORDS.tokens(t)) <= 400
    ]
    planted: list[Planted] = [None] * len(texts)
    for n in rng.choice(len(texts), size=min(plants, len(texts)), replace=False):
        edit = float(rng.choice([0.0, 0.1, 0.2]))
        name, item_id, item = candidates[int(rng.integers(len(candidates)))]
        paragraphs = texts[n].split("\n")
        paragraphs.insert(len(paragraphs) // 2, edit_words(rng, item, edit, pool))
        texts[n], planted[n] = "\n".join(paragraphs), (edit, (name, item_id))
    return texts, planted


def child(args: argparse.Namespace) -> None:
    """One whole process, as a user runs it: load the test sets, build the lookup, read the corpus,
    flag every document. Writes what it flagged to --out."""
    benchmarks = real_benchmarks(args.items)
    if args.child == "ours":
        from decontam.index import BenchmarkIndex
        from decontam.lcs import Rule

        index = BenchmarkIndex(benchmarks, Rule(), WORDS)
        texts, _ = planted_corpus(benchmarks, args.docs, args.plants)
        flagged = []
        for start in range(0, len(texts), BATCH):
            for n, rows in enumerate(index.scan_many(texts[start : start + BATCH]), start):
                flagged += [[n, r["benchmark"], r["item_id"]] for r in rows]
    else:
        ngram = NgramLookup(benchmarks)
        texts, _ = planted_corpus(benchmarks, args.docs, args.plants)
        flagged = [[n] for n, t in enumerate(texts) if ngram.flagged(t)]
    Path(args.out).write_text(json.dumps(flagged))


def timed_child(kind: str, args: argparse.Namespace, out: Path, cache: Path) -> tuple[float, float, list]:
    """(wall seconds, CPU seconds, flagged) of one child process, its compiled code cached in `cache`."""
    import os
    import resource
    import subprocess
    import sys

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            kind,
            "--items",
            str(args.items),
            "--docs",
            str(args.docs),
            "--plants",
            str(args.plants),
            "--out",
            str(out),
        ],
        check=True,
        env={**os.environ, "NUMBA_CACHE_DIR": str(cache)},
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, json.loads(out.read_text())


def scale(args: argparse.Namespace) -> None:
    """Whole-process time of ours vs the 13-gram lookup (same corpus, same run), and misses against
    the rule: the DP brute force on sampled pairs, every window (rapidfuzz) on every planted copy."""
    from decontam.lcs import Rule, brute_force_matches

    if not (DATA / "benchmarks").is_dir():
        print(f"(no real data under {DATA}: scale skipped)")
        return
    for items in args.scale_items:
        args.items = items
        benchmarks = real_benchmarks(items)
        texts, planted = planted_corpus(benchmarks, args.docs, args.plants)
        count = sum(len(b.texts) for b in benchmarks)
        print(f"\n== whole process: {len(texts)} real documents ({args.plants} planted copies) vs {count} items")
        with tempfile.TemporaryDirectory() as tmp:
            # A fresh install first: numba compiles the filter into an empty cache, which the later
            # runs read, as a user's first and later runs do.
            cache = Path(tmp) / "numba"
            first = timed_child("ours", args, Path(tmp) / "first.json", cache)
            runs = {"ngram": [], "ours": []}
            for _ in range(args.repeats):  # alternate, so both sides see the same machine load
                for kind in runs:
                    runs[kind].append(timed_child(kind, args, Path(tmp) / f"{kind}.json", cache))
        (ngram_wall, ngram_cpu, ngram_flags), (ours_wall, ours_cpu, ours_rows) = (
            min(runs[k]) for k in ("ngram", "ours")
        )
        print(f"13-gram lookup: {ngram_wall:7.1f} s wall {ngram_cpu:7.1f} s CPU  {len(texts) / ngram_wall:8.0f} docs/s")
        print(f"ours (exact):   {ours_wall:7.1f} s wall {ours_cpu:7.1f} s CPU  {len(texts) / ours_wall:8.0f} docs/s")
        print(
            f"ours / 13-gram: {ours_wall / ngram_wall:.2f}x wall, {ours_cpu / ngram_cpu:.2f}x CPU"
            f" (best of {args.repeats} alternating runs each)"
        )
        print(
            f"first run after install (numba compiles): {first[0]:7.1f} s wall {first[1]:7.1f} s CPU"
            f" -> {first[0] / ngram_wall:.2f}x wall, {first[1] / ngram_cpu:.2f}x CPU;"
            f" same matches: {first[2] == ours_rows}"
        )
        found = {(n, b, i) for n, b, i in ours_rows}
        items = {(b.name, i): WORDS.tokens(t) for b in benchmarks for i, t in zip(b.item_ids, b.texts)}
        rule = Rule()
        plants = [(n, p[1]) for n, p in enumerate(planted) if p is not None]
        positive = [(n, ref) for n, ref in plants if naive_pair(WORDS.tokens(texts[n]), items[ref], rule)]
        missed = [(n, ref) for n, ref in positive if (n, *ref) not in found]
        print(
            f"planted copies: {len(positive)}/{len(plants)} match the rule (every window, rapidfuzz);"
            f" ours missed {len(missed)};"
            f" the 13-gram lookup flags {sum([n] in ngram_flags for n, _ in positive)} of their documents"
        )
        # The pure-Python DP costs |doc| x 2|item| x |item| per pair: documents of <= 600 words only.
        rng = random.Random(1)
        small = [n for n, t in enumerate(texts) if len(WORDS.tokens(t)) <= 600]
        refs = [ref for ref, tokens in items.items() if len(tokens) <= 150]
        pairs = [(rng.choice(small), rng.choice(refs)) for _ in range(args.brute_pairs // 2)]
        pairs += rng.sample([p for p in plants if p[0] in set(small)], min(len(plants), args.brute_pairs - len(pairs)))
        brute = [(n, ref) for n, ref in pairs if brute_force_matches(WORDS.tokens(texts[n]), [items[ref]], rule)]
        print(
            f"DP brute force on {len(pairs)} sampled pairs (half planted, docs <= 600 words): {len(brute)} positive,"
            f" ours missed {sum((n, *ref) not in found for n, ref in brute)},"
            f" ours extra {sum((n, *ref) in found for n, ref in pairs) - len(brute)}"
        )
        print(f"documents flagged: ours {len({r[0] for r in ours_rows})}, 13-gram {len(ngram_flags)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--synthetic-docs", type=int, default=5000)
    parser.add_argument("--real-docs", type=int, default=2000)
    parser.add_argument("--naive-docs", type=int, default=20, help="documents for the no-index exact scan (synthetic)")
    parser.add_argument(
        "--naive-real-docs", type=int, default=2, help="the same on real benchmarks (~20 s per document)"
    )
    parser.add_argument("--brute-pairs", type=int, default=30, help="(document, item) pairs for the DP reference")
    parser.add_argument("--mode-docs", type=int, default=300, help="unrelated documents for the mode flag rates")
    parser.add_argument(
        "--mode-chunks", type=int, default=30, help="1,000-word chunks (a third as many 4,000-word ones)"
    )
    parser.add_argument(
        "--scale-items",
        type=int,
        nargs="*",
        default=[8000, 0],
        help="whole-process runs against these many real items (0: all 35k); none to skip",
    )
    parser.add_argument("--docs", type=int, default=0, help="real documents in the whole-process runs (0: all 23k)")
    parser.add_argument("--plants", type=int, default=300, help="edited copies planted into them")
    parser.add_argument("--repeats", type=int, default=1, help="alternating runs of each side (the best counts)")
    parser.add_argument("--skip-small", action="store_true", help="only the whole-process runs")
    parser.add_argument("--child", choices=["ours", "ngram"], help=argparse.SUPPRESS)
    parser.add_argument("--items", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if not args.skip_small:
        synthetic(args)
        real(args)
    scale(args)


if __name__ == "__main__":
    main()
