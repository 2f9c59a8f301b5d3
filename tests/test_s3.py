"""Input and run folder in object storage, against a real S3 API: a moto server on 127.0.0.1, started once here.

The input is read from the bucket through fsspec/s3fs (globbing, byte-range shards, WARC record
offsets); the run folder lives in the bucket, worked on through a local mirror (pipeline/remote.py):
the whole pipeline, a SIGKILL and resume on the same machine, then on a fresh mirror (another machine).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.cli import main
from pipeline.config import InputConfig, load_config
from pipeline.errors import ConfigError
from pipeline.remote import MIRROR_ENV, RemoteFolder, mirror_root
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


def _keys(client, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def _run_error(config: Path) -> str:
    with pytest.raises(ConfigError) as error:
        run_pipeline(load_config(config), show_progress=False)
    return str(error.value)


def test_missing_bucket_and_credentials_are_config_errors_before_any_write(s3, small_corpus, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"input.paths: .*bucket 'no-such-bucket' does not exist"):
        cut_shards(InputConfig(paths=["s3://no-such-bucket/*.jsonl"]))
    with pytest.raises(ConfigError, match=r"input.paths: no file matches 's3://corpus-bucket/nothing/\*.jsonl'"):
        cut_shards(InputConfig(paths=[f"s3://{BUCKET}/nothing/*.jsonl"]))
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "mirror"))
    no_bucket = _pipeline_config(tmp_path, small_corpus, "nobucket", output="s3://no-such-bucket/run")
    message = _run_error(no_bucket)
    assert message.startswith("output.dir: ") and "'no-such-bucket'" in message and "\n" not in message

    run_url = f"s3://{BUCKET}/nocreds"
    no_credentials = _pipeline_config(tmp_path, small_corpus, "nocreds", output=run_url)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    _clear_s3_cache()
    try:
        with pytest.raises(ConfigError, match="input.paths: cannot list .*NoCredentialsError.*AWS_ACCESS_KEY_ID"):
            cut_shards(InputConfig(paths=[f"s3://{BUCKET}/*.jsonl"]))
        message = _run_error(no_credentials)
        assert message.startswith("output.dir: cannot reach") and "NoCredentialsError" in message
        assert "AWS_ACCESS_KEY_ID" in message and "\n" not in message
    finally:
        _clear_s3_cache()
    assert _keys(s3, "nocreds") == [] and not (tmp_path / "mirror").exists()


def _pipeline_config(
    tmp_path: Path, corpus: Path, name: str, paths: list[str] | None = None, output: str | None = None
) -> Path:
    cfg = write_config(tmp_path / f"{name}.json", corpus, tmp_path / name, input={"shard_mb": 0.1})
    tree = json.loads(cfg.read_text())
    tree["input"]["paths"] = paths or tree["input"]["paths"]
    tree["output"]["dir"] = output or tree["output"]["dir"]
    cfg.write_text(json.dumps(tree))
    return cfg


def _start(config: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "run", str(config)],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _kill_when(client, process: subprocess.Popen, prefix: str, what: str) -> None:
    """SIGKILL the run's whole process group once an object under `prefix` is in the bucket."""
    deadline = time.monotonic() + 600
    while not _keys(client, prefix):
        assert process.poll() is None, f"the run ended before {what}"
        assert time.monotonic() < deadline, f"no {what} in 600 s"
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def test_pipeline_with_input_and_run_folder_in_a_bucket_resumes_after_sigkill_on_any_machine(
    s3, small_corpus, reference_run, tmp_path, monkeypatch, capsys
):
    _upload(s3, small_corpus, "synth")
    url = f"s3://{BUCKET}/runs/demo"
    cfg = _pipeline_config(tmp_path, small_corpus, "s3run", [f"s3://{BUCKET}/synth/corpus.jsonl"], url)
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "mirror"))
    mirror = mirror_root(url)
    # first attempt: killed once P3's first task is complete in the bucket (P1 and P2 are there too)
    _kill_when(s3, _start(cfg), "runs/demo/work/p3_score/logs/completions/", "P3 task marker")
    assert _keys(s3, "runs/demo/work/p1_filter/_COMPLETE.json") and not _keys(s3, "runs/demo/reports/funnel.json")
    # second attempt, same machine and mirror: resumes, and is killed in P5
    _kill_when(s3, _start(cfg), "runs/demo/work/p5_clean/logs/completions/", "P5 task marker")
    assert not _keys(s3, "runs/demo/work/p5_clean/_COMPLETE.json")
    # last attempt on "another machine": an empty mirror, everything comes from the bucket
    shutil.rmtree(mirror)
    funnel = run_pipeline(load_config(cfg), show_progress=False)
    assert funnel["conservation"]["holds"]

    keys = _keys(s3, "runs/demo/")
    for key in (
        "config.yaml",
        "mixture/manifest.json",
        "reports/funnel.json",
        "reports/dedup.json",
        "reports/domain_mix.html",
    ):
        assert f"runs/demo/{key}" in keys
    assert any(key.startswith("runs/demo/mixture/domain=") and key.endswith(".parquet") for key in keys)
    assert any(key.startswith("runs/demo/rejected/dedup/") for key in keys)
    assert not any("/." in key or key.startswith("runs/demo/.") for key in keys)  # no temporary names, no sidecars
    # the bucket alone holds the run: a copy of it gives the reference run's rows and funnel
    copy = tmp_path / "copy"
    RemoteFolder(url, copy).pull(exact=True)
    assert _outputs(copy) == _outputs(reference_run)
    assert json.loads((copy / "reports" / "funnel.json").read_text()) == funnel
    assert funnel == json.loads((reference_run / "reports" / "funnel.json").read_text())
    # `report` reads the run from the bucket; `mix` and `train` write into it, so they want a local copy
    shutil.rmtree(mirror)
    assert main(["report", url]) == 0
    assert "conservation" in capsys.readouterr().out
    assert main(["mix", url, "--mixture", "configs/mixtures/anneal.yaml"]) == 2
    assert main(["train", url]) == 2
    assert "expected a local run folder, found a URL" in capsys.readouterr().err


