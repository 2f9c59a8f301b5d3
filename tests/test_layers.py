"""Every module of pipeline/ sits on a floor of the import-linter contract, so none escapes it."""

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
