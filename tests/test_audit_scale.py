"""`mixwright audit` at scale: item partitions x shards on both engines, several spec files, the
items that can never match, progress in documents per second."""

from __future__ import annotations

import io
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from rich.console import Console

from pipeline.audit import item_partitions, run_audit
from pipeline.config import DecontamConfig, EngineConfig

WORDS = [f"w{n}" for n in range(400)]
SHORT_ITEMS = {"s1": "What is two plus two?", "s2": "Name the <b>capital</b> of France, in one word please now."}


def _item(rng: random.Random, tokens: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(tokens))


def _spec(folder: Path, benchmarks: dict[str, list[dict]]) -> Path:
    """A spec file in `folder` with one JSONL file per benchmark (fields [q], id field id)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["benchmarks:"]
    for name, rows in benchmarks.items():
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        lines.append(f"  - {{name: {name}, path: {name}.jsonl, fields: [q], id: id}}")
    (folder / "spec.yaml").write_text("\n".join(lines) + "\n")
    return folder / "spec.yaml"


def _edited(rng: random.Random, text: str, rate: float) -> str:
    return " ".join(rng.choice(WORDS) if rng.random() < rate else w for w in text.split())


def _setup(tmp_path: Path) -> tuple[list[Path], list[str], dict[str, list[str]]]:
    """Two spec files (alpha + short in one, beta in the other) and a two-file corpus with exact and
    edited copies of items of both; returns specs, corpus globs and the planted item ids."""
    rng = random.Random(11)
    alpha = [{"id": f"a{i}", "q": _item(rng, rng.randint(13, 60))} for i in range(40)]
    beta = [{"id": f"b{i}", "q": _item(rng, rng.randint(13, 90))} for i in range(30)]
    short = [{"id": key, "q": text} for key, text in SHORT_ITEMS.items()] + [{"id": "long", "q": _item(rng, 20)}]
    specs = [_spec(tmp_path / "one", {"alpha": alpha, "short": short}), _spec(tmp_path / "two", {"beta": beta})]
    planted: dict[str, list[str]] = {"alpha": [], "beta": []}
    docs = []
    for n in range(120):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 300)))
        if n % 4 == 0:
            name, rows = ("alpha", alpha) if n % 8 == 0 else ("beta", beta)
            row = rows[(n * 7) % len(rows)]
            copy = row["q"] if n % 3 else _edited(rng, row["q"], 0.1)
            text = f"{text} {copy} {_item(rng, 30)}"
            planted[name].append(row["id"])
        docs.append({"id": f"d{n}", "text": text + " " + SHORT_ITEMS["s1"]})
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for part in range(2):
        (corpus / f"part{part}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs[part::2]))
    return specs, [str(corpus / "*.jsonl")], planted


@pytest.fixture(scope="module")
def audit_inputs(tmp_path_factory) -> tuple[list[Path], list[str], dict[str, list[str]]]:
    return _setup(tmp_path_factory.mktemp("audit_inputs"))


def _audit(specs, corpus, out: Path, parts: int | None, **engine) -> tuple[dict, list[dict], str]:
    summary = run_audit(
        specs, corpus, out, DecontamConfig(), EngineConfig(**engine), show_progress=False, parts=parts, console=_quiet()
    )
    rows = pq.read_table(out / "contamination.parquet").to_pylist()
    return summary, rows, (out / "contamination.html").read_text()


def _quiet() -> Console:
    return Console(file=io.StringIO(), width=80)


def test_partitioned_equals_unpartitioned_on_both_engines(audit_inputs, tmp_path, ray_session):
    specs, corpus, planted = audit_inputs
    reference = _audit(specs, corpus, tmp_path / "p1", 1, kind="local", workers=1)
    summary, rows, html = reference
    # every planted copy found, for both specs' benchmarks, in one pass
    for name, ids in planted.items():
        assert set(ids) <= {r["item_id"] for r in rows if r["benchmark"] == name}
    assert summary["docs_scanned"] == 120 and summary["item_partitions"] == 1
    for parts, engine in ((3, {"kind": "local", "workers": 2}), (2, {"kind": "ray", "workers": 2})):
        other_summary, other_rows, other_html = _audit(specs, corpus, tmp_path / f"p{parts}", parts, **engine)
        assert other_summary.pop("item_partitions") == parts
        assert other_rows == rows and other_html == html
        assert other_summary == {k: v for k, v in summary.items() if k != "item_partitions"}


def test_several_specs_and_the_items_that_can_never_match(audit_inputs, tmp_path):
    specs, corpus, _ = audit_inputs
    console = Console(file=io.StringIO(), width=80)
    engine = EngineConfig(kind="local", workers=1)
    summary = run_audit(specs, corpus, tmp_path / "out", DecontamConfig(), engine, console=console, show_progress=False)
    assert list(summary["benchmarks"]) == ["alpha", "short", "beta"]
    assert summary["specs"] == [str(s.resolve()) for s in specs]
    expected = [
        {"benchmark": "short", "item_id": "s1", "tokens": 5, "text": SHORT_ITEMS["s1"]},
        {"benchmark": "short", "item_id": "s2", "tokens": 12, "text": SHORT_ITEMS["s2"]},
    ]
    assert summary["too_short"] == expected  # the corpus holds s1 verbatim: it still cannot match
    assert [b["items_too_short"] for b in summary["benchmarks"].values()] == [0, 2, 0]
    assert json.loads((tmp_path / "out" / "contamination.json").read_text())["too_short"] == expected
    html = (tmp_path / "out" / "contamination.html").read_text()
    assert "Items that can never match: 2 under 13 tokens" in html
    assert "Name the &lt;b&gt;capital&lt;/b&gt; of France" in html and "<b>capital" not in html
    printed = console.file.getvalue()
    assert all(len(line) <= 80 for line in printed.splitlines())
    assert "2 items can never match (under 13 tokens" in " ".join(printed.split())
    assert f"{tmp_path}/out/contamination.json(too_short)" in "".join(printed.split())


def test_automatic_partitions():
    gib = float(1 << 30)
    assert item_partitions(items=35_000, shards=8, workers=2, memory=24 * gib) == 1  # fits: no extra passes
    assert item_partitions(items=35_000, shards=64, workers=64, memory=256 * gib) == 1
    assert item_partitions(items=35_000, shards=64, workers=64, memory=64 * gib) == 2  # 24 GB of indexes
    assert item_partitions(items=500, shards=1, workers=4, memory=gib) == 4  # one shard: items fill the workers
    assert item_partitions(items=3, shards=1, workers=4, memory=gib) == 3


def _cli(*args: str) -> subprocess.CompletedProcess:
    """The audit command as a user runs it, stdout and stderr piped; every path argument is absolute."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "audit", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).resolve().parent.parent,
        env={**os.environ, "COLUMNS": "80"},
    )


