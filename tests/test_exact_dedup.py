"""Exact and URL dedup before MinHash: keepers by the near-dedup rule (URL: latest date), rejected rows
with the keeper's id, funnel rows, dedup.json sections, and a smaller MinHash input."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from datatrove.data import Document

from pipeline.config import load_config
from pipeline.runner import run_pipeline
from stages.exact_dedup import KEY_SCHEMA, document_keys, find_duplicates, normalize_url, text_hash
from tests.conftest import table_rows, write_config

BASE = "The tide came in slowly over the flat sand while gulls circled above the old pier {}."


def keys(rows: list[dict]) -> pa.Table:
    """The keys of (id, text, quality, url, date) dicts as documents; uid = position, two tasks."""
    out = []
    for uid, row in enumerate(rows):
        metadata = {"uid": uid} | {k: row[k] for k in ("quality", "url", "date") if row.get(k) is not None}
        out.append(document_keys(Document(text=row["text"], id=row["id"], metadata=metadata)) | {"task": uid % 2})
    return pa.Table.from_pylist(out, schema=KEY_SCHEMA.append(pa.field("task", pa.int32())))


def removed_of(rows: list[dict], exact: bool = True, url: bool = True) -> dict[str, tuple[str, str]]:
    removed, _ = find_duplicates(keys(rows), exact, url)
    return {rows[r["uid"]]["id"]: (r["stage"], r["keeper"]) for r in removed.to_pylist()}


def test_text_hash_normalises_case_and_whitespace():
    assert text_hash("Hello  World\n") == text_hash("hello world")
    assert text_hash("hello world") != text_hash("hello worlds")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("http://www.Example.com/a/", "https://example.com/a"),
        ("http://example.com:80/a#frag", "http://example.com/a"),
        ("http://example.com/a?y=2&x=1", "http://example.com/a?x=1&y=2"),
    ],
)
def test_urls_that_name_the_same_page(a, b):
    assert normalize_url(a) == normalize_url(b)


def test_urls_that_differ():
    assert normalize_url("http://example.com/a") != normalize_url("http://example.com/b")
    assert normalize_url("http://example.com:8080/a") != normalize_url("http://example.com/a")
    assert normalize_url("not a url") is None


def test_exact_keeper_is_best_quality_then_smallest_id():
    text = BASE.format(1)
    rows = [
        {"id": "c", "text": text, "quality": 2.0},
        {"id": "b", "text": text.upper(), "quality": 3.0},
        {"id": "a", "text": text, "quality": 3.0},
        {"id": "0", "text": text, "quality": None},  # no quality ranks last despite the smallest id
        {"id": "solo", "text": BASE.format(2), "quality": 1.0},
    ]
    assert removed_of(rows) == {"c": ("exact", "a"), "b": ("exact", "a"), "0": ("exact", "a")}


def test_url_keeper_is_best_quality_then_latest_date_among_exact_survivors():
    rows = [
        {"id": "old", "text": BASE.format(1), "quality": 2.0, "url": "http://x.org/p", "date": "2020-01-01"},
        {"id": "new", "text": BASE.format(2), "quality": 2.0, "url": "https://www.x.org/p/", "date": "2024-01-01"},
        {"id": "undated", "text": BASE.format(3), "quality": 2.0, "url": "http://x.org/p"},
        # the best-quality copy of the URL is an exact duplicate of "other": it is removed first
        {"id": "zz", "text": BASE.format(4), "quality": 5.0, "url": "http://x.org/p", "date": "2025-01-01"},
        {"id": "other", "text": BASE.format(4), "quality": 5.0, "url": "http://y.org/"},
        {"id": "nourl", "text": BASE.format(5), "quality": 1.0},
    ]
    assert removed_of(rows) == {
        "zz": ("exact", "other"),
        "old": ("url", "new"),
        "undated": ("url", "new"),
    }
    assert removed_of(rows, url=False) == {"zz": ("exact", "other")}
    assert removed_of(rows, exact=False) == {
        "old": ("url", "zz"),
        "new": ("url", "zz"),
        "undated": ("url", "zz"),
    }


def test_summary_counts():
    rows = [{"id": str(i), "text": BASE.format(i % 3), "url": f"http://a.org/{i}"} for i in range(30)]
    removed, summary = find_duplicates(keys(rows), exact=True, url=True)
    assert summary["exact"] == {"documents_in": 30, "groups": 3, "removed": 27}
    assert summary["url"]["documents_in"] == 3 and summary["url"]["removed"] == 0
    assert removed.column("task").to_pylist() == sorted(removed.column("task").to_pylist())


def _corpus(path: Path) -> Path:
    """60 distinct documents, 12 exact copies (one differing in case and spacing), 5 URL repeats."""
    words = "harbour lantern orchard meadow river candle anchor willow pebble thunder".split()
    records = []
    for i in range(60):
        text = " ".join(f"{words[(i * 7 + k) % 10]}{(i * 31 + k * 17) % 97}" for k in range(80))
        date = f"2024-01-{i % 28 + 1:02d}"
        records.append({"id": f"d{i:03d}", "text": text, "url": f"http://site.org/{i}", "date": date})
    for i in range(12):
        text = records[i]["text"] if i else records[0]["text"].upper().replace(" ", "  ")
        records.append({"id": f"e{i:03d}", "text": text, "url": f"http://copies.org/{i}"})
    for i in range(5):
        text = " ".join(f"page{i}word{k}" for k in range(80))
        url = f"https://www.site.org/{20 + i}/"
        records.append({"id": f"u{i:03d}", "text": text, "url": url, "date": "2025-06-01"})
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_pipeline_funnel_rejected_and_report(tmp_path):
    corpus = _corpus(tmp_path / "corpus.jsonl")
    config = write_config(
        tmp_path / "c.json",
        [str(corpus)],
        tmp_path / "run",
        langid={"enabled": False},
        filters=[],
        decontam={"enabled": False},
        input={"shard_mb": 0.01},
    )
    funnel = run_pipeline(load_config(config), show_progress=False)
    rows = {row["name"]: row for row in funnel["stages"]}
    names = [row["name"] for row in funnel["stages"]]
    assert names.index("exact") < names.index("url") < names.index("dedup")
    assert rows["exact"]["rejected"] == 12 and rows["exact"]["reasons"] == {"exact_duplicate": 12}
    assert rows["url"]["rejected"] == 5 and rows["url"]["reasons"] == {"url_duplicate": 5}
    assert funnel["conservation"]["holds"]
    exact = table_rows(tmp_path / "run" / "rejected" / "exact")
    # d-documents have no quality here: smallest id keeps
    keepers = {r["id"]: json.loads(r["details"])["keeper"] for r in exact}
    assert keepers == {f"e{i:03d}": f"d{i:03d}" for i in range(12)}
    url = table_rows(tmp_path / "run" / "rejected" / "url")
    # same quality (none): the latest date keeps
    keepers = {r["id"]: json.loads(r["details"])["keeper"] for r in url}
    assert keepers == {f"d{20 + i:03d}": f"u{i:03d}" for i in range(5)}
    report = json.loads((tmp_path / "run" / "reports" / "dedup.json").read_text())
    assert report["exact"]["removed"] == 12 and report["url"]["removed"] == 5
    assert report["documents_in"] == 77 - 17  # MinHash sees only what exact and URL dedup kept


def test_switches_off_give_no_rows(tmp_path):
    corpus = _corpus(tmp_path / "corpus.jsonl")
    config = write_config(
        tmp_path / "c.json",
        [str(corpus)],
        tmp_path / "run",
        langid={"enabled": False},
        filters=[],
        decontam={"enabled": False},
        dedup={"exact": False, "url": False},
    )
    funnel = run_pipeline(load_config(config), show_progress=False)
    names = [row["name"] for row in funnel["stages"]]
    assert "exact" not in names and "url" not in names
    # MinHash still catches the exact copies
    assert {row["name"]: row for row in funnel["stages"]}["dedup"]["rejected"] >= 12
    assert funnel["conservation"]["holds"]


def test_partitioned_p4_gives_the_same_exact_url_and_near_removals(tmp_path, monkeypatch):
    """Many tasks (bucket, duplicates and candidate steps) remove the same documents, with the same
    keepers, as one LSH task; P3 with nothing to do is not copied (P4 and P5 read P1's documents)."""
    from stages import dedup as dedup_stage

    corpus = _corpus(tmp_path / "corpus.jsonl")
    outputs = {}
    for label, fused_max_tasks in (("one-task", dedup_stage.FUSED_MAX_TASKS), ("partitioned", 1)):
        monkeypatch.setattr(dedup_stage, "FUSED_MAX_TASKS", fused_max_tasks)
        run_dir = tmp_path / label
        config = write_config(
            tmp_path / f"{label}.json",
            [str(corpus)],
            run_dir,
            langid={"enabled": False},
            filters=[],
            decontam={"enabled": False},
            input={"shard_mb": 0.01},
        )
        funnel = run_pipeline(load_config(config), show_progress=False)
        assert funnel["conservation"]["holds"]
        assert not (run_dir / "work" / "p3_score" / "docs").exists()
        logs = {p.name for p in (run_dir / "work" / "p4_dedup" / "logs").iterdir()}
        assert logs == ({"lsh"} if label == "one-task" else {"buckets", "duplicates", "candidates"})
        outputs[label] = {stage: table_rows(run_dir / "rejected" / stage) for stage in ("exact", "url", "dedup")}
    assert outputs["one-task"] == outputs["partitioned"]
    assert len(outputs["one-task"]["exact"]) == 12 and len(outputs["one-task"]["url"]) == 5


def test_p4_takes_quality_from_the_p3_documents_and_keys_from_p1(tmp_path):
    """P1 hashes texts and URLs (no quality yet); P4 joins the quality P3 gave each document, so the
    exact keeper is the best-quality copy, and a document P3 dropped never takes part."""
    from pipeline.config import DedupConfig
    from pipeline.docio import task_file, write_documents
    from stages.dedup import EXACT_DIR, LshStep
    from stages.exact_dedup import load_removed
    from stages.minhash import MinhashSignatureStep

    config = DedupConfig()
    texts = [BASE.format(1), BASE.format(1).upper(), BASE.format(1), BASE.format(2), BASE.format(2)]
    qualities = [1.0, 4.0, 2.0, 3.0, None]
    p1 = [Document(text=t, id=f"d{i}", metadata={"uid": 100 + i}) for i, t in enumerate(texts)]
    for rank, chunk in enumerate((p1[:3], p1[3:])):
        list(MinhashSignatureStep(config, tmp_path / "signatures").run(iter(chunk), rank=rank))
    p3 = [
        Document(text=d.text, id=d.id, metadata=d.metadata | ({"quality": q} if q is not None else {}))
        for d, q in zip(p1, qualities)
        if d.id != "d3"  # dropped by a P3 filter: d4 is then alone
    ]
    write_documents(task_file(tmp_path / "documents", 0), p3[:3])
    write_documents(task_file(tmp_path / "documents", 1), p3[3:])
    list(LshStep(tmp_path / "signatures", tmp_path / "documents", tmp_path / "work", config, 2).run())
    removed = load_removed(tmp_path / "work" / EXACT_DIR, 0) | load_removed(tmp_path / "work" / EXACT_DIR, 1)
    assert removed == {100: ("exact", "d1"), 102: ("exact", "d1")}


def test_normalize_text_is_split_and_join():
    """Every character str.split() splits on, runs of them, case and lone surrogates, against the reference."""
    import random
    import sys

    from stages.exact_dedup import normalize_text

    assert not any(chr(c).isspace() for c in range(0x3001, sys.maxunicode + 1))
    alphabet = ["a", "B", " ", "  ", "\t", "\n", "\r", "\x0b", "\x1c", "\x1f", "\x85", "\xa0", "\u2003", "\u3000"]
    alphabet += ["\u2028", "é", "İ", "Σ", "\ud800", "中"]
    rng = random.Random(7)
    for _ in range(5000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 16)))
        assert normalize_text(text) == " ".join(text.lower().split()).encode("utf-8", "surrogatepass"), repr(text)
