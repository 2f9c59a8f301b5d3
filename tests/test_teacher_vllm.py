"""The vllm backend: request/engine construction, the replica's vLLM calls against a fake `vllm`
module (tests/fake_vllm, the shapes of vLLM's current API), and the Ray replicas for real on a
local Ray that declares two GPUs. The real engine run needs vllm and a GPU (skipped here)."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import pytest
from datatrove.data import Document

from classifiers import prompts
from classifiers.backends.base import Answer, LabelNotSingleToken, Request, TeacherError
from classifiers.backends.vllm_replicas import (
    VllmBackend,
    document_blocks,
    engine_kwargs,
    outcome_from_raw,
    replica_count,
    sampling_kwargs,
)
from classifiers.taxonomy import load_rubric, load_taxonomy
from classifiers.teacher import annotate
from pipeline.config import TeacherConfig, load_config
from pipeline.errors import ConfigError, PhaseFailed
from tests.conftest import init_session_ray
from tests.teacher_fakes import judge_label

TAXONOMY, RUBRIC = load_taxonomy(), load_rubric()
QUESTIONS = 1 + len(RUBRIC.ids)
FAKE_VLLM = Path(__file__).parent / "fake_vllm"
HAS_VLLM = importlib.util.find_spec("vllm") is not None


def requests_for(*texts: str) -> list[Request]:
    system = prompts.system_prompt(TAXONOMY, RUBRIC)
    qs = prompts.questions(TAXONOMY, RUBRIC, "logprobs")
    return [Request(d, q, prompts.messages(system, text, q)) for d, text in enumerate(texts) for q in qs]


# ---------------------------------------------------------------- pure construction


def test_sampling_kwargs_are_prefill_only_and_unconstrained_by_default():
    kw = sampling_kwargs(TAXONOMY.letters, "logprobs", top_logprobs=20)
    assert kw == {"max_tokens": 1, "temperature": 0.0, "logprobs": 20}
    constrained = sampling_kwargs(TAXONOMY.letters, "logprobs", constrain=True)
    assert constrained["structured_outputs"] == {"choice": list(TAXONOMY.letters)}
    assert not any(key.startswith("guided") for key in constrained)
    assert sampling_kwargs(("0", "1"), "generate", generate_max_tokens=128) == {"max_tokens": 128, "temperature": 0.0}


def test_engine_options_reach_the_engine():
    kw = engine_kwargs(
        "Qwen/Qwen2.5-7B-Instruct",
        tensor_parallel_size=4,
        max_model_len=4096,
        revision="abc",
        quantization="fp8",
        max_num_batched_tokens=16384,
        trust_remote_code=True,
        max_logprobs=40,
    )
    assert kw["tensor_parallel_size"] == 4 and kw["enable_prefix_caching"] is True and kw["max_logprobs"] == 40
    assert kw["revision"] == "abc" and kw["quantization"] == "fp8" and kw["max_num_batched_tokens"] == 16384
    assert "quantization" not in engine_kwargs("m")  # unset options keep vLLM's defaults


def test_top_logprobs_above_the_engine_limit_is_refused_at_load(tmp_path):
    with pytest.raises(ConfigError, match=r"teacher.top_logprobs \(30\) exceeds teacher.max_logprobs \(20\)"):
        load_config(None, ["teacher.top_logprobs=30", "input.paths=[x.jsonl]"])
    assert load_config(None, ["teacher.top_logprobs=30", "teacher.max_logprobs=30", "input.paths=[x]"]).teacher


def test_replicas_auto_uses_every_gpu_and_too_many_is_refused():
    assert replica_count("auto", 2, 8) == 4 and replica_count(3, 1, 8) == 3
    with pytest.raises(ConfigError, match=r"replicas=auto x teacher.tensor_parallel_size=2 needs 2 GPUs; .* has 1"):
        replica_count("auto", 2, 1)
    with pytest.raises(ConfigError, match="needs 5 GPUs"):
        replica_count(5, 1, 4)


def test_blocks_never_split_a_document():
    requests = requests_for(*[f"doc {i}" for i in range(7)])
    for block_docs in (1, 2, 3, 8):
        blocks = document_blocks(requests, block_docs)
        assert [i for b in blocks for i in b] == list(range(len(requests)))
        assert all(len({requests[i].doc_key for i in b}) <= block_docs for b in blocks)
        owners: dict[int, int] = {}
        for n, block in enumerate(blocks):
            for i in block:
                assert owners.setdefault(requests[i].doc_key, n) == n
    assert document_blocks([], 2) == []


# ---------------------------------------------------------------- the replica against the fake vllm


@pytest.fixture()
def fake_vllm(monkeypatch):
    monkeypatch.syspath_prepend(str(FAKE_VLLM))
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        monkeypatch.delitem(sys.modules, name)
    import vllm

    assert "fake_vllm" in vllm.__file__
    yield vllm
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        sys.modules.pop(name)


def replica(**engine):
    from classifiers.backends.vllm_replicas import Replica

    return Replica(engine_kwargs("judge", **engine), {})


def test_replica_marks_too_long_prompts_and_answers_the_rest(fake_vllm):
    rep = replica(max_model_len=6000)
    requests = requests_for("short text", "x" * 5000, "another short text")
    sampling = [sampling_kwargs(r.question.labels, "logprobs") for r in requests]
    conversations = [r.messages for r in requests]
    with pytest.raises(ValueError, match="longer than the maximum model length"):  # vLLM: one bad prompt sinks all
        rep.llm.generate(
            [{"prompt_token_ids": rep._token_ids(c)} for c in conversations],
            [fake_vllm.SamplingParams(**s) for s in sampling],
        )
    raw = rep.run(conversations, sampling)
    outcomes = [outcome_from_raw(a, r.question.labels, "logprobs") for a, r in zip(raw, requests)]
    assert all(isinstance(o, TeacherError) and o.kind == "too_long" for o in outcomes[QUESTIONS : 2 * QUESTIONS])
    answered = [(r, o) for r, o in zip(requests, outcomes) if r.doc_key != 1]
    for request, outcome in answered:
        assert isinstance(outcome, Answer) and outcome.mass == pytest.approx(0.9)
        text = prompts.plain_prompt(request.messages)
        assert max(outcome.probs, key=outcome.probs.get) == judge_label(text)
        assert outcome.prompt_tokens > 1000
    cached = [o.cached_tokens for o in outcomes if isinstance(o, Answer)]
    assert cached[0] == 0 and all(c > 0 for c in cached[1:])  # the shared system prompt is a cache hit


def test_replica_constrained_answers_are_post_mask(fake_vllm):
    rep = replica()
    requests = requests_for("some text")
    raw = rep.run(
        [r.messages for r in requests],
        [sampling_kwargs(r.question.labels, "logprobs", constrain=True) for r in requests],
    )
    for answer, request in zip(raw, requests):
        outcome = outcome_from_raw(answer, request.question.labels, "logprobs")
        assert outcome.mass == pytest.approx(1.0)  # the mask hides the label mass: why constrain is off by default


def test_replica_checks_labels_and_passes_template_options(fake_vllm):
    rep = replica()
    assert rep.ready([TAXONOMY.letters, ("0", "1")]) > 0
    with pytest.raises(LabelNotSingleToken, match="'AB'"):
        rep.ready([("A", "AB")])
    from classifiers.backends.vllm_replicas import Replica

    thinking_off = Replica(engine_kwargs("judge"), {"enable_thinking": False})
    ids = thinking_off._token_ids([{"role": "user", "content": "x"}])
    assert thinking_off.tokenizer.decode(ids).endswith("<no_think><assistant>")


def test_backend_joins_the_engines_ray(monkeypatch, fake_vllm):
    import pipeline.engine

    seen = []
    monkeypatch.setattr(pipeline.engine, "ensure_ray", lambda engine: seen.append(engine.address) or _stop())
    backend = VllmBackend("judge", ray_address="10.0.0.1:6379")
    with pytest.raises(_Stop):
        list(backend.ask(requests_for("x"), "logprobs"))
    assert seen == ["10.0.0.1:6379"]


class _Stop(Exception):
    pass


def _stop():
    raise _Stop


# ---------------------------------------------------------------- Ray replicas, for real (two declared GPUs)


@pytest.fixture(scope="module")
def ray_two_gpus(tmp_path_factory):
    import ray

    # One Ray per process: the session's (CPU only) makes way for one declaring two GPUs, and
    # comes back after this module for the tests that follow.
    was_running = ray.is_initialized()
    ray.shutdown()
    ray.init(address="local", num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
    yield tmp_path_factory.mktemp("vllm_ray")
    ray.shutdown()
    if was_running:
        init_session_ray()


def vllm_teacher(**kw) -> TeacherConfig:
    env = ["PYTHONPATH", "FAKE_VLLM_DIE_ONCE"]  # the fake vllm reaches the replicas as a user's HF_TOKEN would
    return TeacherConfig(
        backend="vllm",
        model=kw.pop("model", "judge"),
        forward_env=env,
        block_docs=2,
        load_timeout_s=120,
        block_timeout_s=120,
        **kw,
    )


def sample(*texts: str) -> list[Document]:
    return [Document(text=t, id=f"d{i}", metadata={"uid": i}) for i, t in enumerate(texts)]


def test_ray_replicas_label_the_sample_and_release_the_gpus(ray_two_gpus, monkeypatch):
    import ray

    monkeypatch.setenv("PYTHONPATH", str(FAKE_VLLM))
    docs = sample(*[f"Document {i} about {t}." for i, t in enumerate(["stars", "markets", "code"] * 4)])
    result = annotate(docs, vllm_teacher(permutations=1), TAXONOMY, RUBRIC, ray_two_gpus / "a")
    assert result.errors == {} and result.report()["complete"] == len(docs)
    for doc in docs:
        domain_prompt = prompts.plain_prompt(
            prompts.messages(
                prompts.system_prompt(TAXONOMY, RUBRIC), doc.text, prompts.questions(TAXONOMY, RUBRIC, "logprobs")[0]
            )
        )
        assert result.labels[doc.metadata["uid"]]["domain"] == TAXONOMY.by_letter()[judge_label(domain_prompt)]
    throughput = result.report()["throughput"]
    assert throughput["gpus"] == 2 and throughput["prefix_cache_hit_share"] > 0.3
    deadline = time.monotonic() + 30
    while ray.available_resources().get("GPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ray.available_resources().get("GPU", 0) == 2  # the engines were shut down


def test_a_dead_replica_blocks_go_to_the_live_one(ray_two_gpus, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(FAKE_VLLM))
    monkeypatch.setenv("FAKE_VLLM_DIE_ONCE", str(ray_two_gpus / "died"))
    docs = sample(*[f"Text {i}" + (" KILLME" if i == 3 else "") for i in range(10)])
    result = annotate(docs, vllm_teacher(), TAXONOMY, RUBRIC, ray_two_gpus / "b")
    assert (ray_two_gpus / "died").exists()  # a replica did die mid-run
    assert result.errors == {} and result.report()["complete"] == len(docs)


def test_a_hung_replica_stops_the_phase_instead_of_waiting_forever(ray_two_gpus, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(FAKE_VLLM))
    teacher = vllm_teacher().model_copy(update={"block_timeout_s": 5.0})
    with pytest.raises(PhaseFailed, match="no vLLM replica finished a block .* in teacher.block_timeout_s=5s"):
        annotate(sample("HANGME text", "other"), teacher, TAXONOMY, RUBRIC, ray_two_gpus / "e")


def test_a_model_that_cannot_load_fails_fast_with_its_error(ray_two_gpus, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(FAKE_VLLM))
    logs = ray_two_gpus / "logs"
    with pytest.raises(PhaseFailed, match="failed to load broken-model: .*CUDA out of memory") as failed:
        annotate(
            sample("x"), vllm_teacher(model="broken-model"), TAXONOMY, RUBRIC, ray_two_gpus / "c", log_dir=str(logs)
        )
    # the replica's own output, which Ray would keep in a worker log on its node, is in the message
    assert "last lines of" in str(failed.value) and "not enough free memory" in str(failed.value)
    failed_log = str(failed.value).split("last lines of ", 1)[1].split(":\n", 1)[0]
    assert "fake vllm: loading broken-model" in Path(failed_log).read_text() and Path(failed_log).parent == logs
    with pytest.raises(ConfigError, match="teacher.replicas=3"):
        annotate(sample("x"), vllm_teacher(replicas=3), TAXONOMY, RUBRIC, ray_two_gpus / "d")


@pytest.mark.skipif(not HAS_VLLM, reason="vllm is not installed (optional extra `gpu`); needs it and a GPU")
def test_engine_run_labels_a_document(tmp_path):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("vllm is installed but no GPU is visible")
    teacher = TeacherConfig(backend="vllm", model="Qwen/Qwen2.5-0.5B-Instruct", max_model_len=2048)
    docs = [Document(text="The mitochondria is the powerhouse of the cell.", id="d0", metadata={"uid": 0})]
    result = annotate(docs, teacher, TAXONOMY, RUBRIC, tmp_path)
    assert result.errors == {} and result.labels[0]["domain"] in TAXONOMY.ids
