"""The `transformers` backend: a local causal LM on CPU or GPU, small models and tests.

logprobs mode reads the next-token logits after the prompt and keeps only the label tokens, so
every answer is a valid label by construction. generate mode decodes greedily and parses.
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
from classifiers.prompts import Messages, plain_prompt
from pipeline.errors import ConfigError


def label_token_ids(tokenizer: Any, labels: Sequence[str]) -> dict[str, list[int]]:
    """Token ids that spell each label, with and without a leading space (BPE vocabularies have both).

    A label must be one token in at least one spelling, or logprobs mode cannot read it.
    """
    ids: dict[str, list[int]] = {}
    for label in labels:
        variants = {tuple(tokenizer.encode(s, add_special_tokens=False)) for s in (label, " " + label)}
        single = sorted(v[0] for v in variants if len(v) == 1)
        if not single:
            raise ConfigError(f"teacher.model's tokenizer has no single token for the label {label!r}")
        ids[label] = single
    return ids


class TransformersBackend:
    def __init__(self, model: str, device: str = "auto", batch_size: int = 8, generate_max_tokens: int = 256):
        self.model = model
        self.device = device
        self.batch_size = batch_size
        self.generate_max_tokens = generate_max_tokens
        self._lm: Any = None
        self._tokenizer: Any = None
        self._label_ids: dict[tuple[str, ...], dict[str, list[int]]] = {}

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = self.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        tokenizer = AutoTokenizer.from_pretrained(self.model)
        tokenizer.padding_side = "left"  # the last position is then the next-token position for every row
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        self._tokenizer = tokenizer
        self._lm = AutoModelForCausalLM.from_pretrained(self.model).to(device).eval()

    def _prompt(self, conversation: Messages) -> str:
        if getattr(self._tokenizer, "chat_template", None):
            return self._tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
        return plain_prompt(conversation)

    def _max_positions(self) -> int:
        config = self._lm.config
        return int(getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", 1 << 30))

    def ask(self, requests: Sequence[Request], mode: str) -> list[Outcome]:
        import torch

        if self._lm is None:
            self._load()
        tokenizer, limit = self._tokenizer, self._max_positions()
        encoded = [tokenizer(self._prompt(r.messages), add_special_tokens=False)["input_ids"] for r in requests]
        outcomes: list[Outcome | None] = [None] * len(requests)
        room = self.generate_max_tokens if mode == "generate" else 1
        fits = []
        for i, ids in enumerate(encoded):
            if len(ids) + room > limit:
                outcomes[i] = TeacherError("too_long", f"{len(ids)} prompt tokens > {limit - room}: lower max_chars")
            else:
                fits.append(i)
        fits.sort(key=lambda i: len(encoded[i]))  # similar lengths together: less padding
        for start in range(0, len(fits), self.batch_size):
            batch = fits[start : start + self.batch_size]
            inputs = tokenizer.pad({"input_ids": [encoded[i] for i in batch]}, return_tensors="pt").to(self._lm.device)
            with torch.inference_mode():
                if mode == "generate":
                    results = self._generate(inputs, [requests[i] for i in batch])
                else:
                    results = self._logprobs(inputs, [requests[i] for i in batch])
            for i, result in zip(batch, results, strict=True):
                outcomes[i] = result
        return outcomes  # type: ignore[return-value]

    def _logprobs(self, inputs: Any, requests: Sequence[Request]) -> list[Outcome]:
        # Left padding shifts positions unless they are given: GPT-2-style models would otherwise
        # score a padded row differently from the same prompt alone (caught by the tests).
        positions = (inputs["attention_mask"].cumsum(-1) - 1).clamp(min=0)
        logits = self._lm(**inputs, position_ids=positions).logits
        logprobs = logits[:, -1, :].float().log_softmax(-1).cpu()
        results: list[Outcome] = []
        for row, request in zip(logprobs, requests):
            labels = request.question.labels
            if labels not in self._label_ids:
                self._label_ids[labels] = label_token_ids(self._tokenizer, labels)
            top = {label: float(row[ids].logsumexp(0)) for label, ids in self._label_ids[labels].items()}
            dist = distribution_from_logprobs(top, request.question.labels)
            results.append(dist if dist is not None else TeacherError("unparseable", "all label logprobs are -inf"))
        return results

    def _generate(self, inputs: Any, requests: Sequence[Request]) -> list[Outcome]:
        output = self._lm.generate(
            **inputs, max_new_tokens=self.generate_max_tokens, do_sample=False,
            pad_token_id=self._tokenizer.pad_token_id,
        )
        texts = self._tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        results: list[Outcome] = []
        for text, request in zip(texts, requests):
            dist = parse_generated(text, request.question.labels)
            results.append(dist if dist is not None else TeacherError("unparseable", f"no final answer in {text[-120:]!r}"))
        return results