def _outputs(run_dir: Path) -> dict[str, list[tuple]]:
    """Rows of the outputs without the input location (a local path or a URL) that some carry."""
    rows = run_outputs(run_dir)
    return {
        "mixture": [(r["id"], r["text"]) for r in rows["mixture"]],
        "rejected": [(r["id"], r["stage"], r["reason"]) for r in rows["rejected"]],
        "quarantine": [(r["line"], r["error"]) for r in rows["quarantine"]],
    }


def test_mirror_sync_keeps_markers_last_and_the_bucket_the_source_of_truth(s3, tmp_path):
    url = f"s3://{BUCKET}/sync"
    node = RemoteFolder(url, tmp_path / "a")
    (node.mirror / "work" / "logs" / "completions").mkdir(parents=True)
    (node.mirror / "work" / "docs.parquet").write_text("docs")
    (node.mirror / "work" / ".docs.parquet.tmp-1").write_text("half")  # an atomic write in progress
    marker = node.mirror / "work" / "logs" / "completions" / "00000"
    marker.write_text("")
    assert node.push() == 1 and _keys(s3, "sync/") == ["sync/work/docs.parquet"]  # no marker in a sweep
    node.push_file(marker)
    assert node.push() == 0  # nothing changed since

    other = RemoteFolder(url, tmp_path / "b")  # another node
    assert other.pull(["work"]) == 2 and (other.mirror / "work" / "docs.parquet").read_text() == "docs"
    (node.mirror / "work" / "docs.parquet").write_text("docs, rerun")
    node.push()
    (other.mirror / "work" / "local.parquet").write_text("not pushed yet")
    assert other.pull(["work"]) == 1 and (other.mirror / "work" / "docs.parquet").read_text() == "docs, rerun"
    (other.mirror / "work" / "docs.parquet").write_text("local work")
    other.pull(["work"])  # a task's pull keeps local work that is not pushed yet
    assert (other.mirror / "work" / "docs.parquet").read_text() == "local work"
    other.pull(exact=True)  # the driver before a run: the bucket wins
    assert (other.mirror / "work" / "docs.parquet").read_text() == "docs, rerun"
    assert not (other.mirror / "work" / "local.parquet").exists()

    (node.mirror / "work" / "docs.parquet").unlink()  # a rerun task removed a stale part
    node.push()
    assert "sync/work/docs.parquet" in _keys(s3, "sync/")  # tasks never delete
    node.push(delete=True)
    assert _keys(s3, "sync/") == ["sync/work/logs/completions/00000"]
