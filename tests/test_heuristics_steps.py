"""P1's heuristic steps: one reject writer per preset, per-language settings and overrides, config errors,
and the fused step's internals that the document comparisons cannot reach (vocabulary reset, hash collisions)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from datatrove.data import Document

from pipeline.config import FILTER_PRESETS, LangIdConfig, load_config
from pipeline.errors import ConfigError
from pipeline.phases import reject_stages
from stages import heuristic_rules, word_tokens
from stages.fused_heuristics import HeuristicFilters
from stages.heuristics import build_heuristic_steps
from stages.langid import LanguageFilter, LanguageTagger
from stages.word_tokens import FastWordTokenizer

GOOD = "\n".join(
    [
        "The river runs down to the sea, and the old town sits on its northern bank.",
        "A stone bridge crosses the water near the market, where farmers sell bread and cheese.",
        "In the summer the children swim below the mill while their parents talk in the shade.",
        "Visitors often walk along the towpath to see the herons that nest in the tall reeds.",
        "The museum holds maps of the valley that were drawn by hand more than two centuries ago.",
        "When the autumn rains arrive, the river rises quickly and covers the lower meadows.",
    ]
)


def test_steps_and_reject_writers(tmp_path):
    steps = build_heuristic_steps(list(FILTER_PRESETS), LangIdConfig(languages=["en", "fr"]), tmp_path)
    assert [type(s) for s in steps] == [LanguageTagger, LanguageFilter, HeuristicFilters]
    assert reject_stages(steps) == ["langid", *FILTER_PRESETS]
    docs = [
        Document(text=GOOD, id="good", metadata={"language": "en", "language_score": 0.99}),
        Document(text="too short.", id="short", metadata={"language": "en", "language_score": 0.99}),
        Document(text=GOOD + "\nPlease use the {braces} here.", id="curly", metadata={"language": "en"}),
    ]
    kept = list(steps[-1].run(iter(docs)))
    assert [d.id for d in kept] == ["good"]
    quality = pq.read_table(tmp_path / "gopher_quality").to_pylist()
    c4 = pq.read_table(tmp_path / "c4_quality").to_pylist()
    assert [(r["id"], r["reason"]) for r in quality] == [("short", "gopher_short_doc")]
    assert [(r["id"], r["reason"]) for r in c4] == [("curly", "curly_bracket")]
    assert json.loads(c4[0]["details"]) == {"language": "en"}


def test_no_filters_and_no_langid():
    assert build_heuristic_steps([], LangIdConfig(enabled=False), "unused") == []
    (step,) = build_heuristic_steps(["gopher_quality"], LangIdConfig(enabled=False, languages=["fr"]), "unused")
    # langid off: every document gets English defaults, whatever its metadata says
    assert step.rules.keys() == {"en"}
    doc = Document(text=GOOD, id="x", metadata={"language": "fr"})
    assert step.decide(doc) is None


def test_each_language_its_own_rules():
    (_, _, step) = build_heuristic_steps(["gopher_quality"], LangIdConfig(languages=["en", "fr"]), "unused")
    french = ("Le chat de la voisine est sur le toit et il regarde les oiseaux dans la rue du village. " * 8).strip()
    as_french = Document(text=french, id="fr", metadata={"language": "fr"})
    as_english = Document(text=french, id="en", metadata={"language": "en"})
    assert step.decide(as_french) is None
    assert step.decide(as_english) == ("gopher_quality", "gopher_enough_stop_words")


def test_overrides_apply_per_language():
    config = LangIdConfig(languages=["en", "fr"], overrides={"fr": {"gopher_quality": {"min_doc_words": 500}}})
    (_, _, step) = build_heuristic_steps(["gopher_quality"], config, "unused")
    french = ("Le chat de la voisine est sur le toit et il regarde les oiseaux dans la rue du village. " * 8).strip()
    assert step.decide(Document(text=french, id="fr", metadata={"language": "fr"})) == (
        "gopher_quality",
        "gopher_short_doc",
    )
    assert step.decide(Document(text=GOOD, id="en", metadata={"language": "en"})) is None


def test_unknown_language_code_names_the_key(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(None, ["langid.languages=[en, xx]"], inputs=["x.jsonl"])
    assert "langid.languages" in str(err.value) and "'xx'" in str(err.value)


def test_bad_overrides_name_the_key():
    with pytest.raises(ConfigError) as err:
        load_config(None, ["langid.overrides={de: {gopher_quality: {}}}"], inputs=["x.jsonl"])
    assert "langid.overrides" in str(err.value) and "'de'" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_config(None, ["langid.languages=[fr]", "langid.overrides={fr: {gopher: {}}}"], inputs=["x.jsonl"])
    assert "langid.overrides" in str(err.value) and "fr.gopher" in str(err.value)
    config = LangIdConfig(languages=["fr"], overrides={"fr": {"gopher_quality": {"min_stopwords": 1}}})
    unknown = r"langid\.overrides\.fr\.gopher_quality: unknown parameter\(s\) min_stopwords"
    with pytest.raises(ConfigError, match=unknown):
        build_heuristic_steps(["gopher_quality"], config, "unused")


def test_implementation_key():
    assert load_config(None, inputs=["x.jsonl"]).filters_implementation == "fused"
    config = load_config(None, ["filters_implementation=datatrove"], inputs=["x.jsonl"])
    assert config.filters_implementation == "datatrove"


def test_vocabulary_reset_keeps_tokens(monkeypatch):
    texts = [f"Word{i} and word{i + 1}, then more-words {i * 7}! End." for i in range(60)]
    reference = [FastWordTokenizer("en").reference.word_tokenize(t) for t in texts]
    monkeypatch.setattr(word_tokens, "_MAX_LEXEMES", 50)
    tokenizer = FastWordTokenizer("en")
    pipelines = set()
    for text, expected in zip(texts, reference):
        assert tokenizer.tokenize(text).words == expected
        pipelines.add(id(tokenizer._nlp))
    assert len(pipelines) > 1, "the vocabulary was rebuilt"


def test_hash_collision_falls_back_to_datatrove():
    tok = FastWordTokenizer("en").tokenize("a b c d e f a b c d e g " * 3)
    concat = heuristic_rules._Concatenation(tok, [5])
    n, positions = 5, len(tok) - 4
    begin, end = concat.bounds[:positions], concat.bounds[n : n + positions]
    with pytest.raises(heuristic_rules._HashCollision):
        concat._greedy(np.zeros(positions, dtype=np.uint64), begin, end, n)
    from datatrove.pipeline.filters.gopher_repetition_filter import find_all_duplicate

    assert concat.repeated_chars(5) == find_all_duplicate(tok.words, 5)
