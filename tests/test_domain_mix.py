"""Domain-mix report: JSON, one self-contained well-formed HTML that escapes every payload, rich tables."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest
from mixture_helpers import make_docs, run_mixture
from rich.console import Console

from pipeline.config import MixtureConfig
from pipeline.domain_mix import build_domain_mix, domain_mix_tables, mix_tables, write_domain_mix

PAYLOAD = "<script>alert(1)</script>"
VOID_TAGS = {"meta", "br", "img", "input", "link", "hr", "col", "area", "base", "source", "wbr"}


class TagBalance(HTMLParser):
    """Fails on any end tag that does not close the innermost open element."""

    def __init__(self):
        super().__init__()
        self.open: list[str] = []
        self.scripts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self.scripts.append(dict(attrs).get("src") or "")
        if tag not in VOID_TAGS:
            self.open.append(tag)

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1] if self.open else None}>"
        self.open.pop()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    docs = make_docs(800, seed=2, weights={"science": 2, PAYLOAD: 1, "[red]code": 1})
    run_mixture(docs, MixtureConfig(multipliers={PAYLOAD: 0.5}, selection="quality"), run, tasks=2)
    funnel = {
        "stages": [
            {"name": "read", "in": 820, "kept": 810, "rejected": 0, "quarantined": 10, "reasons": {}},
            {"name": PAYLOAD, "in": 810, "kept": 800, "rejected": 10, "quarantined": 0, "reasons": {PAYLOAD: 10}},
        ],
        "conservation": {"input": 820, "kept": 800, "rejected": 10, "quarantined": 10, "holds": True},
    }
    (run / "reports").mkdir()
    (run / "reports" / "funnel.json").write_text(json.dumps(funnel))
    write_domain_mix(run)
    return run


def test_json_report_has_before_target_after_and_the_funnel(run_dir):
    mix = json.loads((run_dir / "reports" / "domain_mix.json").read_text())
    rows = {row["group"]: row for row in mix["groups"]}
    assert set(rows) == {"science", PAYLOAD, "[red]code"}
    assert rows[PAYLOAD]["rate"] == 0.5 and rows[PAYLOAD]["quality_cutoff"] is not None
    assert sum(row["share_after"] for row in rows.values()) == pytest.approx(1.0)
    assert sum(rows["science"]["quality_hist_after"]["counts"]) == rows["science"]["docs_after"]
    assert mix["funnel"]["stages"][1]["reasons"] == {PAYLOAD: 10}
    # the documents sampled away, with their quality (quality selection: all below the cutoff)
    away = rows[PAYLOAD]["quality_hist_sampled_away"]
    assert sum(away["counts"]) + away["missing"] == rows[PAYLOAD]["downsampled_away"] > 0
    assert mix["domains"][PAYLOAD]["tokens_after"] == rows[PAYLOAD]["tokens_after"]


def test_html_is_self_contained_well_formed_and_escapes_payloads(run_dir):
    page = (run_dir / "reports" / "domain_mix.html").read_text()
    parser = TagBalance()
    parser.feed(page)
    parser.close()
    assert parser.open == []
    # Only our charts' scripts, none loaded from elsewhere; the payload never becomes a tag.
    assert parser.scripts and not any(parser.scripts)
    assert page.count("<script") == page.count("</script>") == len(parser.scripts)
    assert "alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "cdn." not in page.split("<script", 1)[0]
    assert len(page) > 1_000_000  # plotly.js is inlined, so the page works offline


@pytest.mark.parametrize("width", [80, 250])
def test_terminal_tables_print_group_names_literally_and_fit_the_width(run_dir, width):
    console = Console(record=True, width=width)
    tables = domain_mix_tables(run_dir, width)
    for table in tables:
        console.print(table)
    text = console.export_text()
    assert "[red]" in text and "<script>" in text  # literal, not markup (folded on narrow terminals)
    assert width == 80 or ("[red]code" in text and PAYLOAD in text)
    assert max(len(line) for line in text.splitlines()) <= width
    assert "…" not in text  # nothing cut: narrow terminals get two tables, not truncated columns
    for row in build_domain_mix(run_dir)["groups"]:  # every number whole on one line, never folded
        assert all(f"{row[key]:,}" in text for key in ("docs_before", "docs_after", "tokens_after", "repeat_tokens"))
    headers = [column.header for table in tables for column in table.columns]
    assert {"share before", "target", "share after", "repeat tokens", "sampled away", "their quality"} <= set(headers)
    assert (len(tables) == 1) == (width == 250)  # one wide table, or shares then counts


def test_missing_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest.json is missing"):
        write_domain_mix(tmp_path)


@pytest.mark.parametrize("width", [40, 60, 80])
def test_lab_scale_numbers_are_never_folded_on_narrow_terminals(run_dir, width):
    mix = build_domain_mix(run_dir)
    for row in mix["groups"]:  # billions of tokens, as a lab's run has
        row["tokens_after"] = row["repeat_tokens"] = 123_456_789_012
    console = Console(record=True, width=width)
    for table in mix_tables(mix, width):
        console.print(table)
    text = console.export_text()
    assert "123,456,789,012" in text and "…" not in text
    assert max(len(line) for line in text.splitlines()) <= width
