"""Settings that cannot run are refused before any work, with the dotted key, and the corrected
command then runs on the same --output; settings of speed alone never block a resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.cli import main
from pipeline.config import load_config
from pipeline.runner import config_hash
from tests.conftest import write_config


def _run(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


@pytest.fixture
def labelled_corpus(tmp_path: Path) -> Path:
    """Three documents and their teacher labels, enough for every phase."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    words = "the river carries cold water from the mountains to the sea every spring season".split()
    docs = [{"id": f"d{i}", "text": " ".join(words[i:] + words[:i]) * 3} for i in range(3)]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    labels = [
        {"id": d["id"], "domain": "science", "educational_value": 3, "writing_quality": 3, "information_density": 3}
        for d in docs
    ]
    (folder / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in labels))
    return folder


@pytest.mark.parametrize(
    ("overrides", "key", "found"),
    [
        (["teacher.backend=endpoint", "teacher.model=m"], "teacher.url", "null"),
        (["teacher.backend=vllm"], "teacher.model", "null"),
        (["teacher.labels_path=missing.jsonl"], "teacher.labels_path", "missing.jsonl"),
        (["students.hyperparams=nope.yaml"], "students.hyperparams", "nope.yaml"),
        (["mixture.tokenizer=tok/absent.json"], "mixture.tokenizer", "tok/absent.json"),
        (["decontam.enabled=true", "decontam.tokenizer=absent.json"], "decontam.tokenizer", "absent.json"),
        (["mixture.mode=shares", "mixture.shares={}"], "mixture.shares", "empty"),
        (["mixture.mode=shares", "mixture.shares={a: 0.7, b: 0.6}"], "mixture.shares", "1.3"),
        (["mixture.shares={a: -0.1}"], "mixture.shares.a", "-0.1"),
        (["engine.workers=0"], "engine.workers", "0"),
    ],
)
def test_refused_before_any_work_then_corrected_run_accepted(tmp_path, labelled_corpus, capsys, overrides, key, found):
    run_dir = tmp_path / "run"
    cfg = write_config(
        tmp_path / "c.yaml",
        [str(labelled_corpus / "corpus.jsonl")],
        run_dir,
        students={"enabled": True},
        teacher={"labels_path": str(labelled_corpus / "labels.jsonl")},
        decontam={"enabled": False},
        dedup={"enabled": False},
        filters=[],
    )
    code, err = _run(["run", str(cfg), *_sets(overrides)], capsys)
    assert code == 2, err
    assert key in err and found in err, err
    assert "Traceback" not in err
    assert not run_dir.exists(), "no work may start on a config error"
    # The corrected command is accepted on the same --output (three documents are too few to
    # train students, so the corrected run leaves them out).
    corrected = ["run", str(cfg), "--set", "students.enabled=false"]
    code, err = _run(corrected, capsys)
    assert code == 0, err
    assert (run_dir / "mixture" / "manifest.json").is_file()


def _sets(overrides: list[str]) -> list[str]:
    return [arg for item in overrides for arg in ("--set", item)]


def test_every_problem_is_named_at_once(tmp_path, labelled_corpus, capsys):
    cfg = write_config(
        tmp_path / "c.yaml",
        [str(labelled_corpus / "corpus.jsonl")],
        tmp_path / "run",
        students={"enabled": True},
        teacher={"labels_path": str(labelled_corpus / "labels.jsonl")},
    )
    sets = ["students.hyperparams=nope.yaml", "mixture.tokenizer=absent.json", "decontam.benchmarks=none.yaml"]
    code, err = _run(["run", str(cfg), *_sets(sets)], capsys)
    assert code == 2
    assert "students.hyperparams" in err and "mixture.tokenizer" in err and "decontam.benchmarks" in err


def test_a_failing_bug_prints_one_line_without_traceback(tmp_path):
    """An unexpected error is a bug: one line, no traceback, unless --debug."""
    bad = tmp_path / "not-a-run"
    bad.mkdir()
    (bad / "reports").mkdir()
    (bad / "reports" / "funnel.json").write_text("{not json")
    cmd = [sys.executable, "-m", "pipeline.cli", "report", str(bad)]
    quiet = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 1 and "Traceback" not in quiet.stderr and "--debug" in quiet.stderr
    loud = subprocess.run([*cmd[:3], "--debug", *cmd[3:]], capture_output=True, text=True, timeout=120)
    assert loud.returncode != 0 and "Traceback" in loud.stderr


def test_resource_settings_neither_block_resume_nor_change_the_hash(tmp_path, labelled_corpus, capsys):
    run_dir = tmp_path / "run"
    cfg = write_config(
        tmp_path / "c.yaml",
        [str(labelled_corpus / "corpus.jsonl")],
        run_dir,
        students={"enabled": False},
        decontam={"enabled": False},
        dedup={"enabled": False},
        filters=[],
    )
    assert _run(["run", str(cfg)], capsys)[0] == 0
    resources = [
        "engine.workers=2",
        "teacher.replicas=4",
        "teacher.tensor_parallel_size=2",
        "teacher.concurrency=64",
        "teacher.timeout_s=5",
        "teacher.retries=9",
        "teacher.backoff_s=0.5",
        "teacher.batch_size=32",
        "teacher.device=cpu",
    ]
    code, err = _run(["run", str(cfg), *_sets(resources)], capsys)
    assert code == 0, err
    assert "already complete" in err
    base = load_config(cfg)
    assert config_hash(load_config(cfg, resources)) == config_hash(base)
    # An output setting does change the hash, and is refused on the same run folder.
    assert config_hash(load_config(cfg, ["mixture.seed=3"])) != config_hash(base)
    code, err = _run(["run", str(cfg), "--set", "mixture.seed=3"], capsys)
    assert code == 2 and "mixture.seed" in err
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["mixture"]["seed"] == 0
