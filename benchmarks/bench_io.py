"""Input throughput: WARC extraction against datatrove's own pipeline, and S3 input against local disk.

    python benchmarks/bench_io.py [--warc 'GLOB'] [--copies 20] [--docs 600] [--workers 2] [--repeats 1]
    python benchmarks/bench_io.py --skip warc             # the S3 part alone, a few minutes

1. WARC: the HTML response records of `--warc` (default: the shared Common Crawl samples) written
   `--copies` times into one per-record-gzip WARC, then extracted on one core by
   - mixwright: ShardReader (record parsing, charset, quarantine) + HtmlExtractor (Trafilatura,
     reasons for every drop);
   - datatrove: WarcReader + Trafilatura (its sandboxed extractor), the reference.
   Both with trafilatura's `deduplicate` off (see stages/extract.py). Goal: ratio >= 1 (no slower).
2. S3: the whole pipeline (local engine, no students or decontamination) on a synthetic corpus of
   `--docs` documents, with input and run folder on local disk, then both in a bucket of a moto S3
   server on 127.0.0.1 (its own process, as a store is; the run folder through its local mirror,
   pipeline/remote.py). `--repeats` alternates the two and keeps each one's fastest run, for a
   shared machine. Goal: S3/local <= 1.5.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from glob import glob
from pathlib import Path

from warcio.archiveiterator import ArchiveIterator
from warcio.warcwriter import WARCWriter

from pipeline.config import InputConfig, load_config
from pipeline.docio import RejectWriter
from pipeline.runner import run_pipeline
from pipeline.synth import generate
from stages.extract import HtmlExtractor
from stages.reader import ShardReader, cut_shards

DEFAULT_WARC = "/work/shared/data/corpus/warc/dolma_tests/*.warc.gz"


def build_warc(pattern: str, copies: int, path: Path) -> int:
    """The response records of the files matching `pattern`, `copies` times; returns their count."""
    responses = []
    for name in sorted(glob(pattern)):
        with open(name, "rb") as f:
            for record in ArchiveIterator(f):
                if record.rec_type == "response":
                    responses.append(
                        (
                            record.rec_headers.get_header("WARC-Target-URI"),
                            record.http_headers,
                            record.content_stream().read(),
                        )
                    )
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=True)
        for copy in range(copies):
            for url, http_headers, payload in responses:
                record = writer.create_warc_record(
                    f"{url}#{copy}", "response", payload=io.BytesIO(payload), http_headers=http_headers
                )
                writer.write_record(record)
    return len(responses) * copies


def run_mixwright(warc: Path, out: Path) -> tuple[float, int]:
    config = InputConfig(paths=[str(warc)], shard_mb=1 << 20)
    shards = cut_shards(config)
    reader = ShardReader(shards, config, str(out / "quarantine"), str(out / "counts"))
    extractor = HtmlExtractor(RejectWriter(out / "rejected", "extract"))
    started = time.perf_counter()
    kept = sum(1 for rank in range(len(shards)) for _ in extractor.run(reader.run(None, rank), rank))
    return time.perf_counter() - started, kept


def run_datatrove(warc: Path) -> tuple[float, int]:
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.readers import WarcReader

    started = time.perf_counter()
    docs = Trafilatura(deduplicate=False).run(WarcReader(str(warc.parent), glob_pattern=warc.name).run(), 0, 1)
    kept = sum(1 for _ in docs)
    return time.perf_counter() - started, kept


def bench_warc(pattern: str, copies: int, tmp: Path) -> dict:
    warc = tmp / "warc" / "bench.warc.gz"
    warc.parent.mkdir()
    records = build_warc(pattern, copies, warc)
    ours, ours_kept = run_mixwright(warc, tmp / "mixwright")
    theirs, theirs_kept = run_datatrove(warc)
    return {
        "records": records,
        "mixwright": {"seconds": round(ours, 2), "docs_per_s": round(records / ours, 1), "kept": ours_kept},
        "datatrove": {"seconds": round(theirs, 2), "docs_per_s": round(records / theirs, 1), "kept": theirs_kept},
        "ratio": round(theirs / ours, 3),
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(tmp: Path, name: str, paths: list[str], output: str, workers: int) -> float:
    tree = {
        "input": {"paths": paths, "shard_mb": 0.25},
        "output": {"dir": output},
        "engine": {"kind": "local", "workers": workers},
        "students": {"enabled": False},
        "decontam": {"enabled": False},
    }
    (tmp / f"{name}.json").write_text(json.dumps(tree))
    started = time.perf_counter()
    run_pipeline(load_config(tmp / f"{name}.json"), show_progress=False)
    return time.perf_counter() - started


def _moto_server(port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the moto server did not start") from None
            time.sleep(0.2)


def bench_s3(docs: int, workers: int, repeats: int, tmp: Path) -> dict:
    import boto3

    corpus = tmp / "corpus"
    generate(corpus, docs=docs, seed=5)
    port = _free_port()
    server = _moto_server(port)
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
        MIXWRIGHT_MIRROR=str(tmp / "mirror"),
    )
    local_s, s3_s = [], []
    try:
        client = boto3.client("s3")
        client.create_bucket(Bucket="bench")
        client.upload_file(str(corpus / "corpus.jsonl"), "bench", "corpus/corpus.jsonl")
        for attempt in range(repeats):  # alternated, so a busy spell on a shared machine hits both
            local_s.append(
                _run(tmp, f"local{attempt}", [str(corpus / "corpus.jsonl")], str(tmp / f"local{attempt}"), workers)
            )
            s3_s.append(_run(tmp, f"s3{attempt}", ["s3://bench/corpus/*.jsonl"], f"s3://bench/runs/{attempt}", workers))
        objects = sum(
            page.get("KeyCount", 0)
            for page in client.get_paginator("list_objects_v2").paginate(Bucket="bench", Prefix="runs/0/")
        )
    finally:
        server.terminate()
        server.wait()
    local, s3 = min(local_s), min(s3_s)
    return {
        "docs": docs,
        "local_s": [round(t, 2) for t in local_s],
        "s3_s": [round(t, 2) for t in s3_s],
        "run_folder_objects": objects,
        "ratio": round(s3 / local, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--warc", default=DEFAULT_WARC, help="glob of WARC files whose responses are the corpus")
    parser.add_argument("--copies", type=int, default=20)
    parser.add_argument("--docs", type=int, default=600, help="synthetic documents for the S3 runs")
    parser.add_argument("--repeats", type=int, default=1, help="S3 and local runs each, alternated; the fastest counts")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip", choices=["warc", "s3"], action="append", default=[])
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        if "warc" not in args.skip:
            results["warc"] = bench_warc(args.warc, args.copies, Path(tmp))
            print(json.dumps({"warc": results["warc"]}), flush=True)
        if "s3" not in args.skip:
            results["s3"] = bench_s3(args.docs, args.workers, args.repeats, Path(tmp))
            print(json.dumps({"s3": results["s3"]}), flush=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
