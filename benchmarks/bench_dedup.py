"""MinHash near-dedup against datasketch and datatrove, on the same documents.

    python benchmarks/bench_dedup.py [--synthetic-docs 20000 (0: none)] [--real-docs 0 (all)] [--baseline-docs 2000]
                                     [--no-end-to-end]

Runs on a synthetic corpus (pipeline.synth) and, when /work/shared/data holds it (or --corpus), on
real text. For each corpus it prints:

1. Signature throughput per core (process CPU time, one thread), 112 permutations, word 5-grams:
   end to end (text -> signature, shingling included) and signature-only (given the shingles).
   Ours signature-only starts from the uint32 shingle hashes our shingling yields; datasketch's
   from the shingle bytes (`update_batch` hashes them with its default sha1_hash32), one
   `MinHash(num_perm, seed)` per document as documented, and also with the permutations of one
   template MinHash passed in (no per-document permutation draw: its fastest use); datatrove's
   `MinhashDedupSignature.get_signature` from its uint64 shingle hashes, and end to end its whole
   step (its tokenizer, hashing, and its per-bucket signature files). The baselines run on the
   first --baseline-docs documents, ours on all.
2. LSH + clustering, each in a fresh process warmed up on 1000 documents: wall time and peak RSS
   above the RSS before the call, per document. Ours: `run_near_dedup` (P4 on the local engine with one worker:
   one LshStep task up to 8 P1 tasks, else the bucket and candidate steps; verification, components,
   keepers) from P1 signature files, 5,000 documents per task; with the offset bands (the default,
   28 bucket keys a document) and without them (the 14 x 8 bands alone). datasketch:
   `MinHashLSH(params=(14, 8))`, insert every LeanMinHash, query every document, union-find.
3. Pairwise precision / recall / F1 of the clusters against the ground truth: the connected
   components of the graph of pairs with exact 5-gram Jaccard >= the threshold (found exactly by
   prefix filtering), for ours with and without verification and for datasketch; and wrongful
   removals: documents removed (not their cluster's smallest uid, the keeper when no document has a
   quality) whose keeper is in another true component.
4. On the real corpus, end to end as a user runs it, each in a fresh process with one worker:
   `mixwright run` with only dedup enabled against datasketch (read, MinHash, MinHashLSH, union-find,
   write the kept documents); wall and CPU time (CPU is the steadier figure on a shared machine).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import math
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_CORPUS = Path("/work/shared/data/corpus/real_corpus.jsonl.gz")
NGRAM, BANDS, ROWS, SEED = 5, 14, 8, 1
NUM_PERM = BANDS * ROWS


def load_texts(path: Path, limit: int | None = None) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        return [json.loads(line)["text"] for _, line in zip(range(limit) if limit else iter(int, 1), fh)]


def synthetic_texts(docs: int, folder: Path) -> list[str]:
    from pipeline.synth import generate

    generate(folder, docs=docs, seed=1)
    return load_texts(folder / "corpus.jsonl", docs)


def per_second(fn: Callable[[], Any], count: int) -> float:
    start = time.process_time()
    fn()
    return count / max(time.process_time() - start, 1e-9)


# --- 1. signatures ------------------------------------------------------------------------------


def signature_throughput(texts: list[str], baseline_docs: int) -> dict[str, float]:
    import datasketch
    from datatrove.data import Document
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature

    from stages.minhash import MinHasher, batch_shingle_hashes, shingle_hashes, shingles

    hasher = MinHasher(ngram=NGRAM, num_perm=NUM_PERM, seed=SEED)
    subset = texts[:baseline_docs]
    rates: dict[str, float] = {}
    rates["ours shingling"] = per_second(
        lambda: [batch_shingle_hashes(texts[i : i + 1024], NGRAM) for i in range(0, len(texts), 1024)], len(texts)
    )
    rates["ours end-to-end"] = per_second(
        lambda: [hasher.signatures(texts[i : i + 1024]) for i in range(0, len(texts), 1024)], len(texts)
    )
    hash_sets = [h for h in (shingle_hashes(t, NGRAM) for t in texts) if len(h)]
    rates["ours signature-only"] = per_second(lambda: hasher.signatures_of_hashes(hash_sets), len(hash_sets))

    template = datasketch.MinHash(num_perm=NUM_PERM, seed=SEED)

    def documented(shingle_set: list[bytes]) -> None:
        datasketch.MinHash(num_perm=NUM_PERM, seed=SEED).update_batch(shingle_set)

    def shared_permutations(shingle_set: list[bytes]) -> None:
        m = datasketch.MinHash(num_perm=NUM_PERM, seed=SEED, permutations=template.permutations, scheme="affine32")
        m.update_batch(shingle_set)

    rates["datasketch shingling"] = per_second(lambda: [shingles(t, NGRAM) for t in subset], len(subset))
    shingle_sets = [s for s in (shingles(t, NGRAM) for t in subset) if s]
    for label, sign in (("datasketch", documented), ("datasketch shared-perm", shared_permutations)):
        rates[f"{label} end-to-end"] = per_second(lambda f=sign: [f(shingles(t, NGRAM)) for t in subset], len(subset))
        rates[f"{label} signature-only"] = per_second(lambda f=sign: [f(s) for s in shingle_sets], len(shingle_sets))

    with tempfile.TemporaryDirectory() as tmp:
        trove_config = MinhashConfig(n_grams=NGRAM, num_buckets=BANDS, hashes_per_bucket=ROWS, seed=SEED)
        step = MinhashDedupSignature(tmp, trove_config)
        docs = [Document(text=t, id=str(i)) for i, t in enumerate(subset)]
        rates["datatrove end-to-end"] = per_second(lambda: step.run(iter(docs)), len(docs))
        trove_shingles = [s for s in (step.get_shingles(t) for t in subset) if s.size]
        rates["datatrove signature-only"] = per_second(
            lambda: [step.get_signature(s) for s in trove_shingles], len(trove_shingles)
        )
    return rates


# --- 2. LSH + clustering, each in a fresh process ------------------------------------------------


def _ours(folder: str, verify: bool, offset_bands: bool = True, warm_up: bool = True) -> dict[str, Any]:
    from pipeline.config import DedupConfig, EngineConfig
    from pipeline.engine import configure_logging
    from pipeline.phases import run_near_dedup

    configure_logging()
    work = Path(folder) / f"work-{verify}-{offset_bands}"
    config = DedupConfig(ngram=NGRAM, bands=BANDS, rows=ROWS, seed=SEED, verify=verify, offset_bands=offset_bands)
    engine = EngineConfig(kind="local", workers=1)

    def run() -> list[tuple[int, int]]:
        signatures, documents = Path(folder) / "signatures", Path(folder) / "documents"
        run_near_dedup(signatures, documents, work, config, engine, show_progress=False)
        return _our_clusters(work)

    if warm_up:
        _ours(str(Path(folder) / "warm-up"), verify, offset_bands, warm_up=False)
    return _measured(run)


def _our_clusters(work: Path) -> list[tuple[int, int]]:
    """(uid, cluster) of every clustered document."""
    import pyarrow.parquet as pq

    labels = {}
    for path in sorted((work / "assignment").glob("*.parquet")):
        table = pq.read_table(path, columns=["uid", "cluster"])
        labels.update(zip(table.column("uid").to_pylist(), table.column("cluster").to_pylist()))
    return [(uid, cluster) for uid, cluster in labels.items()]


def _datasketch(folder: str, warm_up: bool = True) -> dict[str, Any]:
    import datasketch

    from stages.minhash import read_signatures

    uids, signatures = [], []
    for path in sorted((Path(folder) / "signatures").glob("*.parquet")):
        u, s = read_signatures(path)
        uids.append(u)
        signatures.append(s)
    uids_all, matrix = np.concatenate(uids), np.concatenate(signatures)

    def run() -> list[tuple[int, int]]:
        lsh = datasketch.MinHashLSH(threshold=0.72, num_perm=NUM_PERM, params=(BANDS, ROWS))
        sketches = [datasketch.LeanMinHash(seed=SEED, hashvalues=row, scheme="affine32") for row in matrix]
        with lsh.insertion_session() as session:
            for uid, sketch in zip(uids_all.tolist(), sketches):
                session.insert(uid, sketch, check_duplication=False)
        parent = {uid: uid for uid in uids_all.tolist()}

        def find(x: int) -> int:
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for uid, sketch in zip(uids_all.tolist(), sketches):
            for other in lsh.query(sketch):
                a, b = find(uid), find(other)
                if a != b:
                    parent[max(a, b)] = min(a, b)
        roots = {uid: find(uid) for uid in parent}
        sizes = Counter(roots.values())
        return [(uid, root) for uid, root in roots.items() if sizes[root] > 1]

    if warm_up:
        _datasketch(str(Path(folder) / "warm-up"), warm_up=False)
    return _measured(run)


def _vm_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _measured(fn: Callable[[], Any]) -> dict[str, Any]:
    """Wall time and peak RSS above the RSS at the start (Linux: writing 5 to clear_refs resets
    the high-water mark VmHWM, so imports and set-up before the call do not count)."""
    Path("/proc/self/clear_refs").write_text("5")
    baseline = _vm_kib("VmRSS")
    start = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):  # datatrove's executor logs its stats there
        clusters = fn()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_bytes": max(0, _vm_kib("VmHWM") - baseline) * 1024, "clusters": clusters}


def in_fresh_process(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def write_inputs(texts: list[str], folder: Path, tasks: int) -> None:
    """P1 signature files and P3 documents, uid = index in `texts`."""
    from datatrove.data import Document

    from pipeline.config import DedupConfig
    from pipeline.docio import task_file, write_documents
    from stages.minhash import MinhashSignatureStep

    config = DedupConfig(ngram=NGRAM, bands=BANDS, rows=ROWS, seed=SEED)
    per = math.ceil(len(texts) / tasks)
    for rank in range(tasks):
        mine = range(rank * per, min((rank + 1) * per, len(texts)))
        docs = [Document(text=texts[i], id=f"d{i:07d}", metadata={"uid": i}) for i in mine]
        write_documents(task_file(folder / "documents", rank), docs)
        list(MinhashSignatureStep(config, folder / "signatures").run(iter(docs), rank=rank))


# --- 3. quality against exact Jaccard -----------------------------------------------------------


def exact_pairs(texts: list[str], threshold: float) -> list[tuple[int, int]]:
    """All pairs with exact shingle Jaccard >= threshold (prefix filtering: rare shingles first)."""
    from stages.minhash import shingles

    sets = [set(shingles(t, NGRAM)) for t in texts]
    frequency = Counter(s for shingle_set in sets for s in shingle_set)
    index: dict[bytes, list[int]] = defaultdict(list)
    pairs = []
    for i in sorted(range(len(sets)), key=lambda k: len(sets[k])):
        ordered = sorted(sets[i], key=lambda s: (frequency[s], s))
        prefix = ordered[: len(ordered) - math.ceil(threshold * len(ordered)) + 1] if ordered else []
        candidates = {j for s in prefix for j in index[s]}
        for j in candidates:
            inter = len(sets[i] & sets[j])
            if inter / (len(sets[i]) + len(sets[j]) - inter) >= threshold:
                pairs.append((min(i, j), max(i, j)))
        for s in prefix:
            index[s].append(i)
    return pairs


def same_cluster_pairs(labels: dict[int, int]) -> set[tuple[int, int]]:
    groups: dict[int, list[int]] = defaultdict(list)
    for uid, label in labels.items():
        groups[label].append(uid)
    return {(a, b) for members in groups.values() for a in members for b in members if a < b}


def components(pairs: list[tuple[int, int]]) -> dict[int, int]:
    from stages.lsh import connected_components

    if not pairs:
        return {}
    src, dst = np.array(pairs).T
    nodes, labels = connected_components(src, dst)
    return dict(zip(nodes.tolist(), labels.tolist()))


def wrongful_removals(labels: dict[int, int], truth: dict[int, int]) -> int:
    """Removed documents whose keeper (their cluster's smallest uid) is in another true component."""
    keeper: dict[int, int] = {}
    for uid, label in labels.items():
        keeper[label] = min(uid, keeper.get(label, uid))
    removed = [(uid, keeper[label]) for uid, label in labels.items() if uid != keeper[label]]
    # a document outside every true component is alone in its own
    return sum(truth.get(uid, ("alone", uid)) != truth.get(kept, ("alone", kept)) for uid, kept in removed)


def prf(predicted: set[tuple[int, int]], truth: set[tuple[int, int]]) -> tuple[float, float, float]:
    hits = len(predicted & truth)
    precision = hits / len(predicted) if predicted else 1.0
    recall = hits / len(truth) if truth else 1.0
    return precision, recall, 2 * precision * recall / (precision + recall) if precision + recall else 0.0


# --- 4. end to end, whole process, one worker ---------------------------------------------------

DEDUP_ONLY = """\
input:    {{paths: [{corpus}], format: auto, text_field: text, id_field: id}}
output:   {{dir: {output}}}
engine:   {{kind: local, workers: 1}}
langid:   {{enabled: false}}
filters:  []
students: {{enabled: false}}
decontam: {{enabled: false}}
"""


def datasketch_end_to_end(corpus: str, output: str) -> None:
    """datasketch in one process: read, shingle (our normalization), `MinHash(112, seed)` per
    document, `MinHashLSH(params=(14, 8))` insert and query, union-find, write the kept documents."""
    import datasketch

    from stages.minhash import shingles

    texts = load_texts(Path(corpus))
    lsh = datasketch.MinHashLSH(threshold=0.72, num_perm=NUM_PERM, params=(BANDS, ROWS))
    sketches = {}
    for i, text in enumerate(texts):
        words = shingles(text, NGRAM)
        if words:
            sketch = datasketch.MinHash(num_perm=NUM_PERM, seed=SEED)
            sketch.update_batch(words)
            sketches[i] = datasketch.LeanMinHash(sketch)
            lsh.insert(i, sketches[i], check_duplication=False)
    parent = list(range(len(texts)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, sketch in sketches.items():
        for other in lsh.query(sketch):
            a, b = find(i), find(other)
            parent[max(a, b)] = min(a, b)
    with open(output, "w") as out:
        for i, text in enumerate(texts):
            if find(i) == i:
                out.write(json.dumps({"id": i, "text": text}) + "\n")


def _timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds user + system) of a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def end_to_end(corpus: Path) -> None:
    """`mixwright run` with only dedup enabled (one local worker: read, P1 signatures and exact/URL
    keys, P4, P5 removal, the mixture written), against datasketch_end_to_end, each a fresh process;
    the load average when it ends (CPU time is the steadier ratio on a shared machine)."""
    print(f"\n=== end to end, whole process, one worker: {corpus.name} ===")
    runner = "import sys; from pipeline.cli import main; sys.argv[0] = 'mixwright'; main()"
    root = Path(__file__).resolve().parent
    baseline = (  # the repository root too: the baseline shingles with stages.minhash from any folder
        f"import sys; sys.path[:0] = [{str(root)!r}, {str(root.parent)!r}]; "
        "import bench_dedup; bench_dedup.datasketch_end_to_end(*sys.argv[1:])"
    )
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "dedup.yaml"
        config.write_text(DEDUP_ONLY.format(corpus=corpus, output=Path(tmp) / "run"))
        runs = {
            "datasketch": _timed([sys.executable, "-c", baseline, str(corpus), str(Path(tmp) / "kept.jsonl")]),
            "ours (exact + url + minhash, the default)": _timed([sys.executable, "-c", runner, "run", str(config)]),
        }
        no_exact = ["--set", "dedup.exact=false", "--set", "dedup.url=false", "--output", str(Path(tmp) / "run2")]
        runs["ours (minhash only)"] = _timed([sys.executable, "-c", runner, "run", str(config), *no_exact])
    wall, cpu = runs["datasketch"]
    for label, (w, c) in runs.items():
        ratios = f"datasketch/this {wall / w:4.2f}x wall, {cpu / c:4.2f}x CPU"
        print(f"  {label:42s} {w:7.1f} s wall {c:7.1f} s CPU   {ratios}")
    print(f"  load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")


# --- driver -------------------------------------------------------------------------------------


def bench(name: str, texts: list[str], baseline_docs: int) -> None:
    from stages.minhash import lsh_threshold

    print(f"\n=== {name}: {len(texts)} documents, {sum(map(len, texts)) / len(texts) / 1000:.2f} KB/doc ===")
    rates = signature_throughput(texts, baseline_docs)
    for label, rate in rates.items():
        print(f"  {label:28s} {rate:10.0f} docs/s")
    for kind in ("end-to-end", "signature-only"):
        ours = rates[f"ours {kind}"]
        print(
            f"  ratio {kind:15s} ours/datasketch {ours / rates[f'datasketch {kind}']:5.1f}x "
            f"(shared-perm {ours / rates[f'datasketch shared-perm {kind}']:4.1f}x)   "
            f"ours/datatrove {ours / rates[f'datatrove {kind}']:5.1f}x"
        )

    threshold = lsh_threshold(BANDS, ROWS)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_inputs(texts, folder, tasks=max(1, len(texts) // 5000))
        # each fresh process first runs on these, so one-time costs (lazy imports, allocator
        # arenas) are not counted as per-document memory
        write_inputs(texts[:1000], folder / "warm-up", tasks=1)
        runs = {
            "ours (verify)": in_fresh_process(_ours, str(folder), True),
            "ours (verify, 14x8 only)": in_fresh_process(_ours, str(folder), True, False),
            "ours (no verify)": in_fresh_process(_ours, str(folder), False),
            "datasketch MinHashLSH": in_fresh_process(_datasketch, str(folder)),
        }
    true_components = components(exact_pairs(texts, threshold))
    truth = same_cluster_pairs(true_components)
    print(f"  LSH + clustering (threshold {threshold:.3f}, {len(truth)} true same-cluster pairs):")
    for label, run in runs.items():
        labels = dict(run["clusters"])
        p, r, f = prf(same_cluster_pairs(labels), truth)
        print(
            f"    {label:24s} {run['seconds']:7.2f} s  {len(texts) / run['seconds']:9.0f} docs/s  "
            f"{run['peak_bytes'] / len(texts):7.0f} B/doc peak   P {p:.3f} R {r:.3f} F1 {f:.3f}  "
            f"wrongful removals {wrongful_removals(labels, true_components)}"
        )
    ours, theirs = runs["ours (verify)"], runs["datasketch MinHashLSH"]
    print(
        f"  ratio LSH+clustering: {theirs['seconds'] / ours['seconds']:.1f}x faster, "
        f"memory {ours['peak_bytes'] / max(theirs['peak_bytes'], 1):.2f}x of datasketch's"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--synthetic-docs", type=int, default=20000)
    parser.add_argument("--real-docs", type=int, default=0, help="0 = the whole real corpus")
    parser.add_argument("--baseline-docs", type=int, default=2000, help="documents timed for the baselines' signatures")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--no-end-to-end", action="store_true", help="skip the whole-process runs on the real corpus")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from pipeline.engine import configure_logging

    configure_logging()
    if args.synthetic_docs:
        with tempfile.TemporaryDirectory() as tmp:
            bench("synthetic", synthetic_texts(args.synthetic_docs, Path(tmp)), args.baseline_docs)
    if not args.corpus.is_file():
        print(f"\n(no real corpus at {args.corpus}: skipped)")
        return
    bench(f"real ({args.corpus.name})", load_texts(args.corpus, args.real_docs or None), args.baseline_docs)
    if not args.no_end_to_end:
        end_to_end(args.corpus)


if __name__ == "__main__":
    main()
