"""Contamination reports of a run or an audit, written into one folder:

contamination.parquet (one row per (document, item) match), contamination.json (per benchmark:
items, items that cannot match, items hit, documents hit, rates; and `too_short`, the list of items
under the rule's min_tokens, which no corpus can ever match) and contamination.html. All text in the
HTML is escaped: web documents are untrusted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from decontam.benchmarks import Benchmark
from decontam.lcs import lcs_pairs
from decontam.tokenize import WordTokenizer, load_tokenizer
from pipeline.config import DecontamConfig
from pipeline.docio import AtomicParquetWriter, write_json_atomic, write_text_atomic
from stages.decontam import MATCH_SCHEMA

EXAMPLES_PER_BENCHMARK = 5
SHORT_TEXT_CHARS = 100  # an item's text in the too-short list, whitespace collapsed
SHORT_ROWS_HTML = 500  # per benchmark; contamination.json lists them all
_ALIGN_CELLS = 400_000  # above this, highlight shared tokens by set membership instead of the LCS
_SORT = ["doc_id", "benchmark", "item_id", "start_char"]


def read_matches(matches_dir: Path) -> pa.Table:
    """All task match files, in a stable order whatever the number of tasks."""
    files = sorted(Path(matches_dir).glob("*.parquet"))
    tables = [pq.read_table(f) for f in files]
    if not tables:
        return pa.Table.from_pylist([], schema=MATCH_SCHEMA.append(pa.field("text", pa.string())))
    return pa.concat_tables(tables).sort_by([(c, "ascending") for c in _SORT])


def write_contamination_reports(
    matches_dir: Path,
    docs_scanned: int,
    benchmarks: Sequence[Benchmark],
    out_dir: Path,
    config: DecontamConfig | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write contamination.{parquet,json,html} into `out_dir` and return the JSON summary.

    `config` adds the rule's settings and, per benchmark, the items too short to ever match;
    `extra` is merged into the summary (e.g. the audit's input counts)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    matches = read_matches(matches_dir)
    with AtomicParquetWriter(out_dir / "contamination.parquet", MATCH_SCHEMA) as writer:
        for row in matches.select(MATCH_SCHEMA.names).to_pylist():
            writer.write(row)
    rows = matches.to_pylist()
    summary = _summary(rows, docs_scanned, benchmarks, config) | (extra or {})
    write_json_atomic(out_dir / "contamination.json", summary)
    write_text_atomic(out_dir / "contamination.html", _html(summary, rows, benchmarks))
    return summary


def _summary(
    rows: list[dict], docs_scanned: int, benchmarks: Sequence[Benchmark], config: DecontamConfig | None
) -> dict[str, Any]:
    items_hit, docs_hit = defaultdict(set), defaultdict(set)
    for row in rows:
        items_hit[row["benchmark"]].add(row["item_id"])
        docs_hit[row["benchmark"]].add(row["doc_id"])
    too_short = _too_short(benchmarks, config) if config is not None else []
    short: dict[str, int] = {b.name: 0 for b in benchmarks} if config is not None else {}
    for item in too_short:
        short[item["benchmark"]] += 1
    per_benchmark = {}
    for b in benchmarks:
        items = len(b.texts)
        per_benchmark[b.name] = {
            "source": b.source,
            "items": items,
            "items_too_short": short.get(b.name),
            "items_hit": len(items_hit[b.name]),
            "docs_hit": len(docs_hit[b.name]),
            "rate": len(items_hit[b.name]) / items,  # share of the benchmark found in the corpus
            "doc_rate": len(docs_hit[b.name]) / docs_scanned if docs_scanned else 0.0,
        }
    contaminated = len({row["doc_id"] for row in rows})
    summary: dict[str, Any] = {
        "docs_scanned": docs_scanned,
        "docs_contaminated": contaminated,
        "contaminated_rate": contaminated / docs_scanned if docs_scanned else 0.0,
        "matches": len(rows),
        "benchmarks": per_benchmark,
    }
    if config is not None:
        summary["settings"] = config.model_dump(mode="json", exclude={"enabled", "action"})
        summary["too_short"] = too_short
    return summary


def _too_short(benchmarks: Sequence[Benchmark], config: DecontamConfig) -> list[dict[str, Any]]:
    """The items with fewer than min_tokens tokens: |LCS| <= |item| < min_tokens, so none can ever match."""
    tokenizer = load_tokenizer(config.tokenizer)
    found = []
    for b in benchmarks:
        for item_id, text in zip(b.item_ids, b.texts):
            tokens = len(tokenizer.tokens(text))
            if tokens < config.min_tokens:
                found.append({"benchmark": b.name, "item_id": item_id, "tokens": tokens, "text": shorten(text)})
    return found


def shorten(text: str, chars: int = SHORT_TEXT_CHARS) -> str:
    """`text` on one line (whitespace collapsed), cut to `chars` characters with an ellipsis."""
    line = " ".join(text.split())
    return line if len(line) <= chars else line[: chars - 1] + "…"


def _highlight(text: str, others: list[str]) -> str:
    """`text` HTML-escaped, with the word tokens that are in `others`' LCS alignment marked."""
    words = WordTokenizer()
    spans, tokens = words.spans(text), words.tokens(text)
    if len(tokens) * len(others) <= _ALIGN_CELLS:
        marked = {i for i, _ in lcs_pairs(tokens, others)}
    else:
        vocabulary = set(others)
        marked = {i for i, t in enumerate(tokens) if t in vocabulary}
    out, at = [], 0
    for i, (start, end) in enumerate(spans):
        if i in marked:
            out.append(escape(text[at:start]) + "<mark>" + escape(text[start:end]) + "</mark>")
            at = end
    out.append(escape(text[at:]))
    return "".join(out)


