"""Loopback OpenAI-compatible servers for the teacher tests (stdlib http.server on 127.0.0.1).

The server answers like a judge model: a label picked from the document's text by hash, with
most of the probability, spelled with or without the BPE space. Markers in a document inject
faults: SLOW (past the timeout), FLAKY (500 once), CUT (a truncated body once), GARBAGE (never
JSON), NOLABEL (no label in the top-k), LOWMASS (labels hold 5%), BADREQ (400), TOOLONG (400
context length), NOLOGPROBS (only the text).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LETTERS = [chr(ord("A") + i) for i in range(18)]
DIGITS = ["0", "1", "2", "3", "4", "5"]


def prompt_text(body: dict[str, Any]) -> str:
    return body["messages"][-1]["content"] if "messages" in body else body["prompt"]


def document_of(text: str) -> str:
    return text.split("<document>\n", 1)[-1].split("\n</document>", 1)[0]


def judge_label(text: str) -> str:
    """The judge's answer for a prompt: deterministic in the document and the question kind."""
    labels = LETTERS if "Which domain" in text else DIGITS
    digest = hashlib.sha256(document_of(text).encode()).digest()
    return labels[digest[0] % len(labels)]


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, vllm: bool = False):
        super().__init__(("127.0.0.1", 0), Handler)
        self.vllm = vllm
        self.bodies: list[dict[str, Any]] = []
        self.attempts: Counter = Counter()
        self.connections: set[tuple[str, int]] = set()  # client (host, port): one per TCP connection
        self.lock = threading.Lock()
        self.die_after: int | None = None  # stop serving after this many completions requests
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real server
    server: FakeServer

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, code: int, payload: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        if self.path.endswith("/models"):
            owner = "vllm" if self.server.vllm else "someone"
            return self._send(200, json.dumps({"data": [{"id": "m", "owned_by": owner}]}).encode())
        self._send(404, b"{}")

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/tokenize":
            # a word-level tokenizer where "AB" is two tokens: every label is one token
            return self._send(200, json.dumps({"tokens": [ord(c) for c in body["prompt"].strip()]}).encode())
        server = self.server
        text = prompt_text(body)
        with server.lock:
            server.connections.add(self.client_address)
            server.bodies.append(body | {"_path": self.path})
            server.attempts[text] += 1
            attempt = server.attempts[text]
            served = len(server.bodies)
        if server.die_after is not None and served > server.die_after:
            self.close_connection = True  # the replica dies: no reply, then refused connections
            threading.Thread(target=server.stop, daemon=True).start()
            return
        self._answer(body, text, attempt)

    def _answer(self, body: dict[str, Any], text: str, attempt: int) -> None:
        doc = document_of(text)
        if "SLOW" in doc:
            time.sleep(0.5)
        if "FLAKY" in doc and attempt == 1:
            return self._send(500, b'{"error": "Internal Server Error"}')
        if "CUT" in doc and attempt == 1:
            return self._send(200, b'{"choices": [{"message": ')
        if "GARBAGE" in doc:
            return self._send(200, b"<html>oops</html>")
        if "BADREQ" in doc:
            return self._send(400, b'{"error": "bad request"}')
        if "TOOLONG" in doc:
            return self._send(400, b'{"error": "This model\'s maximum context length is 8192 tokens"}')
        label = judge_label(text)
        allowed = (body.get("structured_outputs") or {}).get("choice")
        labels = LETTERS if "Which domain" in text else DIGITS
        other = labels[(labels.index(label) + 1) % len(labels)]
        top = [(label, 0.7), (" " + other, 0.2), ("zzz", 0.1)]
        if allowed:  # what vLLM returns when it masks before logprobs: only allowed tokens, renormalised
            top = [(label, 0.7 / 0.9), (" " + other, 0.2 / 0.9)]
        if "NOLABEL" in doc:
            top = [("zzz", 0.9), ("yyy", 0.1)]
        if "LOWMASS" in doc:
            top = [("zzz", 0.95), (label, 0.05)]
        usage = {
            "prompt_tokens": len(text) // 4,
            "completion_tokens": 1,
            "prompt_tokens_details": {"cached_tokens": len(text) // 8},
        }
        if "messages" in body:
            entries = [{"token": t, "logprob": math.log(p)} for t, p in top]
            logprobs = {"content": [{"token": top[0][0], "logprob": math.log(top[0][1]), "top_logprobs": entries}]}
            choice: dict[str, Any] = {"message": {"content": top[0][0]}, "logprobs": logprobs}
        else:
            choice = {"text": top[0][0], "logprobs": {"top_logprobs": [{t: math.log(p) for t, p in top}]}}
        if "NOLOGPROBS" in doc:
            choice.pop("logprobs")
        choice["finish_reason"] = "length"
        self._send(200, json.dumps({"choices": [choice], "usage": usage}).encode())
