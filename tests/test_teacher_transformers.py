"""The transformers backend, for real, on a tiny random causal LM and tokenizer built here."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from datatrove.data import Document

from classifiers.taxonomy import load_rubric, load_taxonomy
from classifiers.teacher import annotate
from pipeline.config import TeacherConfig

pytest.importorskip("torch", reason="the transformers backend needs torch (dev extra)")
pytest.importorskip("transformers", reason="the transformers backend needs transformers (dev extra)")

TAXONOMY, RUBRIC = load_taxonomy(), load_rubric()
WORDS = "the a of and to is in document domain score text cat stars market code answer".split()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from classifiers.tiny_lm import build_tiny_lm

    return build_tiny_lm(tmp_path_factory.mktemp("tiny_lm"), WORDS)


def sample(*texts: str) -> list[Document]:
    return [Document(text=t, id=f"d{i}", metadata={"uid": i}) for i, t in enumerate(texts)]


def test_logprobs_mode_gives_valid_labels(tiny_model, tmp_path):
    # a random model spreads its probability over the whole vocabulary: no label-mass floor here
    teacher = TeacherConfig(backend="transformers", model=str(tiny_model), min_label_mass=0.0)
    docs = sample("the cat is in the market", "code and stars", "a text of the document domain score")
    result = annotate(docs, teacher, TAXONOMY, RUBRIC, tmp_path, device="cpu", batch_size=2)
    assert result.errors == {} and result.asked == len(docs) * (1 + len(RUBRIC.ids))
    report = result.report()
    # the exact share of the next-token distribution on the labels, from a real forward pass
    assert report["label_mass"]["measured"] == result.asked and 0 < report["label_mass"]["min"] < 1
    assert report["throughput"]["prompt_tokens"] > 0 and report["throughput"]["prompt_tokens_per_s"] > 0
    # the default floor turns a random model's answers into counted failures, never labels
    strict = annotate(
        docs,
        TeacherConfig(backend="transformers", model=str(tiny_model)),
        TAXONOMY,
        RUBRIC,
        tmp_path / "strict",
        device="cpu",
        batch_size=2,
    )
    assert strict.report()["label_mass"]["below_threshold"] == strict.errors["unparseable"] > 0
    for labels in result.labels.values():
        assert labels["domain"] in TAXONOMY.ids
        assert math.isclose(sum(labels["domain_probs"].values()), 1.0, abs_tol=1e-3)
        assert labels["domain_prob"] == max(labels["domain_probs"].values())
        for dim in RUBRIC.ids:
            assert 0.0 <= labels[f"quality_{dim}"] <= 5.0
        assert 0.0 <= labels["quality"] <= 5.0
    # batch composition (padding) must not change an answer
    alone = annotate(docs[:1], teacher, TAXONOMY, RUBRIC, tmp_path / "other", device="cpu", batch_size=1)
    assert alone.labels[0]["quality"] == pytest.approx(result.labels[0]["quality"], abs=1e-3)


def test_generate_mode_labels_or_counts(tiny_model, tmp_path):
    teacher = TeacherConfig(backend="transformers", model=str(tiny_model), mode="generate")
    result = annotate(sample("the cat", "stars"), teacher, TAXONOMY, RUBRIC, tmp_path, generate_max_tokens=6)
    answered = sum(len([k for k in r if k.startswith("quality_") or k == "domain"]) for r in result.labels.values())
    # a random model rarely writes "Answer: X": whatever it writes is a valid label or a counted failure
    assert answered + result.errors["unparseable"] == 2 * (1 + len(RUBRIC.ids))
    for labels in result.labels.values():
        assert labels.get("domain", TAXONOMY.ids[0]) in TAXONOMY.ids


def test_prompt_longer_than_the_model_is_counted(tiny_model, tmp_path):
    teacher = TeacherConfig(backend="transformers", model=str(tiny_model), min_label_mass=0.0)
    long_doc = " ".join(["the cat"] * 3000)
    result = annotate(sample(long_doc, "short"), teacher, TAXONOMY, RUBRIC, tmp_path, max_chars=100_000)
    assert result.errors["too_long"] == 1 + len(RUBRIC.ids)
    assert "quality" in result.labels[1] and result.labels[0] == {"id": "d0"}
