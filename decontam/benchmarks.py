"""Benchmarks as input: the spec file (YAML, format in DESIGN.md), presets and local file loaders.

```yaml
benchmarks:
  - name: gsm8k
    path: data/gsm8k/test.jsonl   # a file or a glob, relative to this spec file's folder
    fields: [question]            # joined with "\\n" to form the test sequence
    id: null                      # id field; null = row index within the benchmark
    preset: null                  # optional: sets fields and id (explicit non-null values win)
```
Files are JSONL, JSONL.gz, JSON (one object or a list), Parquet or CSV (with a header row; a
benchmark whose fields are all column numbers, such as the original MMLU files, reads CSV without
one). A field may be a dotted path (`choices.text`), which maps over lists; list values are joined
with "\\n". Nothing is ever downloaded. Every problem raises BenchmarkError naming the benchmark.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from glob import glob
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml

from pipeline.errors import ConfigError

_SPEC_KEYS = {"name", "path", "fields", "id", "preset"}
_JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
_PARQUET_SUFFIXES = (".parquet", ".pq")


class BenchmarkError(ConfigError):
    """A benchmark spec or file the user can fix; the message names the benchmark."""


@dataclass(frozen=True)
class Layout:
    fields: tuple[str, ...]
    id: str | None = None


def _layouts(*pairs: tuple[list[str], str | None]) -> tuple[Layout, ...]:
    return tuple(Layout(tuple(fields), id_field) for fields, id_field in pairs)


# Common layouts of each benchmark's public releases (original repos, Hugging Face datasets and
# popular re-packagings), tried in order against the first record. The test sequence is what the
# model is shown at evaluation time: the question with its choices for multiple choice, the
# problem for generation tasks, prompt + solution for code (as the Qwen2 report's examples).
PRESETS: dict[str, tuple[Layout, ...]] = {
    "gsm8k": _layouts((["question"], None)),
    "math": _layouts((["problem"], "unique_id"), (["problem"], "idx"), (["problem"], None)),
    "mmlu": _layouts(
        (["question", "choices"], None),  # cais/mmlu
        (["question", "choice0", "choice1", "choice2", "choice3"], None),
        (["input", "A", "B", "C", "D"], None),  # lukaemon/mmlu
        (["0", "1", "2", "3", "4"], None),  # original headerless CSV: question, A-D, answer
    ),
    "humaneval": _layouts((["prompt", "canonical_solution"], "task_id")),
    "mbpp": _layouts((["text", "code"], "task_id"), (["prompt", "code"], "task_id")),
    "hellaswag": _layouts((["ctx", "endings"], "ind"), (["ctx", "endings"], None)),
    "arc": _layouts(
        (["question", "choices.text"], "id"),  # allenai/ai2_arc
        (["question.stem", "question.choices.text"], "id"),  # original ARC JSONL
        (["query", "choices"], None),  # llm-foundry
    ),
    "truthfulqa": _layouts(
        (["question", "best_answer"], None),  # truthful_qa generation
        (["question", "mc1_targets.choices"], None),  # truthful_qa multiple_choice
        (["Question", "Best Answer"], None),  # TruthfulQA.csv
    ),
    "boolq": _layouts((["passage", "question"], None)),
    "piqa": _layouts((["goal", "sol1", "sol2"], "id"), (["goal", "sol1", "sol2"], None)),
    "winogrande": _layouts((["sentence", "option1", "option2"], "qID"), (["sentence", "option1", "option2"], None)),
    "triviaqa": _layouts((["question", "answer.value"], "question_id"), (["question"], "question_id")),
}


@dataclass(frozen=True)
class Benchmark:
    """The test sequences of one benchmark, in file order."""

    name: str
    source: str
    item_ids: tuple[str, ...]
    texts: tuple[str, ...]


def load_benchmarks(path: str | Path) -> list[Benchmark]:
    """Every benchmark of a spec file; paths are relative to the spec's folder."""
    path = Path(path)
    try:
        tree = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise BenchmarkError(f"cannot read benchmark spec {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise BenchmarkError(f"benchmark spec {path} is not valid YAML: {exc}") from exc
    entries = tree.get("benchmarks") if isinstance(tree, dict) else None
    if not isinstance(entries, list) or not entries:
        raise BenchmarkError(f"benchmark spec {path}: expected a non-empty list under 'benchmarks:'")
    benchmarks, names = [], set()
    for n, entry in enumerate(entries):
        benchmark = load_benchmark(entry, path.parent, f"{path}: benchmarks[{n}]")
        if benchmark.name in names:
            raise BenchmarkError(f"{path}: benchmark name {benchmark.name!r} appears twice")
        names.add(benchmark.name)
        benchmarks.append(benchmark)
    return benchmarks


def load_specs(paths: Sequence[str | Path]) -> list[Benchmark]:
    """The benchmarks of several spec files, in order, audited as one set. A benchmark name may
    appear in only one of them: matches and reports are keyed by name. A file given twice counts once."""
    benchmarks: list[Benchmark] = []
    seen: dict[str, Path] = {}
    for path in dict.fromkeys(Path(p).resolve() for p in paths):
        for benchmark in load_benchmarks(path):
            if benchmark.name in seen:
                raise BenchmarkError(
                    f"benchmark name {benchmark.name!r} is in both {seen[benchmark.name]} and {path}; "
                    "rename one of them (matches and reports are keyed by benchmark name)"
                )
            seen[benchmark.name] = path
            benchmarks.append(benchmark)
    return benchmarks


def item_partition(benchmarks: Sequence[Benchmark], part: int, parts: int) -> list[Benchmark]:
    """Every `parts`-th item of the set, from the `part`-th on (items counted across benchmarks), so
    the partitions hold similar mixes of lengths; benchmarks with no item in it are left out."""
    out, start = [], 0
    for b in benchmarks:
        first = (part - start) % parts
        if first < len(b.texts):
            out.append(replace(b, item_ids=b.item_ids[first::parts], texts=b.texts[first::parts]))
        start += len(b.texts)
    return out


def load_benchmark(entry: Any, base: Path, where: str) -> Benchmark:
    """One spec entry -> Benchmark; `where` locates the entry in error messages."""
    if not isinstance(entry, dict):
        raise BenchmarkError(f"{where}: expected a mapping with name, path and fields (or preset)")
    unknown = sorted(set(entry) - _SPEC_KEYS)
    if unknown:
        raise BenchmarkError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(_SPEC_KEYS)}")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise BenchmarkError(f"{where}: 'name' is required")
    where = f"benchmark {name!r}"
    pattern = entry.get("path")
    if not isinstance(pattern, str) or not pattern:
        raise BenchmarkError(f"{where}: 'path' is required (a file or a glob)")
    files = _expand(pattern, base)
    if not files:
        raise BenchmarkError(f"{where}: no file matches {pattern!r} (relative paths start at {base})")
    layouts = _candidate_layouts(entry, where)
    layout = _pick_layout(layouts, files, where)
    item_ids, texts = [], []
    for row, (file, line, record) in enumerate(_records(files, _positional(layout), where)):
        texts.append("\n".join(_field_text(record, f, where, file, line) for f in layout.fields))
        item_ids.append(_item_id(record, layout.id, row, where, file, line))
    if not texts:
        raise BenchmarkError(f"{where}: {pattern!r} holds no records")
    if len(set(item_ids)) != len(item_ids):
        raise BenchmarkError(f"{where}: id field {layout.id!r} has repeated values; use id: null for row numbers")
    return Benchmark(name=name, source=pattern, item_ids=tuple(item_ids), texts=tuple(texts))


