"""The floors hold (every pipeline module on one), and base-floor helpers behave."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_pipeline_module_is_on_a_floor():
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contracts if c["type"] == "layers")["layers"]
    named = {name.strip().strip("()") for layer in layers for name in layer.replace("|", ":").split(":")}
    modules = {
        f"pipeline.{path.stem if path.is_file() else path.name}"
        for path in (ROOT / "pipeline").iterdir()
        if (path.suffix == ".py" and path.stem != "__init__") or (path / "__init__.py").is_file()
    }
    assert modules - named == set(), "add these modules to a floor in pyproject.toml [tool.importlinter]"


def test_load_once_per_process_and_again_when_the_file_changes(tmp_path):
    from pipeline.worker import file_version, load_once

    model = tmp_path / "model.bin"
    model.write_text("v1")
    loads: list[str] = []

    def load() -> str:
        loads.append(model.read_text())
        return loads[-1]

    assert load_once(("m", file_version(model)), load) == "v1"
    assert load_once(("m", file_version(model)), load) == "v1"
    assert loads == ["v1"]
    model.write_text("v2 longer")  # rewritten in place: a new version, loaded again
    assert load_once(("m", file_version(model)), load) == "v2 longer"
    assert loads == ["v1", "v2 longer"]
