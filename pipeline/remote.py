"""A run folder in object storage (any fsspec URL: s3://, gs://, hf://), worked on through a local mirror.

Phases rename, list and memory-map run-folder files as local paths. With `output.dir` a URL they do
so in a mirror folder on each node, and the bucket is the source of truth:
- before a run, the driver makes its mirror equal to the bucket's run folder (a resume, perhaps on
  another machine, sees exactly what the bucket holds: a marker that never reached it is dropped);
- every task pulls the folders its phase reads, runs, pushes what changed, then its completion
  marker: one PUT is atomic, so a marker in the bucket always has its task's outputs there (the
  object-store equivalent of the atomic rename);
- the driver pulls what other nodes' tasks wrote, runs the phase's global work, pushes, and pushes
  the phase's _COMPLETE.json last.
Each mirrored file has a sidecar under <mirror>/.sync/ holding the file's (size, mtime) and the
object version it was synced with: a push uploads only files changed since, a pull downloads only
objects changed in the bucket and never overwrites local work that is not pushed yet.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec

from pipeline.docio import write_text_atomic
from pipeline.errors import ConfigError

SYNC_DIR = ".sync"
PHASE_MARKER = "_COMPLETE.json"
DRIVER_FILE = ".driver"  # the session of the driver whose mirror this is (a dot name is never synced)
# A task pushes files modified since it began; this much earlier, for filesystems with coarse timestamps.
MTIME_SLACK_NS = 2_000_000_000
TASK_MARKERS = "completions"  # datatrove's folder of per-task markers in a logging folder
MIRROR_ENV = "MIXWRIGHT_MIRROR"
CREDENTIALS_HINT = (
    "For S3, set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or AWS_PROFILE (and AWS_ENDPOINT_URL for an "
    "S3-compatible store)"
)


def is_remote(location: str) -> bool:
    return "://" in location


def mirror_root(url: str) -> Path:
    """The mirror of `url`: $MIXWRIGHT_MIRROR (default ~/.cache/mixwright/mirror), one folder per URL.

    Steps are built on the driver with absolute paths, so every node uses the driver's path."""
    base = Path(os.environ.get(MIRROR_ENV) or Path.home() / ".cache" / "mixwright" / "mirror").expanduser()
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", url.split("://", 1)[1]).strip("_")[-60:]
    return base.absolute() / f"{readable}-{hashlib.sha256(url.encode()).hexdigest()[:10]}"


def check_remote_folder(url: str) -> None:
    """The bucket exists and these credentials can see it; nothing is written (preflight)."""
    try:
        fs, root = fsspec.core.url_to_fs(url)
        bucket = root.split("/", 1)[0]
        fs.invalidate_cache()
        try:
            fs.info(bucket)
        except FileNotFoundError:
            raise ConfigError(
                f"output.dir: expected a run folder in an existing bucket, found no bucket {bucket!r} at {url!r} "
                "(or these credentials cannot see it)"
            ) from None
        if fs.isfile(root):
            raise ConfigError(f"output.dir: expected a run folder (new or existing), found an object at {url!r}")
    except ConfigError:
        raise
    except Exception as exc:  # ImportError (no s3fs/gcsfs), botocore's NoCredentialsError, PermissionError...
        message = str(exc).splitlines()[0] if str(exc) else ""
        raise ConfigError(
            f"output.dir: cannot reach {url!r}: {type(exc).__name__}: {message}. {CREDENTIALS_HINT}"
        ) from None


