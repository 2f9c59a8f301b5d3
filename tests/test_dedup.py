"""MinHash near-dedup: datasketch-exact signatures, LSH clusters on both engines, keepers, P5 removal, report."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path

import datasketch
import numpy as np
import pytest
from datasketch.lsh import _optimal_param
from datatrove.data import Document

from pipeline.config import DedupConfig, EngineConfig
from pipeline.dedup_report import write_dedup_report
from pipeline.docio import RejectWriter, read_documents, task_file, write_documents
from pipeline.errors import PhaseFailed
from pipeline.phases import run_near_dedup
from pipeline.synth import generate
from stages import dedup as dedup_stage
from stages.dedup import DedupFilter
from stages.lsh import PairVerifier, band_keys, bucket_edges, connected_components
from stages.minhash import (
    MinHasher,
    MinhashSignatureStep,
    bands_rows_for_threshold,
    candidate_probability,
    shingle_hash,
    shingles,
    verify_threshold,
    words,
)
from tests.conftest import table_rows

LOCAL1 = EngineConfig(kind="local", workers=1)
LOCAL2 = EngineConfig(kind="local", workers=2)
# (id, text, quality or None)
Record = tuple[str, str, float | None]


def prepare(
    root: Path, records: list[Record], tasks: int, config: DedupConfig, dropped_after_p1: set[str] = frozenset()
) -> tuple[Path, Path]:
    """P1 signatures and P3 documents of `records` split into `tasks` tasks; records whose id is in
    `dropped_after_p1` get a signature but no P3 document (as if a P3 filter removed them)."""
    docs = [
        Document(text=text, id=doc_id, metadata={"uid": uid} | ({"quality": q} if q is not None else {}))
        for uid, (doc_id, text, q) in enumerate(records)
    ]
    per = -(-len(docs) // tasks)
    for rank in range(tasks):
        chunk = docs[rank * per : (rank + 1) * per]
        list(MinhashSignatureStep(config, root / "signatures").run(iter(chunk), rank=rank))
        write_documents(task_file(root / "documents", rank), [d for d in chunk if d.id not in dropped_after_p1])
    return root / "signatures", root / "documents"


def run_p4(
    root: Path, records: list[Record], tasks: int, config: DedupConfig, engine: EngineConfig = LOCAL1, **kw
) -> dict:
    signatures, documents = prepare(root, records, tasks, config, **kw)
    return run_near_dedup(signatures, documents, root / "work", config, engine, show_progress=False)


def assignment(root: Path) -> list[dict]:
    return table_rows(root / "work" / "assignment", sort_by="uid")


def clusters_by_id(root: Path, records: list[Record]) -> dict[int, set[str]]:
    out: dict[int, set[str]] = defaultdict(set)
    for row in assignment(root):
        out[row["cluster"]].add(records[row["uid"]][0])
    return dict(out)


def jaccard(a: str, b: str, ngram: int = 5) -> float:
    x, y = set(shingles(a, ngram)), set(shingles(b, ngram))
    return len(x & y) / len(x | y)


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> tuple[list[Record], list[int | None]]:
    """2000 synthetic documents with their ground-truth near-duplicate groups."""
    folder = tmp_path_factory.mktemp("synth")
    generate(folder, docs=2000, seed=11)
    rows = [json.loads(line) for line in (folder / "corpus.jsonl").open()]
    return [(r["id"], r["text"], r["meta"]["quality"]) for r in rows], [r["meta"]["dup_group"] for r in rows]


@pytest.fixture(scope="module")
def synth_run(synth, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth_run")
    run_p4(root, synth[0], tasks=4, config=DedupConfig(), engine=LOCAL2)
    return root


# --- signatures ---------------------------------------------------------------------------------

TEXTS = [
    "The quick brown fox jumps over the lazy dog, again and again; the dog sleeps.",
    "Café crème à Paris: naïve façade, Über straße — déjà vu!",
    "two words",
    "A" * 5 + " b_c d\x1ce f g h i j k l m n o p",
]


@pytest.mark.parametrize(("ngram", "num_perm", "seed"), [(5, 112, 1), (3, 64, 7), (1, 128, 0)])
def test_signatures_equal_datasketch(ngram, num_perm, seed):
    hasher = MinHasher(ngram=ngram, num_perm=num_perm, seed=seed)
    signatures, mask = hasher.signatures(TEXTS)
    assert mask.all()
    for text, ours in zip(TEXTS, signatures):
        reference = datasketch.MinHash(num_perm=num_perm, seed=seed, hashfunc=shingle_hash)
        reference.update_batch(shingles(text, ngram))
        assert reference.hashvalues.dtype == np.uint32
        np.testing.assert_array_equal(ours, reference.hashvalues)


def test_signatures_are_blocked_per_document_not_per_batch():
    """A document's signature does not depend on its batch neighbours (block boundaries)."""
    hasher = MinHasher(ngram=5, num_perm=112, seed=1)
    long_text = " ".join(f"w{i}" for i in range(20000))  # more shingles than one block
    together, _ = hasher.signatures([TEXTS[0], long_text, TEXTS[1]])
    alone = np.concatenate([hasher.signatures([t])[0] for t in (TEXTS[0], long_text, TEXTS[1])])
    np.testing.assert_array_equal(together, alone)


