"""Reading: every malformed record is quarantined with file, line and error; shards cover the input
exactly once whatever the file layout."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.config import InputConfig
from pipeline.docio import read_documents
from pipeline.errors import ConfigError
from stages.reader import ShardReader, cut_shards

GOOD = "A perfectly ordinary document about the weather and the sea."


def _read_all(config: InputConfig, tmp_path: Path, min_shards: int = 1):
    shards = cut_shards(config, min_shards=min_shards)
    reader = ShardReader(shards, config, str(tmp_path / "quarantine"), str(tmp_path / "counts"))
    docs = [doc for rank in range(len(shards)) for doc in reader.run(None, rank, len(shards))]
    quarantine_files = sorted((tmp_path / "quarantine").glob("*.parquet"))
    quarantined = pa.concat_tables([pq.read_table(p) for p in quarantine_files]).to_pylist() if quarantine_files else []
    counts = [json.loads(p.read_text()) for p in sorted((tmp_path / "counts").glob("*.json"))]
    return shards, docs, quarantined, counts


def test_every_malformed_kind_is_quarantined(tmp_path):
    jsonl = tmp_path / "mixed.jsonl"
    lines = [
        json.dumps({"id": "ok1", "text": GOOD}).encode(),
        b'{"id": "broken", "text": ',  # bad JSON
        b'{"id": "latin1", "text": "caf\xe9"}',  # invalid UTF-8
        json.dumps({"id": "missing"}).encode(),
        json.dumps({"id": "null", "text": None}).encode(),
        json.dumps({"id": "number", "text": 42}).encode(),
        json.dumps({"id": "empty", "text": "   "}).encode(),
        json.dumps(["not", "an", "object"]).encode(),
        b"",  # blank line: not a record
        json.dumps({"text": GOOD + " No id here."}).encode(),
    ]
    jsonl.write_bytes(b"\n".join(lines) + b"\n")
    gz = tmp_path / "truncated.jsonl.gz"
    payload = gzip.compress(b"".join(json.dumps({"id": f"g{i}", "text": GOOD}).encode() + b"\n" for i in range(500)))
    gz.write_bytes(payload[: len(payload) // 2])
    parquet = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"id": ["p0", "p1", "p2"], "text": [GOOD, None, GOOD]}), parquet)
    (tmp_path / "not-parquet.parquet").write_bytes(b"PAR1 this is not parquet")
    (tmp_path / "empty.jsonl").write_bytes(b"")

    config = InputConfig(paths=[str(tmp_path / "*.jsonl*"), str(tmp_path / "*.parquet")])
    _, docs, quarantined, counts = _read_all(config, tmp_path / "out")

    errors = {(Path(q["file"]).name, q["line"]): q["error"] for q in quarantined}
    assert errors[("mixed.jsonl", 2)].startswith("bad JSON")
    assert errors[("mixed.jsonl", 3)].startswith("invalid UTF-8")
    assert errors[("mixed.jsonl", 4)] == "missing text field 'text'"
    assert errors[("mixed.jsonl", 5)] == "text field 'text' is null"
    assert errors[("mixed.jsonl", 6)] == "text field 'text' is a int, expected a string"
    assert errors[("mixed.jsonl", 7)] == "empty text"
    assert "expected an object" in errors[("mixed.jsonl", 8)]
    assert errors[("rows.parquet", 1)] == "text field 'text' is null"
    assert any(name == "truncated.jsonl.gz" and "truncated" in e for (name, _), e in errors.items())
    assert any(name == "not-parquet.parquet" and "unreadable Parquet" in e for (name, _), e in errors.items())
    assert "caf\\xe9" in next(q["raw"] for q in quarantined if q["line"] == 3 and q["file"].endswith("mixed.jsonl"))

    ids = [d.id for d in docs]
    assert "ok1" in ids and "p0" in ids and "p2" in ids
    assert "mixed.jsonl:10" in ids, "a record without id gets a stable id from its file and line"
    assert sum(i.startswith("g") for i in ids) > 0, "records before the truncation point are kept"
    total = sum(c["records"] for c in counts)
    assert total == len(docs) + len(quarantined)
    assert sum(c["quarantined"] for c in counts) == len(quarantined)
    assert len({d.metadata["uid"] for d in docs}) == len(docs)


@pytest.mark.parametrize("min_shards", [1, 2, 7])
def test_one_large_jsonl_is_cut_into_even_shards(tmp_path, min_shards):
    path = tmp_path / "big.jsonl"
    with open(path, "w") as f:
        for i in range(2000):
            f.write(json.dumps({"id": f"d{i}", "text": f"{GOOD} " * (1 + i % 7)}) + "\n")
    config = InputConfig(paths=[str(path)], shard_mb=1.0)
    shards, docs, quarantined, _ = _read_all(config, tmp_path / "out", min_shards=min_shards)
    assert len(shards) >= min_shards
    assert not quarantined
    assert sorted(d.id for d in docs) == sorted(f"d{i}" for i in range(2000)), "each line read exactly once"
    lines = {d.id: int(d.metadata["source"].rsplit(":", 1)[1]) for d in docs}
    assert all(lines[f"d{i}"] == i + 1 for i in range(2000)), "line numbers survive the cut"


def test_gzip_is_striped_over_tasks(tmp_path):
    path = tmp_path / "big.jsonl.gz"
    with gzip.open(path, "wt") as f:
        for i in range(5000):
            f.write(json.dumps({"id": f"d{i}", "text": GOOD}) + "\n")
    config = InputConfig(paths=[str(path)])
    shards, docs, _, _ = _read_all(config, tmp_path / "out", min_shards=3)
    assert len(shards) == 3
    assert sorted(d.id for d in docs) == sorted(f"d{i}" for i in range(5000))


def test_parquet_row_groups_are_shards_and_fields_configurable(tmp_path):
    path = tmp_path / "rows.parquet"
    table = pa.table({"doc_id": [f"r{i}" for i in range(100)], "body": [f"{GOOD} {i}" for i in range(100)]})
    pq.write_table(table, path, row_group_size=10)
    config = InputConfig(paths=[str(path)], text_field="body", id_field="doc_id")
    shards, docs, _, _ = _read_all(config, tmp_path / "out", min_shards=4)
    assert len(shards) >= 4
    assert sorted(d.id for d in docs) == sorted(f"r{i}" for i in range(100))
    assert {d.metadata["source"].rsplit(":", 1)[1] for d in docs} == {str(i) for i in range(100)}


def test_fsspec_urls_with_globs_read_like_paths(tmp_path):
    """A file:// URL takes the fsspec path (as s3:// does, see test_s3.py): glob, folder, size, ranges."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    for k in range(3):
        lines = (json.dumps({"id": f"{k}-{i}", "text": GOOD}) + "\n" for i in range(50))
        (folder / f"part{k}.jsonl").write_text("".join(lines))
    by_path = _read_all(InputConfig(paths=[str(folder / "*.jsonl")], shard_mb=0.002), tmp_path / "a")
    by_glob = _read_all(InputConfig(paths=[f"file://{folder}/*.jsonl"], shard_mb=0.002), tmp_path / "b")
    by_folder = _read_all(InputConfig(paths=[f"file://{folder}"], shard_mb=0.002), tmp_path / "c")
    for shards, docs, _, _ in (by_glob, by_folder):
        assert all(s.path.startswith("file://") for s in shards)
        assert [(s.start, s.stop) for s in shards] == [(s.start, s.stop) for s in by_path[0]]
        assert sorted(d.id for d in docs) == sorted(d.id for d in by_path[1])
    with pytest.raises(ConfigError, match="input.paths: no file matches"):
        cut_shards(InputConfig(paths=[f"file://{folder}/*.parquet"]))


