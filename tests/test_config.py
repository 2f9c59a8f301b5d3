"""Config errors name the key, say what was expected and found, and exit 2 before any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.config import load_config
from pipeline.errors import ConfigError
from tests.conftest import write_config


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    path = tmp_path / "c.jsonl"
    path.write_text('{"id": "a", "text": "hello world"}\n')
    return path


def _run(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


def test_unknown_key_exits_2_naming_the_key(tmp_path, corpus_file, capsys):
    cfg = write_config(tmp_path / "c.yaml", [str(corpus_file)], tmp_path / "run", dedup={"bandz": 3})
    code, err = _run(["run", str(cfg)], capsys)
    assert code == 2
    assert "dedup.bandz" in err and "unknown key" in err
    assert not (tmp_path / "run").exists(), "no work may start on a config error"


def test_wrong_type_names_key_expected_and_found(tmp_path, corpus_file, capsys):
    cfg = write_config(tmp_path / "c.yaml", [str(corpus_file)], tmp_path / "run")
    code, err = _run(["run", str(cfg), "--set", "langid.min_score=high"], capsys)
    assert code == 2
    assert "langid.min_score" in err and "valid number" in err and "'high'" in err


def test_missing_input_file_exits_2(tmp_path, capsys):
    cfg = write_config(tmp_path / "c.yaml", [str(tmp_path / "nope-*.jsonl")], tmp_path / "run")
    code, err = _run(["run", str(cfg)], capsys)
    assert code == 2
    assert "input.paths" in err and "nope-*.jsonl" in err


def test_empty_input_exits_2(tmp_path, capsys):
    cfg = write_config(tmp_path / "c.yaml", [], tmp_path / "run")
    code, err = _run(["run", str(cfg)], capsys)
    assert code == 2 and "input.paths" in err


def test_unknown_filter_preset_and_param(tmp_path, corpus_file, capsys):
    cfg = write_config(tmp_path / "c.yaml", [str(corpus_file)], tmp_path / "run", filters=["gopher_qualty"])
    code, err = _run(["run", str(cfg)], capsys)
    assert code == 2 and "filters:" in err and "gopher_qualty" in err
    cfg = write_config(
        tmp_path / "c.yaml",
        [str(corpus_file)],
        tmp_path / "run2",
        filters=[{"name": "gopher_quality", "params": {"min_doc_wordz": 10}}],
    )
    code, err = _run(["run", str(cfg)], capsys)
    assert code == 2 and "filters.gopher_quality.params" in err and "min_doc_wordz" in err


def test_set_overrides_and_resolved_config_written(tmp_path, corpus_file):
    cfg = write_config(tmp_path / "c.yaml", [str(corpus_file)], tmp_path / "run")
    config = load_config(cfg, ["dedup.bands=20", "langid.languages=[en, fr]", "mixture.multipliers.science=2.0"])
    assert config.dedup.bands == 20
    assert config.langid.languages == ["en", "fr"]
    assert config.mixture.multipliers == {"science": 2.0}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config(cfg, ["dedup.bands"])


def test_not_yaml_mapping(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(path)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["decontam.benchmarks=nowhere/spec.yaml"], "nowhere/spec.yaml"),
        (["students.enabled=true", "teacher.labels_path=null"], "teacher.labels_path"),
        (["quality.min_quality=2.5"], "quality.min_quality"),
    ],
)
def test_settings_that_cannot_run_exit_2_before_the_run_folder_exists(
    tmp_path, corpus_file, capsys, overrides, expected
):
    cfg = write_config(tmp_path / "c.yaml", [str(corpus_file)], tmp_path / "run")
    code, err = _run(["run", str(cfg), *(arg for o in overrides for arg in ("--set", o))], capsys)
    assert code == 2
    assert expected in err
    assert not (tmp_path / "run").exists(), "a fixed config must not be refused as a different one"
