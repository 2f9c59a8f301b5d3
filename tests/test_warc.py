"""WARC input: HTML responses become documents with url, date and record id; every other payload
record is rejected or quarantined with its reason; large archives are cut at record offsets."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from datatrove.data import Document
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from pipeline.config import InputConfig, load_config
from pipeline.docio import RejectWriter
from pipeline.runner import run_pipeline
from stages.extract import HtmlExtractor
from stages.reader import ShardReader, cut_shards
from tests.conftest import write_config

SENTENCES = [
    "The harbour master walked along the quay every morning to count the fishing boats that came back.",
    "Fresh bread from the village bakery was carried up the hill before the church bells rang at seven.",
    "In the afternoon the children gathered shells on the beach and sorted them by colour and by size.",
    "Old maps of the coast show a lighthouse that was rebuilt twice after storms destroyed the tower.",
    "The market sold apples, pears and cheese, and the farmers argued about the price of hay all day.",
]


def page(title: str, paragraphs: list[str], charset: str = "utf-8") -> bytes:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    html = (
        f'<html><head><meta charset="{charset}"><title>{title}</title></head>'
        f"<body><nav><a href='/'>Home</a></nav><article><h1>{title}</h1>{body}</article>"
        "<footer>Copyright</footer></body></html>"
    )
    return html.encode(charset)


def good_paragraphs(i: int) -> list[str]:
    return [f"Story number {i}. " + " ".join(SENTENCES[(i + k) % 5] for k in range(3)) for _ in range(1)] + [
        SENTENCES[(i + k) % 5] + f" This is paragraph {k} of page {i}." for k in range(4)
    ]


def _response(writer: WARCWriter, url: str, payload: bytes, content_type: str, date: str) -> None:
    http = StatusAndHeaders("200 OK", [("Content-Type", content_type)], protocol="HTTP/1.1")
    record = writer.create_warc_record(
        url, "response", payload=io.BytesIO(payload), http_headers=http, warc_headers_dict={"WARC-Date": date}
    )
    writer.write_record(record)


def write_warc(path: Path, pages: int = 4, extras: bool = True) -> Path:
    """`pages` good HTML pages (each with its request record), plus, with `extras`, a non-HTML
    record, an empty page, a cp1251 page with a declared charset and a Shift-JIS page without one."""
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=path.name.endswith(".gz"))
        writer.write_record(writer.create_warcinfo_record(path.name, {"software": "test"}))
        for i in range(pages):
            url = f"http://example.com/page/{i}"
            request = writer.create_warc_record(
                url,
                "request",
                payload=io.BytesIO(b"GET / HTTP/1.1\r\n\r\n"),
                http_headers=StatusAndHeaders("GET / HTTP/1.1", [], is_http_request=True),
            )
            writer.write_record(request)
            _response(
                writer,
                url,
                page(f"Page {i}", good_paragraphs(i)),
                "text/html; charset=utf-8",
                f"2024-01-{i % 28 + 1:02d}T00:00:00Z",
            )
        if extras:
            _response(
                writer,
                "http://example.com/logo.png",
                b"\x89PNG\r\n\x1a\n" + bytes(200),
                "image/png",
                "2024-02-01T00:00:00Z",
            )
            _response(
                writer,
                "http://example.com/empty",
                b"<html><head></head><body></body></html>",
                "text/html",
                "2024-02-02T00:00:00Z",
            )
            cyrillic = ["Москва является столицей России и крупнейшим городом страны по численности населения."] * 3
            _response(
                writer,
                "http://example.ru/news",
                page("Новости", cyrillic, "cp1251"),
                "text/html; charset=windows-1251",
                "2024-02-03T00:00:00Z",
            )
            japanese = [
                "東京は日本の首都であり、世界で最も人口の多い都市圏の一つです。",
                "多くの人々が毎日電車で通勤しています。",
            ] * 4
            body = "".join(f"<p>{p}</p>" for p in japanese)
            _response(
                writer,
                "http://example.jp/tokyo",
                f"<html><body><article>{body}</article></body></html>".encode("shift_jis"),
                "text/html",
                "2024-02-04T00:00:00Z",
            )
    return path


def _rows(folder: Path) -> list[dict]:
    return [row for path in sorted(folder.glob("*.parquet")) for row in pq.read_table(path).to_pylist()]


def _read(paths: list[str], tmp: Path, shard_mb: float = 32.0, min_shards: int = 1):
    config = InputConfig(paths=paths, shard_mb=shard_mb)
    shards = cut_shards(config, min_shards=min_shards)
    reader = ShardReader(shards, config, str(tmp / "quarantine"), str(tmp / "counts"))
    extractor = HtmlExtractor(RejectWriter(tmp / "rejected", "extract"))
    docs = [doc for rank in range(len(shards)) for doc in extractor.run(reader.run(None, rank), rank)]
    rejected = _rows(tmp / "rejected" / "extract")
    quarantined = _rows(tmp / "quarantine")
    counts = [json.loads(p.read_text()) for p in sorted((tmp / "counts").glob("*.json"))]
    return shards, docs, rejected, quarantined, counts


def test_html_responses_become_documents_and_others_are_accounted_for(tmp_path):
    warc = write_warc(tmp_path / "crawl.warc.gz")
    shards, docs, rejected, quarantined, counts = _read([str(warc)], tmp_path / "out")

    assert [s.kind for s in shards] == ["warc"]
    by_url = {doc.metadata["url"]: doc for doc in docs}
    for i in range(4):
        doc = by_url[f"http://example.com/page/{i}"]
        assert doc.id.startswith("<urn:uuid:")
        assert doc.metadata["date"] == f"2024-01-{i + 1:02d}T00:00:00Z"
        assert SENTENCES[i % 5] in doc.text
        assert "<p>" not in doc.text and "Copyright" not in doc.text
    assert "Москва является столицей" in by_url["http://example.ru/news"].text
    assert "東京は日本の首都" in by_url["http://example.jp/tokyo"].text
    reasons = {row["reason"]: json.loads(row["details"]) for row in rejected}
    assert reasons == {"non_html": {"payload_type": "image/png"}, "empty": {}}
    assert quarantined == []
    total = {key: sum(c[key] for c in counts) for key in ("records", "documents", "quarantined", "skipped")}
    # warcinfo + 4 requests are not documents; 8 responses are records
    assert total == {"records": 8, "documents": 8, "quarantined": 0, "skipped": 5}
    assert total["records"] == len(docs) + len(rejected) + len(quarantined)


def test_text_equals_datatrove_warc_reader_with_trafilatura(tmp_path):
    """datatrove's own pipeline is the reference for the extracted text of every HTML page."""
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.readers import WarcReader

    warc = write_warc(tmp_path / "crawl.warc.gz")
    reference_docs = Trafilatura(deduplicate=False).run(WarcReader(str(tmp_path), glob_pattern="*.warc.gz").run(), 0, 1)
    reference = {doc.metadata["url"]: doc.text for doc in reference_docs}
    _, docs, _, _, _ = _read([str(warc)], tmp_path / "out")
    assert reference and {doc.metadata["url"]: doc.text for doc in docs} == reference


