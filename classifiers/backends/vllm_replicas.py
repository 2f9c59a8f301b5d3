"""The `vllm` backend: vLLM offline engines on GPUs, one `vllm.LLM` per Ray actor replica.

Why actors rather than `ray.data.llm.build_processor`: the sample is small (thousands of documents,
a few minutes of GPU), so Ray Data's streaming adds nothing, while its row format for per-token
logprobs and its spelling of constrained decoding in `sampling_params` have changed between Ray
releases. An actor holding `vllm.LLM` uses vLLM's own current API directly (`SamplingParams(...,
structured_outputs=StructuredOutputsParams(choice=...))`, `Logprob.decoded_token`) and needs only
Ray core. Each replica asks for `tensor_parallel_size` GPUs; vLLM shards the model over them with
its multiprocessing executor inside the actor. vllm is an optional extra: imported only on the GPU
workers. The request and engine arguments are built by pure functions, testable without vllm.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from classifiers.backends.base import (
    Outcome,
    Request,
    TeacherError,
    distribution_from_logprobs,
    parse_generated,
)


def sampling_kwargs(
    labels: Sequence[str], mode: str, top_logprobs: int = 20, generate_max_tokens: int = 256
) -> dict[str, Any]:
    """Keyword arguments of `vllm.SamplingParams`; `structured_outputs` as a plain dict here."""
    if mode == "generate":
        return {"max_tokens": generate_max_tokens, "temperature": 0.0}
    # Prefill-only: one token, constrained to the labels. Whether the top-k logprobs are taken before
    # or after the constraint's mask (vLLM's `logprobs_mode`), renormalising them over the labels
    # (teacher.distribution_from_logprobs) gives the same distribution: the mask only removes
    # non-label tokens. The constraint guarantees the sampled token itself is a label.
    return {
        "max_tokens": 1,
        "temperature": 0.0,
        "logprobs": top_logprobs,
        "structured_outputs": {"choice": list(labels)},
    }


def engine_kwargs(
    model: str,
    tensor_parallel_size: int = 1,
    max_model_len: int = 8192,
    gpu_memory_utilization: float = 0.9,
    seed: int = 0,
) -> dict[str, Any]:
    """Keyword arguments of `vllm.LLM` for one replica."""
    return {
        "model": model,
        "tensor_parallel_size": tensor_parallel_size,
        "max_model_len": max_model_len,
        "gpu_memory_utilization": gpu_memory_utilization,
        "seed": seed,
        # the shared system prompt and per-document prefixes are the whole point of the prompt order
        "enable_prefix_caching": True,
        # tensor-parallel workers as processes inside the actor, on the GPUs Ray gave it
        "distributed_executor_backend": "mp",
    }


def make_sampling_params(kwargs: dict[str, Any]) -> Any:
    from vllm import SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    kwargs = dict(kwargs)
    if "structured_outputs" in kwargs:
        kwargs["structured_outputs"] = StructuredOutputsParams(**kwargs["structured_outputs"])
    return SamplingParams(**kwargs)


def split_by_document(requests: Sequence[Request], replicas: int) -> list[list[int]]:
    """Contiguous blocks of request indices, never splitting a document's questions across replicas
    (they share a prefix that only one engine's cache holds)."""
    starts = [i for i in range(len(requests)) if i == 0 or requests[i].doc_key != requests[i - 1].doc_key]
    per = -(-len(starts) // max(replicas, 1)) if starts else 0
    blocks = []
    for b in range(0, len(starts), per or 1):
        first = starts[b]
        last = starts[b + per] if b + per < len(starts) else len(requests)
        blocks.append(list(range(first, last)))
    return blocks


class _Replica:
    """One vLLM engine; returns picklable raw answers (top logprobs by token text, or generated text)."""

    def __init__(self, kwargs: dict[str, Any]):
        from vllm import LLM

        self.llm = LLM(**kwargs)

    def run(self, conversations: list[list[dict[str, str]]], sampling: list[dict[str, Any]]) -> list[Any]:
        outputs = self.llm.chat(conversations, [make_sampling_params(s) for s in sampling], use_tqdm=False)
        raw: list[Any] = []
        for out, params in zip(outputs, sampling):
            completion = out.outputs[0]
            if "logprobs" in params:
                first = completion.logprobs[0] if completion.logprobs else {}
                raw.append({lp.decoded_token: lp.logprob for lp in first.values() if lp.decoded_token is not None})
            else:
                raw.append(completion.text)
        return raw


class VllmBackend:
    def __init__(
        self,
        model: str,
        tensor_parallel_size: int = 1,
        replicas: int = 1,
        max_model_len: int = 8192,
        top_logprobs: int = 20,
        generate_max_tokens: int = 256,
        seed: int = 0,
    ):
        self.model = model
        self.replicas = replicas
        self.tensor_parallel_size = tensor_parallel_size
        self.engine = engine_kwargs(model, tensor_parallel_size, max_model_len, seed=seed)
        self.top_logprobs = top_logprobs
        self.generate_max_tokens = generate_max_tokens
        self._actors: list[Any] = []

    def _start(self) -> None:
        import ray

        if not ray.is_initialized():
            ray.init()
        actor = ray.remote(num_gpus=self.tensor_parallel_size)(_Replica)
        self._actors = [actor.remote(self.engine) for _ in range(self.replicas)]

    def ask(self, requests: Sequence[Request], mode: str) -> list[Outcome]:
        import ray

        if not self._actors:
            self._start()
        sampling = [
            sampling_kwargs(r.question.labels, mode, self.top_logprobs, self.generate_max_tokens) for r in requests
        ]
        blocks = split_by_document(requests, len(self._actors))
        futures = [
            actor.run.remote([requests[i].messages for i in block], [sampling[i] for i in block])
            for actor, block in zip(self._actors, blocks)
        ]
        outcomes: list[Outcome] = []
        for block, future in zip(blocks, futures):
            try:
                raw = ray.get(future)
            except ray.exceptions.RayError as exc:
                outcomes += [TeacherError("server_error", f"vLLM replica failed: {exc}")] * len(block)
                continue
            for i, answer in zip(block, raw):
                labels = requests[i].question.labels
                dist = distribution_from_logprobs(answer, labels) if mode != "generate" else parse_generated(answer, labels)
                outcomes.append(dist if dist is not None else TeacherError("unparseable", f"no label in {str(answer)[:120]}"))
        return outcomes
