"""The `vllm` backend: one offline `vllm.LLM` engine per Ray actor, fed blocks of documents.

Why not datatrove's `InferenceRunner` (0.10.1), which was evaluated first: its request path keeps
only the reply's text, finish reason and usage (`_send_request` builds `InferenceResult(text,
finish_reason, usage)`), so the top-k logprobs a prefill-only request exists for never reach the
rollout function; an HTTP 500 raises `ServerError`, which ends the whole task instead of one
request; and `_raw_post` closes the connection after every request. It also spawns a `vllm serve`
per datatrove task. A server the lab runs itself is the `endpoint` backend.

Why actors holding `vllm.LLM` (rather than Ray Data's LLM processor): the sample is small (a few
GPU-minutes per thousand documents) and an actor uses vLLM's own current API directly. Each
replica asks Ray for `tensor_parallel_size` GPUs; vLLM shards the model over them with its
multiprocessing executor inside the actor. vllm is an optional extra (`gpu`), imported only there.

What the replica does for vLLM, and why:
- It renders and tokenizes every prompt itself and sends token ids: a prompt over `max_model_len`
  is marked `too_long` there, because `LLM.generate` rejects the whole batch for one bad request.
- It checks that every label is one token of the engine's own tokenizer before any request.
- It returns the top-k logprobs of the first output token by decoded text, and the prompt's
  prefix-cache hits (`RequestOutput.num_cached_tokens`) for the throughput report.
The driver keeps two blocks in flight per replica (no barrier on the slowest replica), re-queues
a dead replica's blocks on the live ones, and shuts every engine down when annotation ends.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from classifiers.backends.base import (
    LabelNotSingleToken,
    Outcome,
    Request,
    TeacherError,
    answer_from_logprobs,
    answer_from_text,
    single_token_labels,
)
from pipeline.errors import ConfigError, PhaseFailed

# Blocks queued on each replica: one running, one waiting, so an engine never idles between blocks.
_IN_FLIGHT = 2
# A block is tried on this many replicas before its requests are counted as failed.
_BLOCK_TRIES = 2


def sampling_kwargs(
    labels: Sequence[str], mode: str, top_logprobs: int = 20, generate_max_tokens: int = 256, constrain: bool = False
) -> dict[str, Any]:
    """Keyword arguments of `vllm.SamplingParams`; `structured_outputs` as a plain dict here."""
    if mode == "generate":
        return {"max_tokens": generate_max_tokens, "temperature": 0.0}
    # Prefill-only: one token and its top-k. Unconstrained by default: vLLM applies the grammar
    # bitmask to the logits before the sampler computes logprobs, so a constrained answer returns
    # the post-mask distribution and its label mass is 1 by construction (README, "Teacher").
    kwargs: dict[str, Any] = {"max_tokens": 1, "temperature": 0.0, "logprobs": top_logprobs}
    if constrain:
        kwargs["structured_outputs"] = {"choice": list(labels)}
    return kwargs


def engine_kwargs(
    model: str,
    tensor_parallel_size: int = 1,
    max_model_len: int = 8192,
    gpu_memory_utilization: float = 0.9,
    seed: int = 0,
    revision: str | None = None,
    dtype: str = "auto",
    quantization: str | None = None,
    max_num_batched_tokens: int | None = None,
    trust_remote_code: bool = False,
    max_logprobs: int = 20,
) -> dict[str, Any]:
    """Keyword arguments of `vllm.LLM` for one replica (unset options keep vLLM's defaults)."""
    kwargs: dict[str, Any] = {
        "model": model,
        "tensor_parallel_size": tensor_parallel_size,
        "max_model_len": max_model_len,
        "gpu_memory_utilization": gpu_memory_utilization,
        "seed": seed,
        "dtype": dtype,
        "trust_remote_code": trust_remote_code,
        "max_logprobs": max_logprobs,
        # the shared system prompt and per-document prefixes are the whole point of the prompt order
        "enable_prefix_caching": True,
        # tensor-parallel workers as processes inside the actor, on the GPUs Ray gave it
        "distributed_executor_backend": "mp",
    }
    optional = {"revision": revision, "quantization": quantization, "max_num_batched_tokens": max_num_batched_tokens}
    return kwargs | {k: v for k, v in optional.items() if v is not None}


def replica_count(replicas: int | str, tensor_parallel_size: int, cluster_gpus: int) -> int:
    """`auto` = every GPU of the cluster in groups of `tensor_parallel_size`; checked against the cluster."""
    fit = cluster_gpus // tensor_parallel_size
    wanted = fit if replicas == "auto" else int(replicas)
    if wanted < 1 or wanted > fit:
        raise ConfigError(
            f"teacher.replicas={replicas} x teacher.tensor_parallel_size={tensor_parallel_size} needs "
            f"{max(wanted, 1) * tensor_parallel_size} GPUs; the Ray cluster has {cluster_gpus}"
        )
    return wanted


def document_blocks(requests: Sequence[Request], block_docs: int) -> list[list[int]]:
    """Contiguous blocks of request indices, `block_docs` documents each, never splitting a document's
    questions (they share a prefix that only one engine's cache holds)."""
    blocks: list[list[int]] = []
    docs = 0
    for i, request in enumerate(requests):
        if i == 0 or request.doc_key != requests[i - 1].doc_key:
            docs += 1
            if docs > block_docs or not blocks:
                blocks.append([])
                docs = 1
        blocks[-1].append(i)
    return blocks


def outcome_from_raw(raw: dict[str, Any], labels: Sequence[str], mode: str) -> Outcome:
    """A replica's raw answer (picklable) -> Answer or TeacherError, in the driver."""
    if "error" in raw:
        kind, message = raw["error"]
        return TeacherError(kind, message)
    tokens, cached = raw.get("prompt_tokens", 0), raw.get("cached_tokens")
    if mode == "generate":
        return answer_from_text(raw.get("text") or "", labels, tokens, cached)
    return answer_from_logprobs(raw.get("top") or {}, labels, tokens, cached)


class Replica:
    """One vLLM engine in a Ray actor; returns picklable raw answers (see `outcome_from_raw`)."""

    def __init__(self, engine: dict[str, Any], chat_template_kwargs: dict[str, Any], log_file: str | None = None):
        if log_file:  # this process's and vLLM's engine subprocesses' output, where the driver can read it
            Path(log_file).parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            for stream in (1, 2):
                os.dup2(fd, stream)
        from vllm import LLM

        self.llm = LLM(**engine)
        self.tokenizer = self.llm.get_tokenizer()
        self.max_model_len = int(engine["max_model_len"])
        self.chat_template_kwargs = chat_template_kwargs

    def ready(self, label_sets: list[tuple[str, ...]]) -> int:
        """Start-up check: every label is one token of this engine's tokenizer. Returns the vocab size."""
        for labels in label_sets:
            single_token_labels(lambda text: self.tokenizer.encode(text, add_special_tokens=False), labels)
        return len(self.tokenizer)

    def _token_ids(self, conversation: list[dict[str, str]]) -> list[int]:
        text = self.tokenizer.apply_chat_template(
            conversation, tokenize=False, add_generation_prompt=True, **self.chat_template_kwargs
        )
        # the rendered template already holds any BOS token
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def run(self, conversations: list[list[dict[str, str]]], sampling: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        raw: list[dict[str, Any]] = [{} for _ in conversations]
        prompts, params, slots = [], [], []
        for i, (conversation, kwargs) in enumerate(zip(conversations, sampling, strict=True)):
            ids = self._token_ids(conversation)
            room = self.max_model_len - kwargs["max_tokens"]
            if len(ids) > room:
                raw[i] = {"error": ("too_long", f"{len(ids)} prompt tokens > {room}: lower teacher.max_chars")}
                continue
            kwargs = dict(kwargs)
            if "structured_outputs" in kwargs:
                kwargs["structured_outputs"] = StructuredOutputsParams(**kwargs["structured_outputs"])
            prompts.append({"prompt_token_ids": ids})
            params.append(SamplingParams(**kwargs))
            slots.append(i)
        outputs = self.llm.generate(prompts, params, use_tqdm=False) if prompts else []
        for i, prompt, out in zip(slots, prompts, outputs, strict=True):
            completion = out.outputs[0]
            answer: dict[str, Any] = {
                "prompt_tokens": len(prompt["prompt_token_ids"]),
                "cached_tokens": getattr(out, "num_cached_tokens", None),
                "text": completion.text,
            }
            if completion.logprobs:
                first = completion.logprobs[0] or {}  # FlatLogprobs may hold None at a position
                answer["top"] = {self._decoded(tid, lp): lp.logprob for tid, lp in first.items()}
            raw[i] = answer
        return raw

    def _decoded(self, token_id: int, logprob: Any) -> str:
        text = getattr(logprob, "decoded_token", None)
        return text if text is not None else self.tokenizer.decode([token_id])


class VllmBackend:
    def __init__(
        self,
        model: str,
        tensor_parallel_size: int = 1,
        replicas: int | str = "auto",
        max_model_len: int = 8192,
        top_logprobs: int = 20,
        generate_max_tokens: int = 256,
        seed: int = 0,
        revision: str | None = None,
        gpu_memory_utilization: float = 0.9,
        dtype: str = "auto",
        quantization: str | None = None,
        max_num_batched_tokens: int | None = None,
        trust_remote_code: bool = False,
        max_logprobs: int = 20,
        chat_template_kwargs: dict[str, Any] | None = None,
        forward_env: Sequence[str] = (),
        constrain: bool = False,
        load_timeout_s: float = 1800.0,
        block_timeout_s: float = 1800.0,
        block_docs: int = 64,
        ray_address: str | None = None,
        log_dir: str | None = None,
    ):
        self.model = model
        self.replicas = replicas
        self.tensor_parallel_size = tensor_parallel_size
        self.engine = engine_kwargs(
            model,
            tensor_parallel_size,
            max_model_len,
            gpu_memory_utilization,
            seed,
            revision,
            dtype,
            quantization,
            max_num_batched_tokens,
            trust_remote_code,
            max_logprobs,
        )
        self.top_logprobs = top_logprobs
        self.generate_max_tokens = generate_max_tokens
        self.chat_template_kwargs = chat_template_kwargs or {}
        self.forward_env = tuple(forward_env)
        self.constrain = constrain
        self.load_timeout_s = load_timeout_s
        self.block_timeout_s = block_timeout_s
        self.block_docs = block_docs
        self.ray_address = ray_address
        # replica i logs to log_dir/replica-i.log: Ray would keep it in a worker log on some node
        self.log_dir = log_dir
        self.gpus: int | None = None
        self._actors: list[Any] = []

    def _start(self, label_sets: list[tuple[str, ...]]) -> None:
        """Start the replicas and wait until each has loaded the model and checked the labels."""
        import ray

        from pipeline.config import EngineConfig
        from pipeline.engine import ensure_ray

        # the engine's own Ray start: `engine.address`, or an embedded Ray; never whatever is around
        ensure_ray(EngineConfig(kind="ray", address=self.ray_address))
        count = replica_count(self.replicas, self.tensor_parallel_size, int(ray.cluster_resources().get("GPU", 0)))
        env = {name: os.environ[name] for name in self.forward_env if name in os.environ}
        options: dict[str, Any] = {"num_gpus": self.tensor_parallel_size}
        if env:
            options["runtime_env"] = {"env_vars": env}
        actor = ray.remote(Replica).options(**options)
        self._actors = [actor.remote(self.engine, self.chat_template_kwargs, self._log(i)) for i in range(count)]
        self.gpus = count * self.tensor_parallel_size
        checks = [a.ready.remote(label_sets) for a in self._actors]
        pending = list(checks)
        while pending:  # the first replica that fails stops everything, with its own error
            done, pending = ray.wait(pending, num_returns=1, timeout=self.load_timeout_s)
            if not done:
                self.close()
                raise PhaseFailed(
                    f"P2 teacher: {len(pending)} of {count} vLLM replicas did not load {self.model} within "
                    f"teacher.load_timeout_s={self.load_timeout_s:g}s (GPUs busy, or a download stuck?)"
                )
            try:
                ray.get(done[0])
            except Exception as exc:  # the replica's exception, whatever vLLM raised
                self.close()
                cause = getattr(exc, "cause", None) or exc
                if isinstance(cause, LabelNotSingleToken):
                    raise ConfigError(f"teacher.model {self.model}: {cause}; edit the taxonomy letters") from None
                replica = checks.index(done[0])
                raise PhaseFailed(
                    f"P2 teacher: vLLM replica {replica} failed to load {self.model}: {_short(cause)}"
                    + _tail(self._log(replica))
                ) from None

    def ask(self, requests: Sequence[Request], mode: str) -> Iterator[tuple[int, Outcome]]:
        import ray
        from ray.exceptions import RayActorError

        if not self._actors:
            self._start(sorted({r.question.labels for r in requests}))
        sampling = [
            sampling_kwargs(r.question.labels, mode, self.top_logprobs, self.generate_max_tokens, self.constrain)
            for r in requests
        ]
        blocks = document_blocks(requests, self.block_docs)
        queue: deque[int] = deque(range(len(blocks)))
        tries = [0] * len(blocks)
        live = set(range(len(self._actors)))
        inflight: dict[Any, tuple[int, int]] = {}  # object ref -> (replica, block)
        first_death: BaseException | None = None

        def feed() -> None:
            for a in sorted(live):
                while queue and sum(1 for r, _ in inflight.values() if r == a) < _IN_FLIGHT:
                    b = queue.popleft()
                    conversations = [requests[i].messages for i in blocks[b]]
                    inflight[self._actors[a].run.remote(conversations, [sampling[i] for i in blocks[b]])] = (a, b)

        feed()
        while inflight:
            done, _ = ray.wait(list(inflight), num_returns=1, timeout=self.block_timeout_s)
            if not done:
                raise PhaseFailed(
                    f"P2 teacher: no vLLM replica finished a block of {self.block_docs} documents in "
                    f"teacher.block_timeout_s={self.block_timeout_s:g}s; answers so far are cached"
                )
            a, b = inflight.pop(done[0])
            try:
                raw = ray.get(done[0])
            except RayActorError as exc:  # the replica died: its blocks go to the live ones
                live.discard(a)
                first_death = first_death or exc
                tries[b] += 1
                if not live:
                    raise PhaseFailed(
                        f"P2 teacher: every vLLM replica died; the first: {_short(first_death)}" + _tail(self._log(a))
                    ) from None
                if tries[b] < _BLOCK_TRIES:
                    queue.appendleft(b)
                else:
                    for i in blocks[b]:
                        yield i, TeacherError("server_error", f"block lost with {tries[b]} replicas: {_short(exc)}")
            except Exception as exc:  # the block raised inside a live replica
                for i in blocks[b]:
                    yield i, TeacherError("server_error", f"vLLM replica error: {_short(getattr(exc, 'cause', exc))}")
            else:
                for i, answer in zip(blocks[b], raw, strict=True):
                    yield i, outcome_from_raw(answer, requests[i].question.labels, mode)
            feed()

    def _log(self, replica: int) -> str | None:
        return str(Path(self.log_dir) / f"replica-{replica}.log") if self.log_dir else None

    def close(self) -> None:
        """Kill the replicas: each holds most of its GPUs' memory, which later phases may need."""
        if not self._actors:
            return
        import ray

        for actor in self._actors:
            ray.kill(actor)
        self._actors = []


def _tail(log_file: str | None, lines: int = 20) -> str:
    """The last lines of a replica's log, when the driver can read it (a shared run folder)."""
    if not log_file or not os.path.isfile(log_file):
        return ""
    with open(log_file, errors="replace") as fh:
        last = fh.read()[-4000:].splitlines()[-lines:]
    return f"\nlast lines of {log_file}:\n" + "\n".join(last) if last else ""


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[-1] if text else type(exc).__name__)[:300]
