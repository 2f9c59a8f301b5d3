"""Bad input end to end: every malformed kind, a 20 MB document, duplicate ids, an empty file and a
truncated .gz beside a real corpus, through every phase. Nothing crashes, every bad record is in
quarantine, and the funnel's conservation check holds."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pyarrow.dataset as ds

from pipeline.config import load_config
from pipeline.runner import run_pipeline
from tests.conftest import table_rows, write_config

BAD_LINES = [
    b'{"id": "broken", "text": ',  # bad JSON
    b'{"id": "latin1", "text": "caf\xe9 au lait"}',  # invalid UTF-8
    json.dumps({"id": "missing"}).encode(),
    json.dumps({"id": "null", "text": None}).encode(),
    json.dumps({"id": "number", "text": 42}).encode(),
    json.dumps({"id": "empty", "text": ""}).encode(),
]


def test_every_bad_kind_end_to_end(small_corpus, tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    shutil.copy(small_corpus / "corpus.jsonl", inputs / "corpus.jsonl")
    clean = [json.loads(line) for line in (small_corpus / "corpus.jsonl").open()][:2]
    duplicate_ids = [json.dumps({"id": "same-id", "text": r["text"]}).encode() for r in clean]
    (inputs / "bad.jsonl").write_bytes(b"\n".join(BAD_LINES + duplicate_ids) + b"\n")
    sentence = "The committee reviewed the harbour budget and approved the repairs. "
    (inputs / "huge.jsonl").write_text(
        json.dumps({"id": "huge", "text": sentence * (20 * 2**20 // len(sentence))}) + "\n"
    )
    (inputs / "empty.jsonl").write_text("")
    payload = gzip.compress(
        b"".join(json.dumps({"id": f"gz{i}", "text": clean[0]["text"]}).encode() + b"\n" for i in range(50))
    )
    (inputs / "truncated.jsonl.gz").write_bytes(payload[: len(payload) // 2])

    run_dir = tmp_path / "run"
    cfg = write_config(tmp_path / "bad.yaml", small_corpus, run_dir, engine={"kind": "local", "workers": 2})
    config = load_config(cfg, inputs=[str(inputs / "*.jsonl"), str(inputs / "*.jsonl.gz")])
    funnel = run_pipeline(config, show_progress=False)

    quarantined = table_rows(run_dir / "quarantine", sort_by="line")
    by_file = {(Path(q["file"]).name, q["line"]) for q in quarantined}
    assert {("bad.jsonl", line) for line in range(1, 7)} <= by_file, "each malformed record is quarantined"
    assert any(name == "truncated.jsonl.gz" for name, _ in by_file)
    assert len(quarantined) == len(BAD_LINES) + 1
    assert funnel["conservation"]["holds"], funnel["conservation"]
    assert funnel["conservation"]["quarantined"] == len(quarantined)

    rejected = table_rows(run_dir / "rejected")
    huge = [r for r in rejected if r["id"] == "huge"]
    assert len(huge) == 1 and huge[0]["stage"] == "gopher_quality", "the 20 MB document is filtered, not lost"
    mixture = ds.dataset(run_dir / "mixture", format="parquet", partitioning="hive", exclude_invalid_files=True)
    ids = mixture.to_table(columns=["id"]).column("id").to_pylist() + [r["id"] for r in rejected]
    assert ids.count("same-id") == 2, "documents sharing an id are both accounted for"
