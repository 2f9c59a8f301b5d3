"""P5 ContaminationFilter (drop / annotate), the audit reports and run_audit on both engines."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from datatrove.data import Document

from decontam.benchmarks import load_benchmarks
from pipeline.audit import run_audit
from pipeline.config import DecontamConfig, EngineConfig
from pipeline.contamination_report import write_contamination_reports
from pipeline.docio import RejectWriter
from pipeline.synth import benchmark_items
from stages.decontam import MATCH_SCHEMA, ContaminationFilter

DEMO_SPEC = "configs/benchmarks/demo.yaml"
ITEM = benchmark_items()[0]
CLEAN = "A short note about the weather in spring, with rain on most afternoons and sun later on."
PLANTED = f"{CLEAN} {CLEAN}\n\n{ITEM['question']} {ITEM['answer']}\n\n{CLEAN} {CLEAN}"


def _docs() -> list[Document]:
    return [Document(text=PLANTED, id="planted", metadata={}), Document(text=CLEAN, id="clean", metadata={})]


@pytest.mark.parametrize("action", ["drop", "annotate"])
def test_filter_tags_drops_and_writes_matches(tmp_path, monkeypatch, action):
    monkeypatch.chdir(tmp_path)  # the packaged spec resolves from any folder
    step = ContaminationFilter(
        DecontamConfig(benchmarks=DEMO_SPEC, action=action),
        tmp_path / "matches",
        RejectWriter(tmp_path / "rejected", "decontam"),
    )
    kept = list(step.run(iter(_docs()), rank=3))
    assert [d.id for d in kept] == (["planted", "clean"] if action == "annotate" else ["clean"])
    assert kept[-1].metadata["contamination"] == []
    matches = pq.read_table(tmp_path / "matches" / "00003.parquet").to_pylist()
    ours = [m for m in matches if m["item_id"] == ITEM["id"]]
    assert len(ours) == 1 and {m["doc_id"] for m in matches} == {"planted"}
    row = ours[0]
    assert row["lcs"] == row["item_tokens"] and row["window_tokens"] == 2 * row["item_tokens"]
    assert PLANTED[row["start_char"] : row["end_char"]] == f"{ITEM['question']} {ITEM['answer']}".rstrip(".")
    assert row["text"] == PLANTED[row["start_char"] : row["end_char"]]
    rejected = tmp_path / "rejected" / "decontam" / "00003.parquet"
    if action == "annotate":
        assert not rejected.exists()
        assert ITEM["id"] in {m["item_id"] for m in kept[0].metadata["contamination"]}
        return
    (reject,) = pq.read_table(rejected).to_pylist()
    details = json.loads(reject["details"])
    assert reject["id"] == "planted" and reject["reason"] == "contaminated"
    assert {"benchmark", "item_id", "lcs", "window_tokens", "item_tokens", "start_char", "end_char", "matches"} <= set(
        details
    )


def test_html_escapes_untrusted_text(tmp_path):
    payload = "<script>alert('x')</script>"
    item = f"Which tag <b>opens</b> a script block in the page that {payload} loads before the body of the document"
    (tmp_path / "bench.jsonl").write_text(json.dumps({"q": item}) + "\n")
    (tmp_path / "spec.yaml").write_text("benchmarks:\n  - {name: '<i>bench</i>', path: bench.jsonl, fields: [q]}\n")
    config = DecontamConfig(benchmarks=str(tmp_path / "spec.yaml"), action="annotate")
    doc = Document(text=f"{payload}\n{item} & more {payload}", id="<img src=x onerror=alert(1)>", metadata={})
    list(ContaminationFilter(config, tmp_path / "matches").run(iter([doc])))
    benchmarks = load_benchmarks(tmp_path / "spec.yaml")
    summary = write_contamination_reports(tmp_path / "matches", 1, benchmarks, tmp_path / "out", config)
    assert summary["docs_contaminated"] == 1 and summary["benchmarks"]["<i>bench</i>"]["items_hit"] == 1
    html = (tmp_path / "out" / "contamination.html").read_text()
    assert "<script" not in html and "<img" not in html and "<i>" not in html and "<b>opens" not in html
    assert (
        "&lt;img src=x onerror=alert(1)&gt;" in html
        and "&lt;/<mark>script</mark>&gt;" in html
        and "&lt;i&gt;bench" in html
    )
    assert "http" not in html  # self-contained: nothing fetched


def _corpus(folder: Path) -> list[str]:
    """A small JSONL corpus plus a Parquet file, with planted copies and one broken line."""
    import pyarrow as pa

    lines = [json.dumps({"id": f"d{i}", "text": PLANTED if i % 7 == 0 else f"{CLEAN} Number {i}."}) for i in range(60)]
    lines.insert(5, "{not json")
    (folder / "a.jsonl").write_text("\n".join(lines) + "\n")
    rows = [{"id": f"p{i}", "text": PLANTED if i == 2 else CLEAN} for i in range(10)]
    pq.write_table(pa.Table.from_pylist(rows), folder / "b.parquet")
    return [str(folder / "a.jsonl"), str(folder / "*.parquet")]


def test_run_audit_local_and_ray_agree(tmp_path, ray_session):
    corpus = _corpus(tmp_path)
    results = {}
    for kind in ("local", "ray"):
        out = tmp_path / kind
        summary = run_audit(
            Path(DEMO_SPEC), corpus, out, DecontamConfig(), EngineConfig(kind=kind, workers=2), show_progress=False
        )
        table = pq.read_table(out / "contamination.parquet")
        assert table.schema.names == MATCH_SCHEMA.names
        assert (out / "contamination.html").is_file()
        assert json.loads((out / "contamination.json").read_text()) == summary
        results[kind] = (summary, table.to_pylist())
    summary, rows = results["local"]
    assert results["ray"] == results["local"]
    assert summary["docs_scanned"] == 70 and summary["quarantined"] == 1
    assert summary["docs_contaminated"] == 10  # 9 planted JSONL lines + 1 Parquet row
    assert {r["doc_id"] for r in rows if r["item_id"] == ITEM["id"]} == {f"d{i}" for i in range(0, 60, 7)} | {"p2"}
