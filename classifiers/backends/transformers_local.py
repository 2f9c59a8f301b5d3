"""The `transformers` backend: a local causal LM on CPU or GPU, small models and tests.

logprobs mode reads the full next-token distribution after the prompt: the label tokens' share of
it is the exact label mass, and renormalised over the labels it is the answer. generate mode
decodes greedily and parses.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from classifiers.backends.base import (
    Answer,
    Outcome,
    Request,
    TeacherError,
    answer_from_text,
    single_token_labels,
)
from classifiers.prompts import Messages, plain_prompt
from pipeline.errors import ConfigError


def label_token_ids(tokenizer: Any, labels: Sequence[str]) -> dict[str, list[int]]:
    """Token ids that spell each label alone, with and without a leading space (BPE has both)."""
    try:
        return single_token_labels(lambda text: tokenizer.encode(text, add_special_tokens=False), labels)
    except ValueError as exc:
        raise ConfigError(f"teacher.model: {exc}; edit the taxonomy letters or the rubric") from None


class TransformersBackend:
    def __init__(
        self,
        model: str,
        device: str = "auto",
        batch_size: int = 8,
        generate_max_tokens: int = 256,
        revision: str | None = None,
        chat_template_kwargs: dict[str, Any] | None = None,
    ):
        self.model = model
        self.device = device
        self.batch_size = batch_size
        self.generate_max_tokens = generate_max_tokens
        self.revision = revision
        self.chat_template_kwargs = chat_template_kwargs or {}
        self._lm: Any = None
        self._tokenizer: Any = None
        self._label_ids: dict[tuple[str, ...], dict[str, list[int]]] = {}

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = self.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        tokenizer = AutoTokenizer.from_pretrained(self.model, revision=self.revision)
        tokenizer.padding_side = "left"  # the last position is then the next-token position for every row
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        self._tokenizer = tokenizer
        self._lm = AutoModelForCausalLM.from_pretrained(self.model, revision=self.revision).to(device).eval()

    def _prompt(self, conversation: Messages) -> str:
        if getattr(self._tokenizer, "chat_template", None):
            return self._tokenizer.apply_chat_template(
                conversation, tokenize=False, add_generation_prompt=True, **self.chat_template_kwargs
            )
        return plain_prompt(conversation)

    def _max_positions(self) -> int:
        config = self._lm.config
        return int(getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", 1 << 30))

    def ask(self, requests: Sequence[Request], mode: str) -> Iterator[tuple[int, Outcome]]:
        import torch

        if self._lm is None:
            self._load()
            for labels in {r.question.labels for r in requests}:  # at start-up, not after the first batch
                self._label_ids[labels] = label_token_ids(self._tokenizer, labels)
        tokenizer, limit = self._tokenizer, self._max_positions()
        encoded = [tokenizer(self._prompt(r.messages), add_special_tokens=False)["input_ids"] for r in requests]
        room = self.generate_max_tokens if mode == "generate" else 1
        fits = []
        for i, ids in enumerate(encoded):
            if len(ids) + room > limit:
                yield i, TeacherError("too_long", f"{len(ids)} prompt tokens > {limit - room}: lower max_chars")
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
                yield i, result

    def close(self) -> None:
        self._lm = self._tokenizer = None

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
            probs = {label: float(row[ids].logsumexp(0).exp()) for label, ids in self._label_ids[labels].items()}
            mass = sum(probs.values())
            if mass <= 0:
                results.append(TeacherError("unparseable", "all label logprobs are -inf"))
                continue
            tokens = int(inputs["attention_mask"][len(results)].sum())
            results.append(Answer({k: v / mass for k, v in probs.items() if v > 0}, mass, tokens, 0))
        return results

    def _generate(self, inputs: Any, requests: Sequence[Request]) -> list[Outcome]:
        output = self._lm.generate(
            **inputs,
            max_new_tokens=self.generate_max_tokens,
            do_sample=False,
            pad_token_id=self._tokenizer.pad_token_id,
        )
        texts = self._tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        tokens = inputs["attention_mask"].sum(-1).tolist()
        return [answer_from_text(t, r.question.labels, int(n), 0) for t, r, n in zip(texts, requests, tokens)]
