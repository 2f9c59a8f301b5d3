"""The endpoint backend against a local OpenAI-compatible server started by the test."""

from __future__ import annotations

import json
import math
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from datatrove.data import Document

from classifiers.backends.endpoint import EndpointBackend, request_body
from classifiers.taxonomy import load_rubric, load_taxonomy
from classifiers.teacher import annotate, build_backend
from pipeline.config import TeacherConfig
from pipeline.errors import ConfigError

TAXONOMY, RUBRIC = load_taxonomy(), load_rubric()
QUESTIONS = 1 + len(RUBRIC.ids)


class FakeOpenAI(BaseHTTPRequestHandler):
    """Answers by the document's content: SLOW (past the timeout), FLAKY (503 once), GARBAGE (not
    JSON), NOLABEL (no allowed token in the top logprobs), BADREQ (400); otherwise the second
    allowed label with p=0.6 and the third (spelled with a space) with p=0.3."""

    bodies: list[dict] = []
    attempts: Counter = Counter()
    lock = threading.Lock()

    def log_message(self, *args) -> None:
        pass

    def _send(self, code: int, payload: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        text = body["messages"][-1]["content"] if "messages" in body else body["prompt"]
        with self.lock:
            self.bodies.append(body | {"_path": self.path})
            self.attempts[text] += 1
            attempt = self.attempts[text]
        if "SLOW" in text:
            time.sleep(0.3)
        if "FLAKY" in text and attempt == 1:
            return self._send(503, b'{"error": "overloaded"}')
        if "GARBAGE" in text:
            return self._send(200, b"<html>oops</html>")
        if "BADREQ" in text:
            return self._send(400, b'{"error": "bad request"}')
        choice = body.get("structured_outputs", {}).get("choice", ["?", "?", "?"])
        top = [(choice[1], 0.6), (" " + choice[2], 0.3), ("zzz", 0.1)]
        if "NOLABEL" in text:
            top = [("zzz", 0.9), ("yyy", 0.1)]
        if "messages" in body:
            logprobs = {"content": [{"token": top[0][0], "top_logprobs": [{"token": t, "logprob": math.log(p)} for t, p in top]}]}
            reply = {"choices": [{"message": {"content": top[0][0]}, "logprobs": logprobs}]}
        else:
            reply = {"choices": [{"text": top[0][0], "logprobs": {"top_logprobs": [{t: math.log(p) for t, p in top}]}}]}
        self._send(200, json.dumps(reply).encode())


@pytest.fixture()
def server():
    FakeOpenAI.bodies, FakeOpenAI.attempts = [], Counter()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def docs(*texts: str) -> list[Document]:
    return [Document(text=t, id=f"d{i}", metadata={"uid": 1000 + i}) for i, t in enumerate(texts)]


def config(url: str, **kw) -> TeacherConfig:
    return TeacherConfig(backend="endpoint", url=url, model="test-model", **kw)


FAST = {"timeout_s": 0.2, "retries": 2, "backoff_s": 0.01, "concurrency": 4}


def test_request_carries_structured_outputs_and_logprobs(server, tmp_path):
    result = annotate(docs("A plain document about stars."), config(server), TAXONOMY, RUBRIC, tmp_path, **FAST)
    assert len(FakeOpenAI.bodies) == QUESTIONS
    for body in FakeOpenAI.bodies:
        assert body["_path"] == "/v1/chat/completions"
        assert body["max_tokens"] == 1 and body["logprobs"] is True and body["top_logprobs"] == 20
        assert body["structured_outputs"]["choice"] in (list(TAXONOMY.letters), ["0", "1", "2", "3", "4", "5"])
        assert not any(key.startswith("guided_") for key in body)
    labels = result.labels[1000]
    # B (p .6) and " C" (p .3) renormalised over the labels: 2/3 and 1/3
    assert labels["domain"] == TAXONOMY.by_letter()["B"] and labels["domain_prob"] == pytest.approx(0.6667, abs=1e-4)
    assert labels["quality"] == pytest.approx(1 * 2 / 3 + 2 / 3, abs=1e-3)
    assert result.errors == Counter()


def test_completions_api_and_generate_body(server, tmp_path):
    result = annotate(docs("Plain text."), config(server), TAXONOMY, RUBRIC, tmp_path, api="completions", **FAST)
    assert FakeOpenAI.bodies[0]["_path"] == "/v1/completions"
    assert FakeOpenAI.bodies[0]["logprobs"] == 20 and FakeOpenAI.bodies[0]["prompt"].endswith("Answer:")
    assert result.labels[1000]["domain_prob"] == pytest.approx(0.6667, abs=1e-4)
    body = request_body("m", [{"role": "user", "content": "x"}], ("0", "1"), "generate", generate_max_tokens=99)
    assert body["max_tokens"] == 99 and "structured_outputs" not in body and "logprobs" not in body


def test_timeouts_retries_and_malformed_replies_are_counted(server, tmp_path):
    sample = docs("SLOW doc", "FLAKY doc", "GARBAGE doc", "NOLABEL doc", "BADREQ doc", "fine doc")
    result = annotate(sample, config(server), TAXONOMY, RUBRIC, tmp_path, **FAST)
    n = QUESTIONS
    assert result.errors["timeout"] == n and result.errors["unparseable"] == 2 * n
    assert result.errors["server_error"] == n and result.errors["domain:timeout"] == 1
    per_doc = Counter()
    for text, count in FakeOpenAI.attempts.items():
        per_doc[next(t for t in ("SLOW", "FLAKY", "GARBAGE", "NOLABEL", "BADREQ", "fine") if t in text)] += count
    assert per_doc["SLOW"] == n * (1 + FAST["retries"])  # retried until the budget is spent
    assert per_doc["FLAKY"] == 2 * n  # one 503, then success
    assert per_doc["GARBAGE"] == per_doc["NOLABEL"] == per_doc["BADREQ"] == n  # never retried
    by_id = {r["id"]: r for r in result.labels.values()}
    assert "quality" in by_id["d1"] and "quality" in by_id["d5"]
    for failed in ("d0", "d2", "d3", "d4"):
        assert by_id[failed] == {"id": failed}  # failures are never labelled
    assert result.report()["complete"] == 2


def test_cache_avoids_re_asking(server, tmp_path):
    sample = docs("first text", "second text", "GARBAGE text")
    first = annotate(sample, config(server), TAXONOMY, RUBRIC, tmp_path / "cache", **FAST)
    asked = len(FakeOpenAI.bodies)
    second = annotate(sample, config(server), TAXONOMY, RUBRIC, tmp_path / "cache", **FAST)
    # only the failed document is asked again
    assert len(FakeOpenAI.bodies) - asked == QUESTIONS
    assert second.cached == 2 * QUESTIONS and second.asked == QUESTIONS
    assert second.labels == first.labels
    # another model or another truncation is another prompt: asked again
    annotate(sample[:1], config(server), TAXONOMY, RUBRIC, tmp_path / "cache", max_chars=5, **FAST)
    assert len(FakeOpenAI.bodies) - asked == 2 * QUESTIONS


def test_missing_url_is_a_config_error():
    with pytest.raises(ConfigError, match="teacher.url"):
        build_backend(TeacherConfig(backend="endpoint", model="m"))
    with pytest.raises(ConfigError, match="teacher.model"):
        build_backend(TeacherConfig(backend="endpoint", url="http://x"))


def test_backend_ask_keeps_request_order(server):
    from classifiers import prompts
    from classifiers.backends.base import Request

    system = prompts.system_prompt(TAXONOMY, RUBRIC)
    qs = prompts.questions(TAXONOMY, RUBRIC, "logprobs")
    requests = [Request(i, q, prompts.messages(system, f"doc {i}", q)) for i in range(5) for q in qs]
    outcomes = EndpointBackend(server, "m", concurrency=8).ask(requests, "logprobs")
    for request, outcome in zip(requests, outcomes):
        assert set(outcome) <= set(request.question.labels)


def test_parse_reply_generate_and_malformed():
    from classifiers.backends.endpoint import parse_reply

    chat = {"choices": [{"message": {"content": "Mostly physics.\nAnswer: E"}}]}
    assert parse_reply(chat, TAXONOMY.letters, "generate") == {"E": 1.0}
    completion = {"choices": [{"text": "Answer: 3"}]}
    assert parse_reply(completion, ("0", "1", "2", "3", "4", "5"), "generate", api="completions") == {"3": 1.0}
    for broken in ({}, {"choices": []}, {"choices": [{"logprobs": None}]}, [], "text"):
        assert parse_reply(broken, TAXONOMY.letters, "logprobs") is None