def _expand(pattern: str, base: Path) -> list[Path]:
    full = Path(pattern).expanduser()
    full = full if full.is_absolute() else base / full
    return [Path(p) for p in sorted(glob(str(full), recursive=True)) if Path(p).is_file()]


def _candidate_layouts(entry: dict[str, Any], where: str) -> tuple[Layout, ...]:
    fields, id_field, preset = entry.get("fields"), entry.get("id"), entry.get("preset")
    if fields is not None and (isinstance(fields, str) or not isinstance(fields, list) or not fields):
        raise BenchmarkError(f"{where}: 'fields' must be a non-empty list of field names, e.g. [question]")
    if fields is not None:
        fields = [str(f) for f in fields]
    if id_field is not None and not isinstance(id_field, (str, int)):
        raise BenchmarkError(f"{where}: 'id' must be a field name or null")
    id_field = None if id_field is None else str(id_field)
    if preset is None:
        if fields is None:
            raise BenchmarkError(f"{where}: give 'fields' or a 'preset' (one of {', '.join(PRESETS)})")
        return (Layout(tuple(fields), id_field),)
    layouts = PRESETS.get(str(preset).lower())
    if layouts is None:
        raise BenchmarkError(f"{where}: unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    return tuple(Layout(tuple(fields) if fields else lay.fields, id_field or lay.id) for lay in layouts)


def _positional(layout: Layout) -> bool:
    return all(f.isdigit() for f in layout.fields)


def _pick_layout(layouts: tuple[Layout, ...], files: list[Path], where: str) -> Layout:
    """The first layout whose fields and id all exist in the benchmark's first record."""
    firsts = {}
    for layout in layouts:
        positional = _positional(layout)
        if positional not in firsts:
            firsts[positional] = next(_records(files, positional, where), None)
        first = firsts[positional]
        needed = list(layout.fields) + ([layout.id] if layout.id else [])
        if first is not None and all(_lookup(first[2], f) is not _MISSING for f in needed):
            return layout
    if all(first is None for first in firsts.values()):
        raise BenchmarkError(f"{where}: {files[0]} holds no records")
    found = sorted(firsts[False][2]) if firsts.get(False) else []
    tried = "; ".join(f"fields {list(lay.fields)}, id {lay.id!r}" for lay in layouts)
    raise BenchmarkError(f"{where}: missing field in {files[0]}: tried {tried}; the first record has fields {found}")


_MISSING = object()


def _lookup(record: Any, field: str) -> Any:
    """record[field], or a dotted path through mappings that maps over lists."""
    if isinstance(record, dict) and field in record:
        return record[field]
    head, dot, rest = field.partition(".")
    if not dot:
        return _MISSING
    if isinstance(record, dict) and head in record:
        value = record[head]
        if isinstance(value, list):
            found = [_lookup(v, rest) for v in value]
            return _MISSING if any(v is _MISSING for v in found) else found
        return _lookup(value, rest)
    return _MISSING


def _as_text(value: Any) -> str | None:
    if value is None:
        return ""
    if isinstance(value, (str, int, float, bool)):
        return str(value)
    if isinstance(value, (list, tuple)):
        parts = [_as_text(v) for v in value]
        return None if any(p is None for p in parts) else "\n".join(parts)
    return None


def _field_text(record: dict[str, Any], field: str, where: str, file: Path, line: int) -> str:
    value = _lookup(record, field)
    if value is _MISSING:
        raise BenchmarkError(f"{where}: field {field!r} is missing in {file} record {line}; it has {sorted(record)}")
    text = _as_text(value)
    if text is None:
        raise BenchmarkError(
            f"{where}: field {field!r} in {file} record {line} is a {type(value).__name__}; "
            "name a text field inside it with a dotted path"
        )
    return text


def _item_id(record: dict[str, Any], id_field: str | None, row: int, where: str, file: Path, line: int) -> str:
    if id_field is None:
        return str(row)
    value = _lookup(record, id_field)
    if value is _MISSING or value is None:
        raise BenchmarkError(f"{where}: id field {id_field!r} is missing in {file} record {line}")
    return str(value)


def _records(files: list[Path], positional: bool, where: str) -> Iterator[tuple[Path, int, dict[str, Any]]]:
    """(file, 1-based record number, record) over all files, in order."""
    for file in files:
        try:
            for line, record in _file_records(file, positional):
                yield file, line, record
        except BenchmarkError as exc:
            raise BenchmarkError(f"{where}: {exc}") from exc.__cause__


def _file_records(file: Path, positional: bool) -> Iterator[tuple[int, dict[str, Any]]]:
    name = file.name.lower().removesuffix(".gz")
    opener = gzip.open if file.name.lower().endswith(".gz") else open
    try:
        if name.endswith(_PARQUET_SUFFIXES):
            for batch in pq.ParquetFile(file).iter_batches(batch_size=1024):
                yield from enumerate(batch.to_pylist(), start=1)
        elif name.endswith(".csv"):
            with opener(file, "rt", encoding="utf-8", newline="") as fh:
                yield from _csv_records(fh, positional)
        elif name.endswith(_JSON_SUFFIXES):
            with opener(file, "rt", encoding="utf-8") as fh:
                yield from _json_records(fh, file)
        else:
            raise BenchmarkError(
                f"{file}: unsupported benchmark file type; use .jsonl, .jsonl.gz, .json, .parquet or .csv"
            )
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise BenchmarkError(f"cannot read benchmark file {file}: {exc}") from exc
    except Exception as exc:  # pyarrow raises its own types for broken Parquet
        if isinstance(exc, BenchmarkError):
            raise
        raise BenchmarkError(f"cannot read benchmark file {file}: {exc}") from exc


def _csv_records(fh: io.TextIOBase, positional: bool) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.reader(fh)
    header = None if positional else next(reader, None)
    for row, values in enumerate(reader, start=1):
        keys = header if header is not None else [str(i) for i in range(len(values))]
        yield row, dict(zip(keys, values))


def _json_records(fh: io.TextIOBase, file: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    text = fh.read()
    if file.name.lower().removesuffix(".gz").endswith(".json"):
        try:
            whole = json.loads(text)
        except json.JSONDecodeError:
            whole = None  # a .json file holding JSON lines
        if isinstance(whole, dict):
            yield 1, whole
            return
        if isinstance(whole, list):
            for n, record in enumerate(whole, start=1):
                yield n, _object(record, file, n)
            return
    for n, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BenchmarkError(f"{file}:{n}: bad JSON: {exc}") from exc
            yield n, _object(record, file, n)


def _object(record: Any, file: Path, n: int) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise BenchmarkError(f"{file}:{n}: expected a JSON object, found {type(record).__name__}")
    return record
