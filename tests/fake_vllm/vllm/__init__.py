"""A stand-in for `vllm` with the shapes of its current API (LLM, SamplingParams, RequestOutput, Logprob).

It behaves as vLLM does where the teacher depends on it: `LLM.generate` rejects the whole batch
when one prompt is over `max_model_len` or asks for more logprobs than `max_logprobs`; with a
choice constraint the returned logprobs are the post-mask ones. Its "model" answers like a judge:
a label picked from the prompt by hash. Markers in a prompt: KILLME ends the process (once per
FAKE_VLLM_DIE_ONCE marker file), HANGME never returns; a model name with "broken" fails to load.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from vllm.sampling_params import SamplingParams, StructuredOutputsParams  # noqa: F401

_ENGINE_ARGS = {
    "model",
    "tensor_parallel_size",
    "max_model_len",
    "gpu_memory_utilization",
    "seed",
    "enable_prefix_caching",
    "distributed_executor_backend",
    "revision",
    "dtype",
    "quantization",
    "max_num_batched_tokens",
    "trust_remote_code",
    "max_logprobs",
}
LETTERS = [chr(ord("A") + i) for i in range(18)]
DIGITS = ["0", "1", "2", "3", "4", "5"]


class CharTokenizer:
    """One token per character; labels are single characters, so each is one token."""

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return ([1] if add_special_tokens else []) + [ord(c) for c in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(chr(i) for i in ids if i > 1)

    def apply_chat_template(self, conversation, tokenize=False, add_generation_prompt=True, **kwargs) -> str:
        text = "".join(f"<{m['role']}>{m['content']}" for m in conversation)
        if kwargs.get("enable_thinking") is False:
            text += "<no_think>"
        return text + ("<assistant>" if add_generation_prompt else "")

    def __len__(self) -> int:
        return 0x110000


@dataclass
class Logprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class CompletionOutput:
    text: str
    logprobs: list[dict[int, Logprob]] | None


@dataclass
class RequestOutput:
    outputs: list[CompletionOutput]
    num_cached_tokens: int = 0
    prompt_token_ids: list[int] = field(default_factory=list)


class LLM:
    def __init__(self, **kwargs: Any):
        unknown = set(kwargs) - _ENGINE_ARGS
        if unknown:
            raise TypeError(f"unexpected engine arguments {sorted(unknown)}")
        print(f"fake vllm: loading {kwargs['model']}", flush=True)
        if "broken" in kwargs["model"]:
            print("fake vllm: not enough free memory on the device", file=sys.stderr, flush=True)
            raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB (fake)")
        self.kwargs = kwargs
        self.tokenizer = CharTokenizer()
        self.seen_prefixes: set[str] = set()

    def get_tokenizer(self) -> CharTokenizer:
        return self.tokenizer

    def generate(self, prompts: list[dict], sampling_params: list[SamplingParams], use_tqdm: bool = True):
        for prompt, params in zip(prompts, sampling_params, strict=True):
            # one bad request fails the whole batch, as in vLLM
            if len(prompt["prompt_token_ids"]) + params.max_tokens > self.kwargs["max_model_len"]:
                raise ValueError("The decoder prompt is longer than the maximum model length")
            if (params.logprobs or 0) > self.kwargs.get("max_logprobs", 20):
                raise ValueError(f"Requested sample logprobs of {params.logprobs}, which is greater than max allowed")
        return [self._answer(p["prompt_token_ids"], s) for p, s in zip(prompts, sampling_params, strict=True)]

    def _answer(self, ids: list[int], params: SamplingParams) -> RequestOutput:
        text = self.tokenizer.decode(ids)
        marker = os.environ.get("FAKE_VLLM_DIE_ONCE")
        if "KILLME" in text and marker and not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)
        if "HANGME" in text:
            import time

            time.sleep(3600)
        document = text.split("<document>\n", 1)[-1].split("\n</document>", 1)[0]
        labels = LETTERS if "Which domain" in text else DIGITS
        label = labels[hashlib.sha256(document.encode()).digest()[0] % len(labels)]
        other = labels[(labels.index(label) + 1) % len(labels)]
        top = [(label, 0.7), (" " + other, 0.2), ("zzz", 0.1)]
        allowed = params.structured_outputs.choice if params.structured_outputs else None
        if allowed:  # the grammar mask is applied before logprobs: only allowed tokens, renormalised
            top = [(t, p / 0.9) for t, p in top if t.strip() in allowed]
        prefix = text.split("<document>", 1)[0]
        cached = len(self.tokenizer.encode(prefix, False)) if prefix in self.seen_prefixes else 0
        self.seen_prefixes.add(prefix)
        logprobs = None
        if params.logprobs:
            logprobs = [{1000 + k: Logprob(math.log(p), k + 1, t) for k, (t, p) in enumerate(top[: params.logprobs])}]
        return RequestOutput([CompletionOutput(top[0][0], logprobs)], cached, ids)
