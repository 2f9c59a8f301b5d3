"""The endpoint backend against loopback OpenAI-compatible servers with injected faults."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from datatrove.data import Document

from classifiers import prompts
from classifiers.backends.base import Answer, Request, TeacherError
from classifiers.backends.endpoint import EndpointBackend, parse_reply, request_body
from classifiers.taxonomy import load_rubric, load_taxonomy
from classifiers.teacher import annotate, build_backend
from pipeline.config import TeacherConfig
from pipeline.errors import ConfigError, PhaseFailed
from tests.teacher_fakes import FakeServer, document_of, judge_label

TAXONOMY, RUBRIC = load_taxonomy(), load_rubric()
QUESTIONS = 1 + len(RUBRIC.ids)
FAST = {"timeout_s": 0.2, "retries": 2, "backoff_s": 0.01, "concurrency": 4}
# for tests without a SLOW document: a loaded CI machine must not turn into timeouts
STEADY = FAST | {"timeout_s": 20.0}


@pytest.fixture()
def server():
    httpd = FakeServer()
    yield httpd
    httpd.stop()


def docs(*texts: str) -> list[Document]:
    return [Document(text=t, id=f"d{i}", metadata={"uid": 1000 + i}) for i, t in enumerate(texts)]


def config(url, **kw) -> TeacherConfig:
    return TeacherConfig(backend="endpoint", url=url, model="test-model", **kw)


def judged(server: FakeServer, uid_text: dict[int, str]) -> dict[int, dict[str, str]]:
    """What the judge answered for each document and question, from the bodies it received."""
    answers: dict[int, dict[str, str]] = {}
    by_doc = {text: uid for uid, text in uid_text.items()}
    for body in server.bodies:
        text = body["messages"][-1]["content"] if "messages" in body else body["prompt"]
        question = "domain" if "Which domain" in text else next(d for d in RUBRIC.ids if f"document's {d} " in text)
        answers.setdefault(by_doc[document_of(text)], {})[question] = judge_label(text)
        system = body["messages"][0]["content"] if "messages" in body else text
        answers[by_doc[document_of(text)]].setdefault("_system", system)
    return answers


def test_requests_are_prefill_only_and_unconstrained(server, tmp_path):
    result = annotate(docs("A plain document about stars."), config(server.url), TAXONOMY, RUBRIC, tmp_path, **STEADY)
    assert len(server.bodies) == QUESTIONS
    for body in server.bodies:
        assert body["_path"] == "/v1/chat/completions"
        assert body["max_tokens"] == 1 and body["logprobs"] is True and body["top_logprobs"] == 20
        assert "structured_outputs" not in body and not any(key.startswith("guided_") for key in body)
    labels = result.labels[1000]
    assert labels["domain_prob"] == pytest.approx(0.7 / 0.9, abs=1e-4)  # 0.7 and 0.2 on labels, renormalised
    report = result.report()
    assert report["label_mass"]["mean"] == pytest.approx(0.9) and report["errors"] == {}
    assert report["throughput"]["prompt_tokens"] > 0 and 0.4 < report["throughput"]["prefix_cache_hit_share"] < 0.6


@pytest.mark.parametrize("constrain", [False, True])
@pytest.mark.parametrize("api", ["chat", "completions"])
def test_judge_answers_reach_the_annotations(server, tmp_path, constrain, api):
    """The held-out judge check: no guided_* fields, <= 2 output tokens, 500s and cut bodies survived,
    and the judge's own answers (mapped through each document's letter order) in the labels."""
    texts = [f"Document {i} about {topic}." for i, topic in enumerate(["stars", "markets", "code", "law"] * 5)]
    texts[3] += " FLAKY"
    texts[7] += " CUT"
    sample = docs(*texts)
    teacher = config(server.url, constrain=constrain, api=api, permutations=4)
    result = annotate(sample, teacher, TAXONOMY, RUBRIC, tmp_path, **STEADY)
    for body in server.bodies:
        assert not any(key.startswith("guided_") for key in body) and body["max_tokens"] <= 2
        assert ("structured_outputs" in body) == constrain
    assert result.errors == Counter() and result.report()["complete"] == len(texts)
    assert result.report()["retried"] == {"server_error": QUESTIONS, "unparseable": QUESTIONS}
    assert set(result.report()["letter_bias"]["by_letter"]) == set(TAXONOMY.letters)
    uid_text = {1000 + i: t for i, t in enumerate(texts)}
    for uid, answers in judged(server, uid_text).items():
        labels = result.labels[uid]
        orders = [prompts.letter_map(TAXONOMY, k) for k in range(4)]
        letters = next(o for o in orders if prompts.system_prompt(TAXONOMY, RUBRIC, o) in answers["_system"])
        assert labels["domain"] == letters[answers["domain"]]
        for dim in RUBRIC.ids:  # 0.7 on the judge's digit, 0.2 on the next one, renormalised
            digit = int(answers[dim])
            assert labels[f"quality_{dim}"] == pytest.approx((0.7 * digit + 0.2 * ((digit + 1) % 6)) / 0.9, abs=1e-3)


def test_faults_are_counted_never_labelled(server, tmp_path):
    sample = docs(
        "SLOW doc",
        "GARBAGE doc",
        "NOLABEL doc",
        "BADREQ doc",
        "TOOLONG doc",
        "LOWMASS doc",
        "NOLOGPROBS doc",
        "fine doc",
    )
    result = annotate(sample, config(server.url), TAXONOMY, RUBRIC, tmp_path, **FAST)
    n = QUESTIONS
    assert result.errors["timeout"] == n and result.errors["too_long"] == n and result.errors["server_error"] == n
    assert result.errors["unparseable"] == 3 * n and result.errors["domain:timeout"] == 1  # GARBAGE, NOLABEL, LOWMASS
    report = result.report()
    assert report["label_mass"]["below_threshold"] == n
    assert "maximum context length" in report["first_errors"]["too_long"][0]
    per_doc = Counter()
    for text, count in server.attempts.items():
        per_doc[document_of(text).split()[0]] += count
    assert per_doc["SLOW"] == per_doc["GARBAGE"] == n * (1 + FAST["retries"])  # retried until the budget is spent
    assert per_doc["NOLABEL"] == per_doc["BADREQ"] == per_doc["TOOLONG"] == n  # never retried
    by_id = {r["id"]: r for r in result.labels.values()}
    for failed in ("d0", "d1", "d2", "d3", "d4", "d5"):
        assert by_id[failed] == {"id": failed}  # failures are never labelled
    assert "quality" in by_id["d6"] and "quality" in by_id["d7"]  # a text-only reply still answers


def test_a_dying_replica_hands_its_work_to_the_live_one(tmp_path):
    first, second = FakeServer(), FakeServer()
    first.die_after = 6
    try:
        sample = docs(*[f"Document number {i} on topic {i % 7}." for i in range(30)])
        result = annotate(sample, config([first.url, second.url]), TAXONOMY, RUBRIC, tmp_path, **STEADY)
    finally:
        second.stop()
    assert result.report()["complete"] == 30 and result.errors == Counter()
    assert 6 <= len(first.bodies) <= 6 + FAST["concurrency"] and len(second.bodies) >= 30 * QUESTIONS - 6


def test_too_many_failures_stop_the_phase_with_the_first_errors(server, tmp_path):
    sample = docs(*[f"GARBAGE {i}" for i in range(20)])
    with pytest.raises(PhaseFailed, match=r"max_error_rate; first errors: unparseable: malformed reply"):
        annotate(sample, config(server.url, max_error_rate=0.5), TAXONOMY, RUBRIC, tmp_path, **STEADY)


def test_no_server_fails_fast(tmp_path):
    dead = FakeServer()
    url = dead.url
    dead.stop()
    with pytest.raises(ConfigError, match="teacher.url: no server answers"):
        annotate(docs("x"), config(url), TAXONOMY, RUBRIC, tmp_path, **FAST)


def test_labels_checked_with_a_vllm_servers_tokenizer(tmp_path):
    httpd = FakeServer(vllm=True)
    try:
        annotate(docs("fine"), config(httpd.url), TAXONOMY, RUBRIC, tmp_path, **STEADY)  # one token each: fine
        backend = EndpointBackend(httpd.url, "m")
        with pytest.raises(ConfigError, match="no single token for the label 'AB'"):
            backend.probe(["A", "AB"])
        backend.close()
    finally:
        httpd.stop()


def test_cache_avoids_re_asking_and_keys_on_rendering(server, tmp_path):
    sample = docs("first text", "second text", "GARBAGE text")
    first = annotate(sample, config(server.url), TAXONOMY, RUBRIC, tmp_path / "cache", **STEADY)
    asked = len(server.bodies)
    second = annotate(sample, config(server.url), TAXONOMY, RUBRIC, tmp_path / "cache", **STEADY)
    assert len(server.bodies) - asked == QUESTIONS * (1 + FAST["retries"])  # only the failed document again
    assert second.cached == 2 * QUESTIONS and second.labels == first.labels
    thinking_off = {"chat_template_kwargs": {"enable_thinking": False}}
    for changed in ({"api": "completions"}, {"revision": "abc123"}, thinking_off, {"constrain": True}):
        before = len(server.bodies)
        annotate(sample[:1], config(server.url, **changed), TAXONOMY, RUBRIC, tmp_path / "cache", **STEADY)
        assert len(server.bodies) - before == QUESTIONS, changed


def test_request_bodies():
    conv = [{"role": "user", "content": "x"}]
    body = request_body("m", conv, ("0", "1"), "generate", generate_max_tokens=99)
    assert body["max_tokens"] == 99 and "structured_outputs" not in body and "logprobs" not in body
    body = request_body("m", conv, ("0", "1"), "logprobs", api="completions", top_logprobs=5, constrain=True)
    assert body["logprobs"] == 5 and body["structured_outputs"] == {"choice": ["0", "1"]}
    assert body["prompt"].endswith("Answer:")
    body = request_body("m", conv, ("0",), "logprobs", chat_template_kwargs={"enable_thinking": False})
    assert body["chat_template_kwargs"] == {"enable_thinking": False}


def test_parse_reply_shapes():
    chat = {"choices": [{"message": {"content": "Mostly physics.\nAnswer: E"}}]}
    assert parse_reply(chat, TAXONOMY.letters, "generate") == Answer({"E": 1.0})
    completion = {"choices": [{"text": "Answer: 3"}], "usage": {"prompt_tokens": 7}}
    assert parse_reply(completion, tuple("012345"), "generate", api="completions") == Answer({"3": 1.0}, None, 7)
    assert isinstance(parse_reply({"choices": [{"message": {"content": "zzz"}}]}, ("A",), "logprobs"), TeacherError)
    for broken in ({}, {"choices": []}, [], "text", {"choices": [None]}):
        with pytest.raises(ValueError):
            parse_reply(broken, TAXONOMY.letters, "logprobs")


def test_missing_url_is_a_config_error():
    with pytest.raises(ConfigError, match="teacher.url"):
        build_backend(TeacherConfig(backend="endpoint", model="m"))
    with pytest.raises(ConfigError, match="teacher.model"):
        build_backend(TeacherConfig(backend="endpoint", url="http://x"))


def test_backend_yields_every_request_once_over_kept_alive_connections(server):
    system = prompts.system_prompt(TAXONOMY, RUBRIC)
    qs = prompts.questions(TAXONOMY, RUBRIC, "logprobs")
    requests = [Request(i, q, prompts.messages(system, f"doc {i}", q)) for i in range(50) for q in qs]
    backend = EndpointBackend(server.url, "m", concurrency=8)
    seen = dict(backend.ask(requests, "logprobs"))
    backend.close()
    assert sorted(seen) == list(range(len(requests)))
    for i, outcome in seen.items():
        assert set(outcome.probs) <= set(requests[i].question.labels)
    assert json.dumps(server.bodies[0])  # plain JSON bodies
    assert len(server.connections) <= 8 < len(requests)  # one pool: connections reused, never one per request


def test_progress_lines_and_summary(server, tmp_path):
    lines: list[str] = []
    sample = docs(*[f"progress doc {i}" for i in range(10)])
    annotate(sample, config(server.url), TAXONOMY, RUBRIC, tmp_path, progress=lines.append, **STEADY)
    assert len(lines) == 11 and lines[-2].startswith("40/40 requests")  # every 10%, then the summary
    assert lines[-1].startswith("done: 40 requests") and "label mass 0.90" in lines[-1] and "prefix cache" in lines[-1]


def test_datatrove_dummy_server_without_logprobs_is_counted_not_crashed(tmp_path):
    """datatrove's DummyServer handler answers every chat request with the same free text and no
    logprobs: a real OpenAI-shaped server whose answers hold no label."""
    from http.server import HTTPServer
    from threading import Thread

    from datatrove.pipeline.inference.servers.dummy_server import DummyHandler

    httpd = HTTPServer(("127.0.0.1", 0), DummyHandler)
    Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        result = annotate(docs("any text"), config(url), TAXONOMY, RUBRIC, tmp_path, **STEADY)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert result.errors["unparseable"] == QUESTIONS and result.labels[1000] == {"id": "d0"}
    assert "no final answer" in result.report()["first_errors"]["unparseable"][0]
    assert result.report()["retried"] == {}  # a well-formed reply is not asked again