def test_ascii_fast_path_matches_regex_words():
    import re

    samples = ["Don't STOP!!! e-mail me_now\x1cplease\x1d\x1e\x1fok", "a\tb\nc\x0bd\x0ce\rf", "__init__ (x+y)=z; [1,2]"]
    for text in samples:
        assert words(text) == [w.encode() for w in re.sub(r"[^\w\s]+", "", text.lower()).split()]


def test_s_curve_and_derived_shape_match_datasketch():
    assert candidate_probability(0.8, 14, 8) == pytest.approx(1 - (1 - 0.8**8) ** 14)
    for threshold in (0.5, 0.7, 0.8, 0.9):
        assert bands_rows_for_threshold(threshold, 112) == _optimal_param(threshold, 112, 0.5, 0.5)


# --- pure LSH pieces ----------------------------------------------------------------------------


def test_bucket_edges_star_and_verification():
    key = np.array([7, 7, 7, 7], dtype=np.uint64)
    doc = np.array([2, 0, 1, 3])  # document numbers: a smaller number is a smaller uid
    # document 0 (the root) is unlike the others; 1 and 2 agree on 9 of 10 values; 3 on nothing
    signatures = np.array([[2] * 10, [1] * 9 + [5], [1] * 10, [3] * 10], dtype=np.uint32)
    assert bucket_edges(key, doc).tolist() == [[1, 0], [2, 0], [3, 0]]
    assert bucket_edges(key, doc, PairVerifier(signatures, 0.85, margin=0.0)).tolist() == [[2, 1]]
    # another key is another bucket
    assert bucket_edges(np.array([7, 8], dtype=np.uint64), doc[:2]).size == 0


def test_bucket_edges_links_a_failure_to_a_member_that_passed():
    """Root 0; 1 is similar to it; 2 is not, but is similar to 1 (a pairwise test of the bucket would
    link them); 3 and 4 fail everything but each other; 5 matches nothing."""
    signatures = np.array(
        [[0] * 10, [0] * 8 + [1] * 2, [0] * 6 + [1] * 4, [7] * 10, [7] * 9 + [8], [9] * 10], dtype=np.uint32
    )
    key = np.full(6, 3, dtype=np.uint64)
    doc = np.array([5, 4, 3, 2, 1, 0])
    edges = bucket_edges(key, doc, PairVerifier(signatures, 0.75, margin=0.0))
    assert edges.tolist() == [[1, 0], [2, 1], [4, 3]]


