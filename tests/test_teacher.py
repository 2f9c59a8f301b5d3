"""Teacher core: taxonomy, prompt layout, answer parsing, sampling, labels backend, labels file."""

from __future__ import annotations

import json
import math
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datatrove.data import Document

from classifiers import prompts
from classifiers.backends.base import distribution_from_logprobs, parse_generated
from classifiers.taxonomy import load_rubric, load_taxonomy
from classifiers.teacher import (
    Annotations,
    annotate,
    labels_from_outcomes,
    load_teacher_labels,
    save_annotations,
    select_sample,
)
from pipeline.config import TeacherConfig
from pipeline.errors import ConfigError

TAXONOMY, RUBRIC = load_taxonomy(), load_rubric()


def doc(i: int, text: str | None = None) -> Document:
    return Document(text=text or f"document number {i}", id=f"d{i}", metadata={"uid": i * 7919 - 10**6})


def test_taxonomy_matches_the_issue():
    assert len(TAXONOMY.domains) == 18 and TAXONOMY.letters == tuple("ABCDEFGHIJKLMNOPQR")
    for required in ("ecommerce", "social_media", "entertainment", "technology", "science", "academic_research"):
        assert required in TAXONOMY.ids
    assert len(RUBRIC.ids) >= 3 and math.isclose(RUBRIC.aggregate({d: 4.0 for d in RUBRIC.ids}), 4.0)


def test_bad_taxonomy_names_the_field(tmp_path):
    path = tmp_path / "domains.yaml"
    path.write_text("domains:\n  - {id: a, letter: AB, description: x}\n")
    with pytest.raises(ConfigError, match=r"domains\[0\].letter"):
        load_taxonomy(path)


def test_prompt_order_shares_prefixes():
    system = prompts.system_prompt(TAXONOMY, RUBRIC)
    qs = prompts.questions(TAXONOMY, RUBRIC, "logprobs")
    assert [q.id for q in qs] == ["domain", *RUBRIC.ids]
    convs = [prompts.messages(system, "The cat sat.", q) for q in qs]
    rendered = [prompts.plain_prompt(c) for c in convs]
    head = system + "\n\n<document>\nThe cat sat.\n</document>\n\n"
    # every question about one document shares the system prompt and the document as a prefix
    assert all(r.startswith(head) for r in rendered)
    other = prompts.plain_prompt(prompts.messages(system, "Another text.", qs[0]))
    assert other.startswith(system) and not other.startswith(head)
    hashes = {prompts.prompt_hash(system, q, "logprobs", 4000) for q in qs}
    assert len(hashes) == len(qs)
    assert prompts.prompt_hash(system, qs[0], "logprobs", 4000) != prompts.prompt_hash(system, qs[0], "logprobs", 100)


def test_truncate_keeps_words_whole():
    assert prompts.truncate("alpha beta gamma", 100) == "alpha beta gamma"
    assert prompts.truncate("alpha beta gamma", 12) == "alpha beta"


def test_distribution_from_logprobs_merges_spellings_and_renormalises():
    labels = ("0", "1", "2", "3", "4", "5")
    dist = distribution_from_logprobs({"3": math.log(0.3), " 3": math.log(0.1), "4": math.log(0.4), "x": 0.0}, labels)
    assert dist == pytest.approx({"3": 0.5, "4": 0.5})
    assert distribution_from_logprobs({"x": -0.1, "A": -1.0}, labels) is None
    record = labels_from_outcomes(
        {"domain": {"E": 0.7, "F": 0.3}, **{d: {"4": 1.0} for d in RUBRIC.ids}}, TAXONOMY, RUBRIC
    )
    assert record["domain"] == "science" and record["domain_prob"] == 0.7
    assert record["domain_probs"] == {"academic_research": 0.3, "science": 0.7}
    assert record["quality"] == 4.0 and all(record[f"quality_{d}"] == 4.0 for d in RUBRIC.ids)


def test_partial_answers_leave_labels_unset():
    record = labels_from_outcomes({RUBRIC.ids[0]: {"2": 0.5, "3": 0.5}}, TAXONOMY, RUBRIC)
    assert record == {f"quality_{RUBRIC.ids[0]}": 2.5}


