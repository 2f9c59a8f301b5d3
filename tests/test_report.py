"""Terminal reports fit 80 columns without cutting a header or a number, and show more when wider."""

from __future__ import annotations

import io

from rich.console import Console

from pipeline.report import contamination_table, funnel_table, language_table

FUNNEL = {
    "stages": [
        {"name": "read", "in": 1_234_567, "kept": 1_230_000, "rejected": 0, "quarantined": 4_567, "reasons": {}},
        {
            "name": "gopher_repetition",
            "in": 1_230_000,
            "kept": 987_654,
            "rejected": 242_346,
            "quarantined": 0,
            "reasons": {"dup_line_frac": 120_000, "top_4_gram": 100_000, "duplicated_5_n_grams": 22_346},
        },
    ]
}


def _render(renderables: list, width: int) -> str:
    console = Console(width=width, file=io.StringIO(), color_system=None)
    for renderable in renderables:
        console.print(renderable)
    return console.file.getvalue()


def test_funnel_at_80_columns_keeps_every_header_and_number():
    text = _render(funnel_table(FUNNEL, 80), 80)
    assert "…" not in text
    assert all(len(line) <= 80 for line in text.splitlines())
    for expected in ("stage", "in", "kept", "rejected", "quarantined", "1,234,567", "242,346", "4,567"):
        assert expected in text
    assert "gopher_repetition: dup_line_frac 120,000, top_4_gram 100,000" in text


def test_funnel_on_a_wide_terminal_has_reasons_in_the_table():
    text = _render(funnel_table(FUNNEL, 160), 160)
    assert "top reasons" in text and "…" not in text


def test_contamination_table_at_80_columns():
    summary = {
        "docs_contaminated": 12,
        "docs_scanned": 123_456,
        "benchmarks": {
            "a_benchmark_with_a_rather_long_name_indeed": {
                "items": 35_089,
                "items_hit": 1_234,
                "docs_hit": 99,
                "rate": 0.0352,
            }
        },
    }
    text = _render([contamination_table(summary)], 80)
    assert "…" not in text and "35,089" in text and "1,234" in text
    assert all(len(line) <= 80 for line in text.splitlines())


def test_funnel_breaks_every_stage_down_by_language(reference_run):
    import json

    funnel = json.loads((reference_run / "reports" / "funnel.json").read_text())
    stages = [stage for stage in funnel["stages"] if "languages" in stage]
    assert stages[0]["name"] == "langid" and stages[-1]["name"] == "rebalance"
    for stage in stages:
        languages = stage["languages"].values()
        assert sum(v["in"] for v in languages) == stage["in"], stage["name"]
        assert sum(v["rejected"] for v in languages) == stage["rejected"], stage["name"]
    assert "unknown" not in stages[0]["languages"], "every rejected row carries its language"
    assert len(stages[0]["languages"]) > 1 and stages[0]["languages"]["en"]["kept"] > 0
    text = _render([language_table(funnel)], 80)
    assert "langid" in text and "…" not in text