def test_broken_archives_are_quarantined_never_stop_the_run(tmp_path):
    good = write_warc(tmp_path / "a.warc.gz", extras=False)
    data = good.read_bytes()
    (tmp_path / "truncated.warc.gz").write_bytes(data[: len(data) - 300])
    plain = write_warc(tmp_path / "plain.warc", pages=3, extras=False).read_bytes()
    cut = plain.rfind(b"WARC/1.0")
    (tmp_path / "garbage.warc").write_bytes(plain[:cut] + b"WARC/1.0\r\nthis is not a header\r\n\r\n" + bytes(64))
    (tmp_path / "plain.warc").unlink()

    _, docs, rejected, quarantined, counts = _read([str(tmp_path / "*.warc*")], tmp_path / "out")

    errors = {Path(q["file"]).name: q for q in quarantined}
    assert set(errors) == {"truncated.warc.gz", "garbage.warc"}
    assert errors["truncated.warc.gz"]["error"].startswith("truncated WARC record at byte")
    assert errors["garbage.warc"]["error"].startswith("WARC record at byte")
    assert len([d for d in docs if "a.warc.gz" in d.metadata["source"]]) == 4
    # every record before the break is still read
    assert len([d for d in docs if "truncated" in d.metadata["source"]]) == 3
    records = sum(c["records"] for c in counts)
    assert records == len(docs) + len(rejected) + len(quarantined)


