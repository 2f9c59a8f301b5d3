"""The `endpoint` backend: any OpenAI-compatible server (e.g. `vllm serve`), one URL or several replicas.

logprobs mode is prefill-only: one output token, its top-k logprobs, no constraint by default (vLLM
masks before it computes logprobs, so a constrained answer hides the label mass; see the README).
With `constrain`, the current field `structured_outputs: {"choice": [...]}` is sent; the old
`guided_*` fields are silently ignored by new servers, so they are never sent.

One pooled HTTP client (keep-alive connections, one per worker thread at most) serves every
request; a thread pool bounds the requests in flight (the work is waiting on the network). A
timeout per request, and retries with exponential backoff on timeouts, connection errors, 429, 5xx
and malformed bodies (a proxy cut a reply: asking again helps). A replica that refuses connections
is set aside for a while and its requests go to the live ones. A reply that is well-formed but holds
no label is `unparseable` and not retried: asking again would give the same answer.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, Literal

import httpx

from classifiers.backends.base import (
    LabelNotSingleToken,
    Outcome,
    Request,
    TeacherError,
    answer_from_logprobs,
    answer_from_text,
    single_token_labels,
)
from classifiers.prompts import Messages, plain_prompt
from pipeline.errors import ConfigError

Api = Literal["chat", "completions"]
# A replica that refused a connection is skipped for this long before it is tried again.
_DEAD_FOR_S = 30.0


def request_body(
    model: str,
    conversation: Messages,
    labels: Sequence[str],
    mode: str,
    api: Api = "chat",
    top_logprobs: int = 20,
    generate_max_tokens: int = 256,
    constrain: bool = False,
    chat_template_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON body of one request. logprobs mode is prefill-only: one output token."""
    body: dict[str, Any] = {"model": model, "temperature": 0.0}
    if api == "chat":
        body["messages"] = conversation
        if chat_template_kwargs:
            body["chat_template_kwargs"] = chat_template_kwargs
    else:
        body["prompt"] = plain_prompt(conversation)
    if mode == "generate":
        return body | {"max_tokens": generate_max_tokens}
    body["max_tokens"] = 1
    if constrain:
        body["structured_outputs"] = {"choice": list(labels)}
    if api == "chat":
        return body | {"logprobs": True, "top_logprobs": top_logprobs}
    return body | {"logprobs": top_logprobs}


class MalformedReply(ValueError):
    """A reply without the OpenAI shape (no choices): retried, as a proxy may have cut it."""


def parse_reply(reply: Any, labels: Sequence[str], mode: str, api: Api = "chat") -> Outcome:
    """A server reply -> Answer or TeacherError. Raises MalformedReply when it lacks the OpenAI shape."""
    try:
        choice = reply["choices"][0]
        text = choice["message"].get("content") if api == "chat" else choice.get("text")
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise MalformedReply(f"reply without choices: {json.dumps(reply)[:200]}") from exc
    usage = reply.get("usage") if isinstance(reply.get("usage"), dict) else {}
    prompt_tokens = int(usage.get("prompt_tokens") or 0)
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    if mode != "generate":
        top = _top_logprobs(choice.get("logprobs"), api)
        if top:
            return answer_from_logprobs(top, labels, prompt_tokens, cached)
    # generate mode, or a server that returned no logprobs: the text itself is the answer
    if not isinstance(text, str):
        return TeacherError("unparseable", f"reply without text or logprobs: {json.dumps(choice)[:200]}")
    return answer_from_text(text, labels, prompt_tokens, cached)


def _top_logprobs(logprobs: Any, api: Api) -> dict[str, float]:
    """The first output token's top-k as {token: logprob}; {} when the reply has none."""
    try:
        if api == "chat":
            first = logprobs["content"][0]
            return {str(t["token"]): float(t["logprob"]) for t in first.get("top_logprobs") or [first]}
        return {str(k): float(v) for k, v in logprobs["top_logprobs"][0].items()}
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        return {}


