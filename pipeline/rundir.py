"""The run directory layout (DESIGN.md "Run directory"): one place that names every path.

A run folder in object storage (`output.dir` an fsspec URL) is worked on in a local mirror; `remote`
syncs it with the bucket (pipeline/remote.py). Every method is a no-op on that side for a local folder.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.docio import write_json_atomic
from pipeline.remote import RemoteFolder, TaskSync, is_remote

_PHASE_ID = re.compile(r"p\d+_\w+")


@dataclass(frozen=True)
class RunDir:
    root: Path
    remote: RemoteFolder | None = None

    @classmethod
    def at(cls, location: str | Path) -> RunDir:
        """A local folder, or an fsspec URL worked on through its local mirror (nothing is created)."""
        if is_remote(str(location)):
            remote = RemoteFolder.at(str(location))
            return cls(remote.mirror, remote)
        return cls(Path(location))

    @property
    def location(self) -> str:
        """Where the run folder is, as the user named it."""
        return self.remote.url if self.remote else str(self.root)

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
        """In a bucket, the phase's outputs go up first and its marker last."""
        marker = self.phase_done_marker(name)
        write_json_atomic(marker, {"finished_at": time.time(), **summary})
        if self.remote:
            self.push()
            self.remote.push_file(marker)

    def phase_summary(self, name: str) -> dict[str, Any]:
        return json.loads(self.phase_done_marker(name).read_text())

    def pull(self) -> None:
        """Before a run: the mirror becomes what the bucket holds."""
        if self.remote:
            self.remote.pull(exact=True)
            self.remote.claim()

    def push(self) -> None:
        """Everything written since the last push goes to the bucket (markers aside)."""
        if self.remote:
            self.remote.push(delete=True)

    def task_sync(self, reads: tuple[str, ...], logs: Path) -> TaskSync | None:
        """What an engine task of a phase reading `reads` (phase ids or RUN/<path>) pulls and pushes."""
        if self.remote is None:
            return None
        folders = tuple(f"work/{name}" if _PHASE_ID.fullmatch(name) else name for name in reads if name != "input")
        return TaskSync(self.remote, folders, logs)