@pytest.mark.parametrize("suffix", [".warc.gz", ".warc"])
@pytest.mark.parametrize("shard_mb", [0.0005, 0.004, 0.02])
def test_large_archive_is_cut_into_ranges_each_record_read_once(tmp_path, suffix, shard_mb):
    """Cuts fall anywhere, mid-record or in empty stretches: every record is read by one task only."""
    warc = write_warc(tmp_path / f"big{suffix}", pages=40)
    _, whole, _, _, _ = _read([str(warc)], tmp_path / "one")
    shards, parts, _, quarantined, counts = _read([str(warc)], tmp_path / "many", shard_mb=shard_mb)
    assert len(shards) >= 2
    assert all(s.kind == "warc" for s in shards) and shards[-1].stop == -1
    assert shards[0].start == 0 and all(a.stop == b.start for a, b in zip(shards, shards[1:]))
    assert sorted(d.id for d in parts) == sorted(d.id for d in whole)
    assert len({d.id for d in parts}) == len(parts) and quarantined == []
    assert sum(c["records"] for c in counts) == 44 and sum(c["skipped"] for c in counts) == 41


def test_warc_run_end_to_end_conserves_records(tmp_path):
    write_warc(tmp_path / "crawl.warc.gz", pages=6)
    config = write_config(
        tmp_path / "config.json",
        [str(tmp_path / "*.warc.gz")],
        tmp_path / "run",
        langid={"enabled": False},
        filters=[],
        decontam={"enabled": False},
    )
    funnel = run_pipeline(load_config(config), show_progress=False)
    rows = {row["name"]: row for row in funnel["stages"]}
    assert rows["read"]["in"] == 10
    assert rows["extract"]["rejected"] == 2 and rows["extract"]["reasons"] == {"empty": 1, "non_html": 1}
    assert funnel["conservation"]["holds"]


def test_warc_gzipped_as_one_stream_is_read_whole(tmp_path):
    """ClueWeb gzips a whole WARC as one stream, which warcio refuses: the first task reads it from the
    start, the others find no record boundary in their range."""
    plain = write_warc(tmp_path / "p.warc", pages=30, extras=False)
    (tmp_path / "whole.warc.gz").write_bytes(gzip.compress(plain.read_bytes()))
    plain.unlink()
    shards, docs, _, quarantined, counts = _read([str(tmp_path / "whole.warc.gz")], tmp_path / "out", shard_mb=0.004)
    assert len(shards) > 1 and quarantined == []
    assert sum(c["records"] for c in counts) == len(docs) == 30


def test_extraction_past_its_cpu_time_is_rejected_and_the_next_page_still_runs(tmp_path):
    big = page("Big", [" ".join(SENTENCES)] * 400).decode()
    docs = [Document(text=big, id=f"p{i}", metadata={"payload_type": "text/html"}) for i in range(2)]
    docs.append(Document(text="already text", id="jsonl", metadata={}))
    kept = list(HtmlExtractor(RejectWriter(tmp_path, "extract"), timeout_s=1e-4).run(iter(docs), 0))
    assert [d.id for d in kept] == ["jsonl"]
    rows = _rows(tmp_path / "extract")
    assert [(r["id"], r["reason"], json.loads(r["details"])) for r in rows] == [
        ("p0", "timeout", {"timeout_s": 1e-4}),
        ("p1", "timeout", {"timeout_s": 1e-4}),
    ]
    kept = list(HtmlExtractor(RejectWriter(tmp_path / "again", "extract")).run(iter(docs[:1]), 0))
    assert len(kept) == 1 and SENTENCES[0] in kept[0].text