def test_offset_bands_keys_and_their_s_curve():
    """The offset bands take the values shifted by rows // 2 (the last wraps around); the exact
    candidate probability with them matches a simulation of band_keys."""
    a = np.arange(112, dtype=np.uint32)
    b = a + 1000
    b[4:12] = a[4:12]  # agree on values 4..11 only: the first offset band, no classic band
    keys = band_keys(np.stack([a, b]), 14, 8, offset=True)
    assert keys.shape == (2, 28) and (keys[0] == keys[1]).tolist() == [False] * 14 + [True] + [False] * 13
    np.testing.assert_array_equal(keys[:, :14], band_keys(np.stack([a, b]), 14, 8))
    wrapped = a + 1000
    wrapped[[108, 109, 110, 111, 0, 1, 2, 3]] = a[[108, 109, 110, 111, 0, 1, 2, 3]]
    wrapped_keys = band_keys(np.stack([a, wrapped]), 14, 8, offset=True)
    assert (wrapped_keys[0] == wrapped_keys[1]).tolist() == [False] * 27 + [True]

    rng = np.random.default_rng(0)
    agree = rng.random((20000, 112)) < 0.75
    signatures = np.where(agree, 0, 1 + np.arange(112)).astype(np.uint32)
    hit = band_keys(signatures, 14, 8, offset=True) == band_keys(np.zeros((1, 112), np.uint32), 14, 8, offset=True)
    assert hit.any(axis=1).mean() == pytest.approx(candidate_probability(0.75, 14, 8, offset=True), abs=0.01)
    assert candidate_probability(0.75, 14, 8, offset=True) > candidate_probability(0.75, 14, 8) + 0.1