def test_cli_progress_lines_in_docs_per_second_when_piped(audit_inputs, tmp_path):
    specs, corpus, _ = audit_inputs
    result = _cli(
        "--benchmarks",
        str(specs[0].parent.parent / "*" / "spec.yaml"),  # a glob: both spec files
        *corpus,
        "--output",
        str(tmp_path / "out"),
        "--engine",
        "local",
        "--workers",
        "2",
        "--item-partitions",
        "2",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = re.findall(r"^audit: (\d+)/(\d+) tasks, ([\d,]+) docs, ([\d,]+|-) docs/s, \d+ s$", result.stderr, re.M)
    tasks = int(lines[0][1])
    assert tasks % 2 == 0  # shards x 2 item partitions
    assert [int(done) for done, *_ in lines][-1] == tasks and len(lines) >= 2
    assert lines[-1][2] == "120"  # documents fully audited, not (document, partition) pairs
    assert "2 items can never match" in " ".join(result.stdout.split() + result.stderr.split())


def test_cli_input_errors_before_any_work(audit_inputs, tmp_path):
    specs, corpus, _ = audit_inputs
    clash = _spec(tmp_path / "clash", {"beta": [{"id": "x", "q": "a b c"}]})
    out = tmp_path / "out"
    cases = {
        "is in both": ["--benchmarks", str(specs[1]), "--benchmarks", str(clash)],
        "cannot read benchmark spec": ["--benchmarks", str(tmp_path / "missing.yaml")],
        "found nothing matching": ["--benchmarks", str(tmp_path / "nothing" / "*.yaml")],
        "no file matches": ["--benchmarks", str(specs[0]), str(tmp_path / "nothing" / "*.jsonl")],
    }
    for expected, args in cases.items():
        if expected != "no file matches":
            args = [*args, *corpus]
        result = _cli(*args, "--output", str(out), "--engine", "local")
        assert result.returncode == 2, (expected, result.stderr[-2000:])
        assert expected in " ".join(result.stderr.split()), result.stderr[-2000:]
        assert not out.exists()  # nothing was started or written