class EndpointBackend:
    def __init__(
        self,
        url: str | Sequence[str],
        model: str,
        api: Api = "chat",
        concurrency: int = 64,
        timeout_s: float = 60.0,
        retries: int = 3,
        backoff_s: float = 1.0,
        top_logprobs: int = 20,
        generate_max_tokens: int = 256,
        constrain: bool = False,
        chat_template_kwargs: dict[str, Any] | None = None,
        api_key: str | None = None,
    ):
        self.model = model
        self.api = api
        self.bases = [u.rstrip("/") for u in ([url] if isinstance(url, str) else url)]
        self.path = "/chat/completions" if api == "chat" else "/completions"
        # requests in flight per replica: 64 keeps a vLLM server's batch full of prefills without
        # a deep queue in front of it (its scheduler admits up to max_num_seqs=256 at once)
        self.concurrency = concurrency * len(self.bases)
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.top_logprobs = top_logprobs
        self.generate_max_tokens = generate_max_tokens
        self.constrain = constrain
        self.chat_template_kwargs = chat_template_kwargs or {}
        self.retried: Counter = Counter()  # failed attempts that were asked again, by kind
        self._dead_until = [0.0] * len(self.bases)
        self._lock = threading.Lock()
        key = api_key or os.environ.get("OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        # one pool for every thread: connections are kept alive and reused across requests
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        self._client = httpx.Client(timeout=timeout_s, limits=limits, headers=headers)
        self._probed = False

    # ------------------------------------------------------------ start-up

    def probe(self, labels: Sequence[str]) -> None:
        """Fail fast when no replica answers; check single-token labels with a vLLM server's tokenizer.

        `GET /models` is in every OpenAI-compatible server; vLLM's says `owned_by: vllm` and has a
        `/tokenize` route beside `/v1`. Other servers cannot tokenize, so their labels go unchecked.
        """
        reachable = None
        for base in self.bases:
            try:
                reply = self._client.get(f"{base}/models", timeout=min(self.timeout_s, 10.0))
            except httpx.ConnectError:  # nothing listens there
                continue
            except httpx.HTTPError:  # something answers, if not to this route: the requests will tell
                reachable = base
                continue
            reachable = base
            if reply.status_code == 200 and _owned_by_vllm(reply):
                self._check_labels(base, labels)
                break
        if reachable is None:
            raise ConfigError(f"teacher.url: no server answers at {', '.join(self.bases)} (is it running?)")

    def _check_labels(self, base: str, labels: Sequence[str]) -> None:
        root = base.removesuffix("/v1")

        def encode(text: str) -> list[int]:
            body = {"model": self.model, "prompt": text, "add_special_tokens": False}
            return list(self._client.post(f"{root}/tokenize", json=body).json()["tokens"])

        try:
            single_token_labels(encode, labels)
        except LabelNotSingleToken as exc:
            raise ConfigError(f"teacher.model {self.model}: {exc}; edit the taxonomy letters or the rubric") from None
        except (httpx.HTTPError, KeyError, TypeError, ValueError):
            return  # the route is missing or differs: the answers' label mass will still tell

    # ------------------------------------------------------------ requests

    def _replica(self, request: Request, skip: set[int]) -> int:
        """The request's replica: fixed by document (its questions share a cached prefix there)."""
        now = time.monotonic()
        n = len(self.bases)
        start = request.doc_key % n
        for step in range(n):
            i = (start + step) % n
            if i not in skip and self._dead_until[i] <= now:
                return i
        return start

    def _ask_one(self, request: Request, mode: str) -> Outcome:
        body = request_body(
            self.model,
            request.messages,
            request.question.labels,
            mode,
            self.api,
            self.top_logprobs,
            self.generate_max_tokens,
            self.constrain,
            self.chat_template_kwargs,
        )
        error = TeacherError("server_error", "no attempt")
        skip: set[int] = set()
        attempt = 0
        while attempt <= self.retries:
            i = self._replica(request, skip)
            outcome, retry = self._attempt(self.bases[i] + self.path, body, request, mode)
            if not retry:
                return outcome
            error = outcome  # type: ignore[assignment]
            with self._lock:
                self.retried[error.kind] += 1
            if error.kind == "server_error" and error.message.startswith("connection"):
                self._dead_until[i] = time.monotonic() + _DEAD_FOR_S
                skip.add(i)
                if len(skip) < len(self.bases):
                    continue  # another replica takes it now, without using up a retry
            attempt += 1
            skip.clear()
            if attempt <= self.retries:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
        return error

    def _attempt(self, url: str, body: dict[str, Any], request: Request, mode: str) -> tuple[Outcome, bool]:
        """One POST: (outcome, whether to ask again)."""
        try:
            response = self._client.post(url, json=body)
        except httpx.TimeoutException as exc:
            return TeacherError("timeout", f"no reply from {url} in {self.timeout_s}s ({type(exc).__name__})"), True
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
            return TeacherError("server_error", f"connection to {url} failed: {exc!r}"), True
        if response.status_code == 429 or response.status_code >= 500:
            return TeacherError("server_error", f"HTTP {response.status_code} from {url}: {response.text[:200]}"), True
        if response.status_code >= 400:
            text = response.text[:300]
            kind = "too_long" if "context length" in text or "max_model_len" in text else "server_error"
            return TeacherError(kind, f"HTTP {response.status_code} from {url}: {text}"), False
        try:
            return parse_reply(response.json(), request.question.labels, mode, self.api), False
        except (json.JSONDecodeError, UnicodeDecodeError, MalformedReply) as exc:
            return TeacherError("unparseable", f"malformed reply from {url}: {str(exc)[:200]}"), True

    def ask(self, requests: Sequence[Request], mode: str) -> Iterator[tuple[int, Outcome]]:
        if not self._probed:
            self.probe(sorted({label for r in requests for label in r.question.labels}))
            self._probed = True
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = {pool.submit(self._ask_one, r, mode): i for i, r in enumerate(requests)}
            try:
                for future in as_completed(futures):
                    yield futures[future], future.result()
            finally:
                for future in futures:  # a stopped run does not wait for thousands of requests
                    future.cancel()

    def close(self) -> None:
        self._client.close()


def _owned_by_vllm(reply: httpx.Response) -> bool:
    try:
        return any(m.get("owned_by") == "vllm" for m in reply.json()["data"])
    except (ValueError, KeyError, TypeError, AttributeError):
        return False