def test_checkpoint_roundtrip(tmp_path):
    from datatrove.data import Document

    from pipeline.docio import write_documents

    docs = [Document(text=f"t{i}", id=f"i{i}", metadata={"n": i, "nested": {"a": [1, 2]}}) for i in range(5)]
    write_documents(tmp_path / "x.parquet", docs)
    back = list(read_documents(tmp_path / "x.parquet"))
    assert [(d.id, d.text, d.metadata) for d in back] == [(d.id, d.text, d.metadata) for d in docs]
    assert not list(tmp_path.glob(".*tmp*")), "no temporary file is left behind"


@pytest.mark.parametrize(
    "metadata",
    [
        {"b": 1, "a": {"z": [1.5, "é 中", True], "y": None}},
        {"nan": float("nan"), "inf": float("-inf")},
        {"big": 2**70, "surrogate": "\ud800"},
        {3: "int key", 1: "sorted"},
    ],
)
def test_metadata_through_orjson_reads_back_as_json_module(metadata):
    """metadata_json/parse_json take orjson's fast path only where it gives json's own result."""
    from pipeline.docio import metadata_json, parse_json

    expected = json.loads(json.dumps(metadata, sort_keys=True))
    back = parse_json(metadata_json(metadata))
    assert json.dumps(back, sort_keys=True) == json.dumps(expected, sort_keys=True)
    assert list(back) == list(expected)


@pytest.mark.parametrize("damage", ["none", "truncated", "corrupt", "trailing_garbage", "two_members", "not_gzip"])
def test_gzip_lines_equal_the_gzip_module_on_broken_files(tmp_path, damage):
    """igzip reads the file; after an igzip error the gzip module finishes: same lines, same error."""
    import io

    from stages.reader import _gzip_lines

    gz = gzip.compress(b"".join(json.dumps({"text": f"doc {i} " * 50}).encode() + b"\n" for i in range(3000)))
    blob = {
        "none": gz,
        "truncated": gz[: len(gz) // 2],
        "corrupt": gz[:200] + bytes(300) + gz[500:],
        "trailing_garbage": gz + b"garbage",
        "two_members": gz + gz,
        "not_gzip": b"xx" + gz[2:],
    }[damage]
    path = tmp_path / "x.jsonl.gz"
    path.write_bytes(blob)

    def read(lines):
        out = []
        try:
            out.extend(lines)
        except Exception as exc:  # noqa: BLE001 - the error's type is what is compared
            return out, type(exc)
        return out, None

    with gzip.open(io.BytesIO(blob), "rb") as f:
        assert read(_gzip_lines(str(path))) == read(f)