def test_verifier_asks_exact_jaccard_only_near_the_threshold():
    """Estimates 0.5, 0.7, 0.9 around a threshold of 0.72 with margin 0.1: only the pair estimated
    at 0.7 is decided by its exact Jaccard, which overrules the estimate either way."""
    signatures = np.array([[0] * 10, [0] * 5 + [1] * 5, [0] * 7 + [1] * 3, [0] * 9 + [1]], dtype=np.uint32)
    asked: list[tuple[int, int]] = []

    def exact(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        asked.extend(zip(a.tolist(), b.tolist()))
        return np.full(len(a), 0.73)

    verifier = PairVerifier(signatures, 0.72, margin=0.1, exact=exact)
    assert verifier(np.array([1, 2, 3]), np.array([0, 0, 0])).tolist() == [False, True, True]
    assert asked == [(2, 0)] and verifier.exact_pairs == 1


def test_connected_components_matches_reference():
    rng = random.Random(3)
    src = np.array([rng.randrange(-500, 500) for _ in range(600)])
    dst = np.array([rng.randrange(-500, 500) for _ in range(600)])
    nodes, labels = connected_components(src, dst)
    parent = {n: n for n in nodes.tolist()}

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    for a, b in zip(src.tolist(), dst.tolist()):
        ra, rb = find(a), find(b)
        parent[max(ra, rb)] = min(ra, rb)
    assert labels.tolist() == [find(n) for n in nodes.tolist()]


# --- P4 on documents ----------------------------------------------------------------------------


def test_synthetic_near_duplicates_precision_recall(synth, synth_run):
    """Recall is asserted on ground-truth pairs with exact Jaccard >= 0.8: each such pair becomes a
    candidate with probability >= 0.92 (14 x 8 S-curve) and passes verification (std of the estimate
    0.04 at 112 values) with >= 0.98, and the group's other members link it transitively, so >= 0.95
    leaves room for chance only. Pairs of 0.2 edit rate (Jaccard ~0.2) are not near-duplicates at
    this threshold and are not asked for. A clustered pair counts as correct when the generator put
    both in one group or when the texts are near-copies anyway (exact Jaccard >= 0.6: short template
    documents such as "it is what it is, I guess, with the X." collide by construction)."""
    records, groups = synth
    clusters = clusters_by_id(synth_run, records)
    index = {r[0]: i for i, r in enumerate(records)}
    cluster_of = {doc: c for c, members in clusters.items() for doc in members}

    members: dict[int, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        if g is not None:
            members[g].append(i)
    close_pairs = [
        (a, b)
        for m in members.values()
        for x, a in enumerate(m)
        for b in m[x + 1 :]
        if jaccard(records[a][1], records[b][1]) >= 0.8
    ]
    found = sum(cluster_of.get(records[a][0], "a") == cluster_of.get(records[b][0], "b") for a, b in close_pairs)
    assert len(close_pairs) >= 50, "the synthetic corpus has enough close pairs to measure recall"
    assert found / len(close_pairs) >= 0.95

    predicted = [(index[a], index[b]) for c in clusters.values() for a in c for b in c if a < b]
    correct = sum(
        (groups[a] is not None and groups[a] == groups[b]) or jaccard(records[a][1], records[b][1]) >= 0.6
        for a, b in predicted
    )
    assert correct / len(predicted) >= 0.99
    # unrelated documents are never merged: no cluster spans two ground-truth groups
    for c in clusters.values():
        assert len({groups[index[d]] for d in c} - {None}) <= 1


def test_same_clusters_with_one_two_workers_and_ray(synth, synth_run, tmp_path, ray_session):
    records = synth[0]
    reference = assignment(synth_run)
    assert len(reference) > 50
    run_p4(tmp_path / "one", records, tasks=4, config=DedupConfig(), engine=LOCAL1)
    assert assignment(tmp_path / "one") == reference
    run_p4(tmp_path / "ray", records, tasks=4, config=DedupConfig(), engine=EngineConfig(kind="ray", workers=2))
    assert assignment(tmp_path / "ray") == reference


def test_partitioned_p4_equals_one_task(synth, synth_run, tmp_path, monkeypatch):
    """Above FUSED_MAX_TASKS, P4 shuffles bucket rows through partitions: the same buckets, so the
    same edges and clusters as the one-task layout."""
    monkeypatch.setattr(dedup_stage, "FUSED_MAX_TASKS", 1)
    run_p4(tmp_path, synth[0], tasks=4, config=DedupConfig(), engine=LOCAL2)
    assert len(list((tmp_path / "work" / "edges").glob("*.parquet"))) == 4
    assert assignment(tmp_path) == assignment(synth_run)


def test_exact_duplicates_always_clustered(synth, tmp_path):
    records = synth[0]
    rng = random.Random(5)
    bases = rng.sample([r for r in records if len(r[1].split()) > 20], 30)
    corpus: list[Record] = list(records[:300])
    expected: list[set[str]] = []
    for n, (doc_id, text, q) in enumerate(bases):
        # copies differ only in what normalization removes: case, punctuation, whitespace
        copies = [(f"{doc_id}-copy{k}", text.upper() + " !" * k, q) for k in range(1 + n % 3)]
        corpus += [(doc_id, text, q), *copies]
        expected.append({doc_id, *(c[0] for c in copies)})
    # fewer words than the n-gram
    corpus += [("short-a", "Tiny text", 1.0), ("short-b", "tiny, TEXT!", None)]
    expected.append({"short-a", "short-b"})
    rng.shuffle(corpus)
    run_p4(tmp_path, corpus, tasks=3, config=DedupConfig())
    clusters = clusters_by_id(tmp_path, corpus)
    for group in expected:
        assert any(group <= c for c in clusters.values()), group


def test_keeper_is_best_quality_then_smallest_id(tmp_path):
    text = "the same words in the same order make the same document every time"
    other = "a completely different text about rivers mountains and the weather in spring"
    records: list[Record] = [
        ("d", text, 2.0),
        ("c", text, 3.0),
        ("b", text, 3.0),
        ("a", text, None),  # no quality ranks below any quality
        ("e", text, 9.0),  # best quality, but dropped by P3: never a keeper
        ("z", other, None),
        ("y", other, None),
    ]
    run_p4(tmp_path, records, tasks=2, config=DedupConfig(), dropped_after_p1={"e"})
    rows = {records[r["uid"]][0]: r for r in assignment(tmp_path)}
    assert set(rows) == {"a", "b", "c", "d", "y", "z"}
    assert {d: rows[d]["keeper"] for d in rows} == {"a": "b", "b": "b", "c": "b", "d": "b", "y": "y", "z": "y"}
    assert [d for d in sorted(rows) if rows[d]["is_keeper"]] == ["b", "y"]
    assert rows["a"]["size"] == 4 and rows["y"]["size"] == 2


def test_empty_and_short_documents(tmp_path):
    """No word after normalization: no signature, never clustered, passed through by P5. Fewer words
    than the n-gram: the whole text is one shingle, so short exact copies still cluster."""
    records: list[Record] = [
        ("p1", "!!! ??? ...", None),
        ("p2", "!!! ??? ...", None),
        ("e1", "", None),
        ("s1", "Hello world", None),
        ("s2", "hello, WORLD!", None),
        ("s3", "hello", None),
        ("s4", "world hello", None),
    ]
    summary = run_p4(tmp_path, records, tasks=2, config=DedupConfig())
    assert summary["documents_without_signature"] == 3
    assert summary["documents_in"] == 7
    assert list(clusters_by_id(tmp_path, records).values()) == [{"s1", "s2"}]
    kept, rejected = _run_p5(tmp_path)
    assert {d.id for d in kept} == {"p1", "p2", "e1", "s1", "s3", "s4"}
    removed = [(r["id"], r["reason"], json.loads(r["details"])) for r in rejected]
    assert removed == [("s2", "near_duplicate", {"keeper": "s1"})]


def test_corpus_without_duplicates(tmp_path):
    """No candidate pair at all: no cluster, nothing removed (this used to crash the keeper step)."""
    records: list[Record] = [
        (f"u{i}", f"document {i} talks about topic {i * 7919} in words {i} {i + 1} {i + 2}", None) for i in range(20)
    ]
    summary = run_p4(tmp_path, records, tasks=2, config=DedupConfig())
    assert (summary["clusters"], summary["removed"], summary["documents_in"]) == (0, 0, 20)
    assert assignment(tmp_path) == []
    kept, rejected = _run_p5(tmp_path)
    assert len(kept) == 20 and rejected == []


def _run_p5(root: Path) -> tuple[list[Document], list[dict]]:
    kept = []
    for rank in range(len(list((root / "documents").glob("*.parquet")))):
        step = DedupFilter(root / "work", {"dedup": RejectWriter(root / "rejected", "dedup")})
        kept += list(step.run(read_documents(task_file(root / "documents", rank)), rank=rank))
    return kept, table_rows(root / "rejected" / "dedup")


def test_p5_removal_metadata_and_report(synth, synth_run, tmp_path):
    records = synth[0]
    kept, rejected = _run_p5(synth_run)
    rows = assignment(synth_run)
    keepers = {r["uid"]: r for r in rows if r["is_keeper"]}
    assert len(kept) + len(rejected) == len(records)
    assert {r["id"] for r in rejected} == {records[r["uid"]][0] for r in rows if not r["is_keeper"]}
    assert all(r["reason"] == "near_duplicate" and r["stage"] == "dedup" for r in rejected)
    keeper_ids = {records[u][0] for u in keepers}
    assert {json.loads(r["details"])["keeper"] for r in rejected} <= keeper_ids
    tagged = [d for d in kept if "dup_cluster" in d.metadata]
    assert {d.metadata["uid"] for d in tagged} == set(keepers)
    assert all(d.metadata["dup_cluster_size"] == keepers[d.metadata["uid"]]["size"] > 1 for d in tagged)

    report = write_dedup_report(synth_run / "work", DedupConfig(), tmp_path / "dedup.json")
    assert json.loads((tmp_path / "dedup.json").read_text()) == report
    assert report["documents_in"] == len(records) and report["removed"] == len(rejected)
    assert report["kept"] == len(kept) and report["clusters"] == len(keepers)
    assert sum(int(k) * v for k, v in report["cluster_size_histogram"].items()) == len(rows)
    sizes = [c["size"] for c in report["largest_clusters"]]
    assert sizes == sorted(sizes, reverse=True) and len(sizes) == min(10, len(keepers))
    assert {c["keeper"] for c in report["largest_clusters"]} <= keeper_ids
    assert report["parameters"] == {
        "ngram": 5,
        "bands": 14,
        "rows": 8,
        "num_perm": 112,
        "seed": 1,
        "threshold": None,
        "lsh_threshold": 0.719,
        "offset_bands": True,
        "verify": True,
        "verify_threshold": 0.719,
    }
    assert report["s_curve"]["0.8"] == pytest.approx(candidate_probability(0.8, 14, 8, offset=True), abs=1e-4)
    assert set(report["s_curve"]) == {"0.5", "0.7", "0.8", "0.9"}


def test_threshold_derives_shape_and_verify_off_links_more(synth, tmp_path):
    records = synth[0][:800]
    loose = DedupConfig(threshold=0.5, verify=False)
    summary = run_p4(tmp_path / "loose", records, tasks=2, config=loose)
    strict = run_p4(tmp_path / "strict", records, tasks=2, config=DedupConfig(threshold=0.5))
    assert summary["documents_in_clusters"] >= strict["documents_in_clusters"] > 0
    report = write_dedup_report(tmp_path / "loose" / "work", loose, tmp_path / "r.json")
    assert (report["parameters"]["bands"], report["parameters"]["rows"]) == bands_rows_for_threshold(0.5, 112)


@pytest.mark.parametrize("fused_max_tasks", [dedup_stage.FUSED_MAX_TASKS, 1], ids=["one-task", "partitioned"])
def test_p4_resumes_without_recomputing_signatures(synth, tmp_path, monkeypatch, fused_max_tasks):
    monkeypatch.setattr(dedup_stage, "FUSED_MAX_TASKS", fused_max_tasks)
    records = synth[0][:600]
    config = DedupConfig()
    signatures, documents = prepare(tmp_path, records, tasks=3, config=config)
    signature_mtimes = {p: p.stat().st_mtime_ns for p in signatures.iterdir()}
    hidden = tmp_path / "hidden.parquet"
    task_file(documents, 1).rename(hidden)  # task 1 of P4 fails: its documents are missing
    with pytest.raises((FileNotFoundError, PhaseFailed)):
        run_near_dedup(signatures, documents, tmp_path / "work", config, LOCAL1, show_progress=False)
    done = task_file(tmp_path / "work" / "buckets", 0)
    done_mtime = done.stat().st_mtime_ns if done.exists() else None
    hidden.rename(task_file(documents, 1))
    summary = run_near_dedup(signatures, documents, tmp_path / "work", config, LOCAL1, show_progress=False)
    if fused_max_tasks == 1:
        assert done.stat().st_mtime_ns == done_mtime, "a completed task is not redone"
    assert {p: p.stat().st_mtime_ns for p in signatures.iterdir()} == signature_mtimes
    fresh = run_p4(tmp_path / "fresh", records, tasks=3, config=config)
    assert summary == fresh and assignment(tmp_path) == assignment(tmp_path / "fresh")


def test_pairs_near_the_threshold_are_decided_by_exact_jaccard(tmp_path):
    """Edited copies with exact Jaccard 0.6-0.85 around the 0.719 threshold: every pair that shares
    a band is clustered exactly when its exact Jaccard is >= the threshold, also where its 112-value
    estimate falls on the other side (which happens to several pairs here)."""
    rng = random.Random(7)
    vocab = [f"w{i}" for i in range(20000)]
    records: list[Record] = []
    for n in range(80):
        base = rng.sample(vocab, 300)
        copy = list(base)
        for position in rng.sample(range(300), 7 + n % 8):
            copy[position] = rng.choice(vocab)
        records += [(f"b{n}", " ".join(base), None), (f"c{n}", " ".join(copy), None)]
    config = DedupConfig()
    run_p4(tmp_path, records, tasks=2, config=config)
    cluster = {records[r["uid"]][0]: r["cluster"] for r in assignment(tmp_path)}
    signatures, _ = MinHasher.from_config(config).signatures([text for _, text, _ in records])
    keys = band_keys(signatures, 14, 8)
    threshold = verify_threshold(config)
    candidates = misjudged = 0
    for n in range(80):
        a, b = 2 * n, 2 * n + 1
        if not (keys[a] == keys[b]).any():
            continue
        candidates += 1
        similar = jaccard(records[a][1], records[b][1]) >= threshold
        misjudged += ((signatures[a] == signatures[b]).mean() >= threshold) != similar
        linked = cluster.get(f"b{n}", -1) == cluster.get(f"c{n}", -2)
        assert linked == similar, (n, jaccard(records[a][1], records[b][1]))
    assert candidates >= 40 and misjudged >= 3
