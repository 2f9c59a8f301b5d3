"""Heavy things (models, indexes, tokenizers) load once per worker process, not once per task.

Steps are pickled to the workers, so they keep only paths and load lazily inside `run`. A worker
process runs many tasks one after the other (and several steps may need the same model), so the
loaded object is kept here, keyed by what identifies it (kind, path, settings).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
_LOADED: dict[Hashable, Any] = {}


def load_once(key: Hashable, loader: Callable[[], T]) -> T:
    """`loader()` the first time `key` is asked for in this process; the same object after that."""
    if key not in _LOADED:
        _LOADED[key] = loader()
    return _LOADED[key]


def file_version(path: str | Path) -> tuple:
    """What identifies the contents of a file or folder cheaply (names, sizes, mtimes), so that a
    model rewritten in place (e.g. retrained students) is loaded again, not served stale."""
    root = Path(path)
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    return tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files if f.exists())
