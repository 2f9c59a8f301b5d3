"""The vllm backend: request and engine construction without vllm; the engine run needs vllm + a GPU."""

from __future__ import annotations

import importlib.util

import pytest
from datatrove.data import Document

from classifiers import prompts
from classifiers.backends.base import Request
from classifiers.backends.vllm_replicas import (
    engine_kwargs,
    sampling_kwargs,
    split_by_document,
)
from classifiers.taxonomy import load_rubric, load_taxonomy
from classifiers.teacher import annotate
from pipeline.config import TeacherConfig

TAXONOMY, RUBRIC = load_taxonomy(), load_rubric()
HAS_VLLM = importlib.util.find_spec("vllm") is not None


def test_sampling_kwargs_are_prefill_only_and_constrained():
    kw = sampling_kwargs(TAXONOMY.letters, "logprobs", top_logprobs=20)
    assert kw == {
        "max_tokens": 1,
        "temperature": 0.0,
        "logprobs": 20,
        "structured_outputs": {"choice": list(TAXONOMY.letters)},
    }
    assert not any(key.startswith("guided") for key in kw)
    generate = sampling_kwargs(("0", "1"), "generate", generate_max_tokens=128)
    assert generate == {"max_tokens": 128, "temperature": 0.0}


def test_engine_kwargs_carry_parallelism_and_prefix_caching():
    kw = engine_kwargs("Qwen/Qwen2.5-7B-Instruct", tensor_parallel_size=4, max_model_len=4096)
    assert kw["model"] == "Qwen/Qwen2.5-7B-Instruct" and kw["tensor_parallel_size"] == 4
    assert kw["enable_prefix_caching"] is True and kw["max_model_len"] == 4096


def test_replicas_never_split_a_document():
    system = prompts.system_prompt(TAXONOMY, RUBRIC)
    qs = prompts.questions(TAXONOMY, RUBRIC, "logprobs")
    requests = [Request(doc, q, prompts.messages(system, str(doc), q)) for doc in range(7) for q in qs]
    for replicas in (1, 2, 3, 8):
        blocks = split_by_document(requests, replicas)
        assert len(blocks) <= replicas and sum(blocks, []) == list(range(len(requests)))
        owners = {}
        for b, block in enumerate(blocks):
            for i in block:
                assert owners.setdefault(requests[i].doc_key, b) == b
    assert split_by_document([], 2) == []


@pytest.mark.skipif(not HAS_VLLM, reason="vllm is not installed (optional extra `gpu`); the engine run needs it and a GPU")
def test_engine_run_labels_a_document(tmp_path):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("vllm is installed but no GPU is visible")
    teacher = TeacherConfig(backend="vllm", model="Qwen/Qwen2.5-0.5B-Instruct")
    docs = [Document(text="The mitochondria is the powerhouse of the cell.", id="d0", metadata={"uid": 0})]
    result = annotate(docs, teacher, TAXONOMY, RUBRIC, tmp_path, max_model_len=2048)
    assert result.errors == {} and result.labels[0]["domain"] in TAXONOMY.ids