def test_parse_generated_takes_the_last_answer():
    assert parse_generated("It is about physics. Answer: E", TAXONOMY.letters) == {"E": 1.0}
    assert parse_generated("Answer: 2 ... on reflection\n**Answer: 4**", ("0", "1", "2", "3", "4", "5")) == {"4": 1.0}
    assert parse_generated("I think it is science", TAXONOMY.letters) is None
    assert parse_generated("Answer: Z", TAXONOMY.letters) is None


def test_select_sample_is_independent_of_order_and_sharding():
    docs = [doc(i) for i in range(500)]
    first = [d.id for d in select_sample(docs, 40, seed=3)]
    shuffled = docs[:]
    random.Random(1).shuffle(shuffled)
    assert [d.id for d in select_sample(shuffled, 40, seed=3)] == first
    # per-shard bottom-k, then bottom-k of the union: the same sample
    shards = [select_sample(shuffled[i::4], 40, seed=3) for i in range(4)]
    assert [d.id for d in select_sample([d for s in shards for d in s], 40, seed=3)] == first
    assert [d.id for d in select_sample(docs, 40, seed=4)] != first
    assert len(select_sample(docs[:10], 40, seed=3)) == 10


def test_labels_backend_counts_missing_and_invalid(tmp_path):
    rows = [
        {"id": "d0", "domain": "science", **{d: 4 for d in RUBRIC.ids}},
        {"id": "d1", "domain": "not_a_domain", **{d: 2 for d in RUBRIC.ids}},
        {"id": "d2", "domain": "news", **{d: 9 for d in RUBRIC.ids}},
    ]
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    parquet = tmp_path / "a.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    sample = [doc(i) for i in range(4)]
    for path in (jsonl, parquet):
        result = annotate(sample, TeacherConfig(backend="labels", labels_path=str(path)), TAXONOMY, RUBRIC, tmp_path)
        by_id = {r["id"]: r for r in result.labels.values()}
        assert by_id["d0"]["domain"] == "science" and by_id["d0"]["quality"] == 4.0
        assert "domain" not in by_id["d1"] and by_id["d1"]["quality"] == 2.0
        assert by_id["d2"]["domain"] == "news" and "quality" not in by_id["d2"]
        assert result.errors["missing"] == 1 and result.errors["domain:invalid"] == 1
        assert result.errors[f"{RUBRIC.ids[0]}:invalid"] == 1
    with pytest.raises(ConfigError, match="teacher.labels_path"):
        annotate(sample, TeacherConfig(backend="labels"), TAXONOMY, RUBRIC, tmp_path)


def test_annotations_round_trip(tmp_path):
    annotations = Annotations(labels={5: {"id": "a", "domain": "code"}, -3: {"id": "b"}})
    annotations.errors["timeout"] += 2
    path = save_annotations(annotations, tmp_path)
    assert load_teacher_labels(path) == {5: {"domain": "code"}, -3: {}}
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["errors"] == {"timeout": 2} and report["documents"] == 2


def test_letter_orders_and_letter_bias():
    orders = [prompts.letter_map(TAXONOMY, k) for k in range(4)]
    assert orders[0] == TAXONOMY.by_letter() and all(sorted(o.values()) == sorted(TAXONOMY.ids) for o in orders)
    assert len({tuple(o.values()) for o in orders}) == 4
    assert prompts.letter_map(TAXONOMY, 2) == orders[2]  # fixed: the same order in every run
    from classifiers.annotations import letter_bias

    # a model that always answers "A" whatever the document: A is picked far more than its domains warrant
    biased = letter_bias([({"A": 1.0}, orders[i % 4]) for i in range(40)], orders)
    assert biased["by_letter"]["A"] > 3 and biased["by_letter"].get("B", 0) == 0
    # a model that answers by content (always "science", whatever letter it has): no bias
    fair = [({next(k for k, v in orders[i % 4].items() if v == "science"): 1.0}, orders[i % 4]) for i in range(40)]
    assert all(r == 1.0 for r in letter_bias(fair, orders)["by_letter"].values() if r)
    assert letter_bias([], orders[:1]) == {"orders": 1, "by_letter": None}
