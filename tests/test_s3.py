"""Input in object storage, against a real S3 API: a moto server on 127.0.0.1, started once here.

The run folder stays on a filesystem (output.dir refuses URLs); the input is read from the bucket
through fsspec/s3fs: globbing, byte-range shards, WARC record offsets, a SIGKILL and resume.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.config import InputConfig, load_config
from pipeline.errors import ConfigError
from pipeline.runner import run_pipeline
from stages.reader import ShardReader, cut_shards
from tests.conftest import run_outputs, write_config
from tests.test_warc import write_warc

BUCKET = "corpus-bucket"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _clear_s3_cache() -> None:
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server on a free loopback port; the environment points boto/s3fs at it."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    _clear_s3_cache()
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    yield client
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    _clear_s3_cache()
    server.stop()


def _upload(client, folder: Path, prefix: str) -> None:
    for path in sorted(folder.iterdir()):
        if path.is_file():
            client.upload_file(str(path), BUCKET, f"{prefix}/{path.name}")


def _read(paths: list[str], tmp: Path, shard_mb: float) -> tuple[list, list[tuple[str, str]], int]:
    config = InputConfig(paths=paths, shard_mb=shard_mb)
    shards = cut_shards(config)
    reader = ShardReader(shards, config, str(tmp / "quarantine"), str(tmp / "counts"))
    docs = sorted((d.id, d.text) for rank in range(len(shards)) for d in reader.run(None, rank))
    quarantined = sum(pq.read_table(p).num_rows for p in (tmp / "quarantine").glob("*.parquet"))
    return shards, docs, quarantined


def test_every_format_reads_from_a_bucket_as_from_disk(s3, tmp_path):
    local = tmp_path / "local"
    local.mkdir()
    lines = [json.dumps({"id": f"j{i}", "text": f"line {i} of a plain file"}) for i in range(400)]
    (local / "a.jsonl").write_text("\n".join(lines[:300]) + "\nnot json\n")
    (local / "b.jsonl.gz").write_bytes(gzip.compress(("\n".join(lines[300:]) + "\n").encode()))
    pq.write_table(pa.table({"id": ["p0", "p1"], "text": ["row zero", "row one"]}), local / "c.parquet")
    write_warc(local / "d.warc.gz", pages=6)
    _upload(s3, local, "mixed")

    shards, from_s3, quarantined = _read([f"s3://{BUCKET}/mixed/*"], tmp_path / "s3", shard_mb=0.004)
    local_shards, from_disk, local_quarantined = _read([str(local / "*")], tmp_path / "disk", shard_mb=0.004)
    assert all(s.path.startswith(f"s3://{BUCKET}/mixed/") for s in shards)
    assert [(s.kind, s.start, s.stop) for s in shards] == [(s.kind, s.start, s.stop) for s in local_shards]
    assert len({s.path for s in shards if s.kind == "jsonl"}) == 1 and len(shards) > 4
    assert from_s3 == from_disk and len(from_s3) == 400 + 2 + 10
    assert quarantined == local_quarantined == 1


def test_missing_bucket_credentials_and_object_store_run_folder_are_config_errors(s3, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"input.paths: .*bucket 'no-such-bucket' does not exist"):
        cut_shards(InputConfig(paths=["s3://no-such-bucket/*.jsonl"]))
    with pytest.raises(ConfigError, match=r"input.paths: no file matches 's3://corpus-bucket/nothing/\*.jsonl'"):
        cut_shards(InputConfig(paths=[f"s3://{BUCKET}/nothing/*.jsonl"]))
    with pytest.raises(ConfigError, match="output.dir: .*object storage is not supported"):
        load_config(None, inputs=[f"s3://{BUCKET}/x.jsonl"], output=f"s3://{BUCKET}/run")
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    _clear_s3_cache()
    try:
        with pytest.raises(ConfigError, match="input.paths: cannot list .*NoCredentialsError.*AWS_ACCESS_KEY_ID"):
            cut_shards(InputConfig(paths=[f"s3://{BUCKET}/*.jsonl"]))
    finally:
        _clear_s3_cache()


def _pipeline_config(tmp_path: Path, corpus: Path, name: str, paths: list[str]) -> Path:
    cfg = write_config(tmp_path / f"{name}.json", corpus, tmp_path / name, input={"shard_mb": 0.1})
    tree = json.loads(cfg.read_text())
    tree["input"]["paths"] = paths
    cfg.write_text(json.dumps(tree))
    return cfg


def test_pipeline_with_input_in_a_bucket_equals_local_and_resumes_after_sigkill(
    s3, small_corpus, reference_run, tmp_path
):
    _upload(s3, small_corpus, "synth")
    cfg = _pipeline_config(tmp_path, small_corpus, "s3run", [f"s3://{BUCKET}/synth/corpus.jsonl"])
    run_dir = tmp_path / "s3run"
    # first attempt, killed (SIGKILL, the whole process group) once P1 is complete
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "run", str(cfg)],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 600
    while not (run_dir / "work" / "p1_filter" / "_COMPLETE.json").exists():
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "P1 did not complete in 600 s"
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (run_dir / "reports" / "funnel.json").exists()

    funnel = run_pipeline(load_config(cfg), show_progress=False)
    assert funnel["conservation"]["holds"]
    assert _outputs(run_dir) == _outputs(reference_run)


def _outputs(run_dir: Path) -> dict[str, list[tuple]]:
    """Rows of the outputs without the input location (a local path or a URL) that some carry."""
    rows = run_outputs(run_dir)
    return {
        "mixture": [(r["id"], r["text"]) for r in rows["mixture"]],
        "rejected": [(r["id"], r["stage"], r["reason"]) for r in rows["rejected"]],
        "quarantine": [(r["line"], r["error"]) for r in rows["quarantine"]],
    }
