"""The `endpoint` backend: any OpenAI-compatible server (e.g. `vllm serve`) by URL.

Requests use the current vLLM field `structured_outputs: {"choice": [...]}` to constrain the one
answer token (the removed `guided_choice` is silently ignored by new servers, so it is not sent).
Bounded concurrency (a thread pool: the work is waiting on the network), a timeout per request,
and retries with exponential backoff on timeouts, connection errors, 429 and 5xx. A reply that
cannot be read is `unparseable` and is not retried: asking again would give the same answer.
"""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from classifiers.backends.base import (
    Outcome,
    Request,
    TeacherError,
    distribution_from_logprobs,
    parse_generated,
)
from classifiers.prompts import Messages, plain_prompt

Api = Literal["chat", "completions"]


def request_body(
    model: str,
    conversation: Messages,
    labels: Sequence[str],
    mode: str,
    api: Api = "chat",
    top_logprobs: int = 20,
    generate_max_tokens: int = 256,
) -> dict[str, Any]:
    """The JSON body of one request. logprobs mode is prefill-only: one constrained token."""
    body: dict[str, Any] = {"model": model, "temperature": 0.0}
    if api == "chat":
        body["messages"] = conversation
    else:
        body["prompt"] = plain_prompt(conversation)
    if mode == "generate":
        return body | {"max_tokens": generate_max_tokens}
    body |= {"max_tokens": 1, "structured_outputs": {"choice": list(labels)}}
    if api == "chat":
        return body | {"logprobs": True, "top_logprobs": top_logprobs}
    return body | {"logprobs": top_logprobs}


def parse_reply(reply: Any, labels: Sequence[str], mode: str, api: Api = "chat") -> dict[str, float] | None:
    """A server reply -> label distribution; None when the reply lacks what the mode needs."""
    try:
        choice = reply["choices"][0]
        if mode == "generate":
            text = choice["message"]["content"] if api == "chat" else choice["text"]
            return parse_generated(text, labels) if isinstance(text, str) else None
        if api == "chat":
            top = {t["token"]: float(t["logprob"]) for t in choice["logprobs"]["content"][0]["top_logprobs"]}
        else:
            top = {str(k): float(v) for k, v in choice["logprobs"]["top_logprobs"][0].items()}
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        return None
    return distribution_from_logprobs(top, labels)


class EndpointBackend:
    def __init__(
        self,
        url: str,
        model: str,
        api: Api = "chat",
        concurrency: int = 16,
        timeout_s: float = 60.0,
        retries: int = 3,
        backoff_s: float = 1.0,
        top_logprobs: int = 20,
        generate_max_tokens: int = 256,
        api_key: str | None = None,
    ):
        self.model = model
        self.api = api
        self.url = url.rstrip("/") + ("/chat/completions" if api == "chat" else "/completions")
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.top_logprobs = top_logprobs
        self.generate_max_tokens = generate_max_tokens
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY")

    def _post(self, body: dict[str, Any]) -> Any:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(self.url, json.dumps(body).encode(), headers, method="POST")
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            return json.loads(response.read())

    def _ask_one(self, request: Request, mode: str) -> Outcome:
        body = request_body(
            self.model, request.messages, request.question.labels, mode, self.api,
            self.top_logprobs, self.generate_max_tokens,
        )
        error = TeacherError("server_error", "no attempt")
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                reply = self._post(body)
            except urllib.error.HTTPError as exc:
                error = TeacherError("server_error", f"HTTP {exc.code} from {self.url}")
                if exc.code != 429 and exc.code < 500:
                    return error  # a client error does not get better by asking again
                continue
            except urllib.error.URLError as exc:
                kind = "timeout" if isinstance(exc.reason, TimeoutError) else "server_error"
                error = TeacherError(kind, f"{self.url}: {exc.reason}")
                continue
            except TimeoutError as exc:  # socket.timeout is TimeoutError since Python 3.10
                error = TeacherError("timeout", f"no reply from {self.url} in {self.timeout_s}s: {exc}")
                continue
            except (ConnectionError, http.client.HTTPException) as exc:
                error = TeacherError("server_error", f"{self.url}: {exc!r}")
                continue
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                return TeacherError("unparseable", f"reply is not JSON: {exc}")
            dist = parse_reply(reply, request.question.labels, mode, self.api)
            if dist is None:
                return TeacherError("unparseable", f"no valid label in reply: {json.dumps(reply)[:200]}")
            return dist
        return error

    def ask(self, requests: Sequence[Request], mode: str) -> list[Outcome]:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(lambda r: self._ask_one(r, mode), requests))