def _examples(rows: list[dict], benchmarks: Sequence[Benchmark]) -> dict[str, list[tuple[dict, str]]]:
    """Up to EXAMPLES_PER_BENCHMARK matches per benchmark, the closest first, with their item text."""
    texts = {(b.name, item_id): text for b in benchmarks for item_id, text in zip(b.item_ids, b.texts)}
    chosen: dict[str, list[tuple[dict, str]]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: (-r["lcs"] / r["item_tokens"], r["doc_id"], r["benchmark"], r["item_id"])):
        if len(chosen[row["benchmark"]]) < EXAMPLES_PER_BENCHMARK:
            chosen[row["benchmark"]].append((row, texts.get((row["benchmark"], row["item_id"]), "")))
    return chosen


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}.pair{display:grid;grid-template-columns:1fr 1fr;gap:1em;margin:1em 0 2em}
.pair pre{white-space:pre-wrap;background:#f7f7f7;padding:8px;border:1px solid #ddd;max-height:24em;overflow:auto}
mark{background:#ffe27a}.meta{color:#555;font-size:90%}.short td:last-child{text-align:left}
"""


def _html(summary: dict[str, Any], rows: list[dict], benchmarks: Sequence[Benchmark]) -> str:
    header = ["benchmark", "items", "too short", "items hit", "docs hit", "item rate", "doc rate"]
    body = []
    for name, b in summary["benchmarks"].items():
        cells = [
            name,
            b["items"],
            "-" if b["items_too_short"] is None else b["items_too_short"],
            b["items_hit"],
            b["docs_hit"],
            f"{100 * b['rate']:.2f}%",
            f"{100 * b['doc_rate']:.3f}%",
        ]
        body.append("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in cells) + "</tr>")
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Contamination report</title>",
        f"<style>{_STYLE}</style></head><body><h1>Contamination report</h1>",
        f"<p>{summary['docs_scanned']:,} documents scanned, {summary['docs_contaminated']:,} contaminated "
        f"({100 * summary['contaminated_rate']:.3f}%), {summary['matches']:,} (document, item) matches.</p>",
    ]
    if "settings" in summary:
        settings = ", ".join(f"{k}={v}" for k, v in summary["settings"].items())
        parts.append(f"<p class='meta'>Rule: {escape(settings)}</p>")
    parts.append("<table><thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr></thead><tbody>")
    parts += body
    parts.append("</tbody></table>")
    parts += _too_short_html(summary)
    words = WordTokenizer()
    for name, examples in _examples(rows, benchmarks).items():
        parts.append(f"<h2>{escape(name)}: examples</h2>")
        for row, item_text in examples:
            meta = (
                f"document {row['doc_id']} · item {row['item_id']} · "
                f"LCS {row['lcs']} of {row['item_tokens']} item tokens"
                f" in a {row['window_tokens']}-token window · chars {row['start_char']}-{row['end_char']}"
            )
            item_html = _highlight(item_text, words.tokens(row["text"]))
            text_html = _highlight(row["text"], words.tokens(item_text))
            parts.append(
                f"<p class='meta'>{escape(meta)}</p><div class='pair'><div><b>test item</b><pre>{item_html}</pre></div>"
                f"<div><b>matched text</b><pre>{text_html}</pre></div></div>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)


def _too_short_html(summary: dict[str, Any]) -> list[str]:
    """The items that can never match, up to SHORT_ROWS_HTML per benchmark."""
    items = summary.get("too_short")
    if not items:
        return []
    min_tokens = summary["settings"]["min_tokens"]
    parts = [
        f"<h2 id='too-short'>Items that can never match: {len(items):,} under {min_tokens} tokens</h2>",
        f"<p class='meta'>The rule needs an LCS of at least {min_tokens} tokens, and an item's LCS with any "
        "text is at most its own length: no corpus can contaminate these items, and no audit finds their copies.</p>",
        "<table class='short'><thead><tr><th>benchmark</th><th>item id</th><th>tokens</th><th>text</th></tr>"
        "</thead><tbody>",
    ]
    shown: dict[str, int] = defaultdict(int)
    for item in items:
        shown[item["benchmark"]] += 1
        if shown[item["benchmark"]] <= SHORT_ROWS_HTML:
            cells = (item["benchmark"], item["item_id"], item["tokens"], item["text"])
            parts.append("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in cells) + "</tr>")
    parts.append("</tbody></table>")
    for name, count in shown.items():
        if count > SHORT_ROWS_HTML:
            more = count - SHORT_ROWS_HTML
            parts.append(f"<p class='meta'>{escape(name)}: {more:,} more in contamination.json (too_short).</p>")
    return parts