def _stat(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _version(info: dict[str, Any]) -> str:
    """An object's version as its store lists it: ETag (S3), md5Hash (GCS), else modification time."""
    for key in ("ETag", "etag", "md5Hash", "LastModified", "mtime", "last_modified"):
        if info.get(key):
            return f"{info[key]}:{info.get('size')}"
    return f"?:{info.get('size')}"


def _pushed(stat: list[int]) -> str:
    """The version a pushed file is known by: its size. Asking the store for the ETag would cost a
    request per file; the only writer of a name is the task that owns it, and a rerun writes the same."""
    return f"pushed:{stat[0]}"


def is_marker(rel: str) -> bool:
    """Completion markers go up last and one at a time, never in a sweep."""
    parts = rel.split("/")
    return parts[-1] == PHASE_MARKER or (len(parts) > 1 and parts[-2] == TASK_MARKERS)


@dataclass(frozen=True)
class RemoteFolder:
    """A run folder at `url` and its local `mirror`. Picklable: Ray workers get it with the steps."""

    url: str
    mirror: Path
    session: str = ""  # the driver's run: tasks in its own mirror need not pull

    @classmethod
    def at(cls, url: str) -> RemoteFolder:
        url = url.rstrip("/")
        return cls(url, mirror_root(url), uuid.uuid4().hex)

    def claim(self) -> None:
        """The driver marks its mirror as its own: a task that finds this mark runs on the driver's node,
        where the driver already pulled everything the phases before wrote."""
        write_text_atomic(self.mirror / DRIVER_FILE, self.session)

    def is_drivers(self) -> bool:
        try:
            return (self.mirror / DRIVER_FILE).read_text() == self.session
        except FileNotFoundError:
            return False

    def _fs(self) -> tuple[Any, str]:
        fs, root = fsspec.core.url_to_fs(self.url)  # fsspec caches the instance
        return fs, root.rstrip("/")

    def rel(self, path: Path) -> str:
        return path.relative_to(self.mirror).as_posix()

    def _sidecar(self, rel: str) -> Path:
        return self.mirror / SYNC_DIR / rel

    def _synced(self, rel: str) -> dict[str, Any] | None:
        try:
            return json.loads(self._sidecar(rel).read_text())
        except (FileNotFoundError, ValueError):
            return None

    def _mark_synced(self, rel: str, stat: list[int], version: str) -> None:
        write_text_atomic(self._sidecar(rel), json.dumps({"stat": stat, "version": version}))

    def _local_files(self, folder: str = "") -> Iterator[str]:
        """Files under `folder` of the mirror, without the sidecars and the temporary names of atomic writes."""
        top = self.mirror / folder
        if top.is_file():
            yield folder
            return
        skip = len(str(self.mirror)) + 1
        for dirpath, dirnames, filenames in os.walk(top):
            if dirpath == str(self.mirror):
                dirnames[:] = [d for d in dirnames if d != SYNC_DIR]
            prefix = dirpath[skip:] + "/" if len(dirpath) > skip else ""
            yield from (prefix + name for name in filenames if not name.startswith("."))

    def _listing(self, folders: Iterable[str]) -> dict[str, dict[str, Any]]:
        fs, root = self._fs()
        objects: dict[str, dict[str, Any]] = {}
        for folder in folders:
            base = f"{root}/{folder}".rstrip("/")
            fs.invalidate_cache(base)  # another node may have written since the last listing
            found = fs.find(base, detail=True) or {}
            for path, info in found.items():
                if info.get("type") != "directory":
                    objects[path[len(root) + 1 :]] = info
        return objects

    def pull(self, folders: Iterable[str] = ("",), exact: bool = False) -> int:
        """Download the objects under `folders` that changed in the bucket; returns how many.

        exact: the mirror becomes the bucket (local files it lacks are removed, local changes are
        overwritten): the driver before a run. Otherwise local work not pushed yet is kept: tasks."""
        folders = list(folders)
        objects = self._listing(folders)
        todo = []
        for rel, info in objects.items():
            local = self.mirror / rel
            if not local.is_file():
                todo.append(rel)
                continue
            synced = self._synced(rel)
            stat = _stat(local)
            unchanged = synced is not None and synced["stat"] == stat
            if unchanged and synced["version"] in (_version(info), _pushed([info.get("size", -1)])):
                continue
            if exact or unchanged:
                todo.append(rel)
        self._download(todo, objects)
        if exact:
            for folder in folders:
                for rel in list(self._local_files(folder)):
                    if rel not in objects:
                        self.forget(self.mirror / rel)
        return len(todo)

    def _download(self, rels: list[str], objects: dict[str, dict[str, Any]]) -> None:
        if not rels:
            return
        fs, root = self._fs()
        # a temporary name, then a rename: tasks on one node may pull the same file at once
        tmps = [self.mirror / rel for rel in rels]
        tmps = [path.with_name(f".{path.name}.pull-{os.getpid()}-{uuid.uuid4().hex[:8]}") for path in tmps]
        for tmp in tmps:
            tmp.parent.mkdir(parents=True, exist_ok=True)
        fs.get([f"{root}/{rel}" for rel in rels], [str(tmp) for tmp in tmps])
        for rel, tmp in zip(rels, tmps, strict=True):
            local = self.mirror / rel
            os.replace(tmp, local)
            self._mark_synced(rel, _stat(local), _version(objects[rel]))

    def push(self, delete: bool = False, since_ns: int = 0) -> int:
        """Upload every mirror file changed since it was last synced, completion markers aside; returns how many.

        delete: also remove the objects of files removed from the mirror since they were synced
        (a rerun task replaces its earlier parts). Only the driver does it, between phases, when no
        task can be writing the same name again.
        since_ns: only files modified since then (a task: the driver pushed everything before it began)."""
        changed = []
        for rel in self._local_files():
            if is_marker(rel):
                continue
            # the stat before the upload: a file changed during it differs next time and goes up again
            stat = _stat(self.mirror / rel)
            if stat[1] < since_ns:
                continue
            synced = self._synced(rel)
            if synced is None or synced["stat"] != stat:
                changed.append((rel, stat))
        self._upload(changed)
        if delete:
            self._delete_removed()
        return len(changed)

    def push_file(self, path: Path) -> None:
        """One file (a completion marker), whatever its sidecar says."""
        self._upload([(self.rel(path), _stat(path))])

    def _upload(self, files: list[tuple[str, list[int]]]) -> None:
        if not files:
            return
        fs, root = self._fs()
        remote = [f"{root}/{rel}" for rel, _ in files]
        fs.put([str(self.mirror / rel) for rel, _ in files], remote)
        for rel, stat in files:
            self._mark_synced(rel, stat, _pushed(stat))

    def _delete_removed(self) -> None:
        fs, root = self._fs()
        sidecars = self.mirror / SYNC_DIR
        gone = [self.rel(self.mirror / p.relative_to(sidecars)) for p in sidecars.rglob("*") if p.is_file()]
        # (a name starting with "." is a sidecar being written)
        gone = [rel for rel in gone if not rel.rsplit("/", 1)[-1].startswith(".") and not (self.mirror / rel).exists()]
        if gone:
            fs.rm([f"{root}/{rel}" for rel in gone])
            for rel in gone:
                self._sidecar(rel).unlink(missing_ok=True)

    def forget(self, path: Path) -> None:
        """Remove a mirror file and its sidecar, leaving the bucket alone."""
        rel = self.rel(path)
        self._sidecar(rel).unlink(missing_ok=True)
        path.unlink(missing_ok=True)

    def fetch(self, path: Path) -> None:
        """Download one object (a completion marker another node pushed) if the mirror lacks it."""
        if not path.is_file():
            rel = self.rel(path)
            objects = self._listing([rel])
            self._download([rel] if rel in objects else [], objects)


@dataclass(frozen=True)
class TaskSync:
    """What an engine task does around its steps when the run folder is in object storage."""

    remote: RemoteFolder
    reads: tuple[str, ...]  # folders (relative to the run folder) the phase reads
    logs: Path  # the step run's logging folder, in the mirror

    def marker(self, rank: int) -> Path:
        return self.logs / TASK_MARKERS / f"{rank:05d}"

    def run(self, rank: int, task: Callable[[], Any]) -> Any:
        """Pull what the phase reads, run the task, push what it wrote and then its marker."""
        started = time.time_ns() - MTIME_SLACK_NS
        # the driver decided this rank must run: a marker a killed attempt left on this node would make
        # datatrove skip it, and would then go up without the outputs
        self.remote.forget(self.marker(rank))
        if not self.remote.is_drivers():
            self.remote.pull(self.reads)
        try:
            return task()
        finally:
            self.after(rank, started)

    def after(self, rank: int, since_ns: int) -> None:
        """Push the task's outputs, then its marker; if the push fails the task is not complete."""
        marker = self.marker(rank)
        try:
            self.remote.push(since_ns=since_ns)
            if marker.is_file():
                self.remote.push_file(marker)
        except BaseException:
            self.remote.forget(marker)
            raise

    def fetch_marker(self, rank: int) -> None:
        """On the driver, as a task on another node ends: its marker shows progress."""
        self.remote.fetch(self.marker(rank))

    def collect(self) -> None:
        """On the driver, after a step run: what tasks on other nodes wrote (outputs, markers, logs)."""
        self.remote.pull()
