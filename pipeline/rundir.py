"""The run directory layout (DESIGN.md "Run directory"): one place that names every path."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.docio import write_json_atomic


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def mixture(self) -> Path:
        return self.root / "mixture"

    @property
    def rejected(self) -> Path:
        return self.root / "rejected"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def annotations(self) -> Path:
        return self.root / "annotations"

    @property
    def work(self) -> Path:
        return self.root / "work"

    def phase(self, name: str) -> Path:
        return self.work / name

    def phase_done_marker(self, name: str) -> Path:
        return self.phase(name) / "_COMPLETE.json"

    def phase_done(self, name: str) -> bool:
        return self.phase_done_marker(name).is_file()

    def mark_phase_done(self, name: str, summary: dict[str, Any]) -> None:
        write_json_atomic(self.phase_done_marker(name), {"finished_at": time.time(), **summary})

    def phase_summary(self, name: str) -> dict[str, Any]:
        return json.loads(self.phase_done_marker(name).read_text())
