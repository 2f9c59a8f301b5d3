"""What the teacher produced: labels, counted failures, throughput, label mass, letter bias; and its cache."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xxhash

from classifiers.backends.base import Answer, TeacherError

_MESSAGES_PER_KIND = 3  # first messages kept per error kind: enough to diagnose, small report


@dataclass
class Annotations:
    labels: dict[int, dict[str, Any]]  # uid -> {"id", "domain", "domain_prob(s)", "quality_<dim>", "quality"}
    errors: Counter = field(default_factory=Counter)  # "<kind>" and "<question>:<kind>" -> count
    first_errors: dict[str, list[str]] = field(default_factory=dict)
    retried: dict[str, int] = field(default_factory=dict)  # failed attempts asked again, by kind
    asked: int = 0  # requests sent to the backend
    cached: int = 0  # requests answered from the cache
    seconds: float = 0.0  # wall time of the backend's answers (start-up included)
    prompt_tokens: int = 0
    cached_tokens: int | None = None  # None: the backend never reported prefix-cache hits
    masses: list[float] = field(default_factory=list)  # label mass of each fresh logprobs answer
    min_label_mass: float = 0.0
    low_mass: int = 0  # answers refused (counted unparseable) for a label mass under the threshold
    gpus: int | None = None
    letter_bias: dict[str, Any] = field(default_factory=dict)

    def count_error(self, question: str, error: TeacherError) -> None:
        self.errors[error.kind] += 1
        self.errors[f"{question}:{error.kind}"] += 1
        kept = self.first_errors.setdefault(error.kind, [])
        if len(kept) < _MESSAGES_PER_KIND:
            kept.append(error.message[:300])

    def count_answer(self, answer: Answer) -> None:
        self.prompt_tokens += answer.prompt_tokens
        if answer.cached_tokens is not None:
            self.cached_tokens = (self.cached_tokens or 0) + answer.cached_tokens
        if answer.mass is not None:
            self.masses.append(answer.mass)

    def failed(self) -> int:
        """Failures that say the server or the prompt is broken (a too-long document says neither)."""
        return sum(self.errors[k] for k in ("timeout", "server_error", "unparseable"))

    def throughput(self) -> dict[str, Any]:
        seconds = max(self.seconds, 1e-9)
        uncached = self.prompt_tokens - (self.cached_tokens or 0)
        hits = self.cached_tokens
        report: dict[str, Any] = {
            "seconds": round(self.seconds, 3),
            "requests_per_s": round(self.asked / seconds, 2) if self.asked else None,
            "prompt_tokens": self.prompt_tokens,
            "prompt_tokens_per_s": round(self.prompt_tokens / seconds, 1) if self.prompt_tokens else None,
            # what the GPUs actually prefilled: the figure `mixwright plan` scales with
            "uncached_prompt_tokens_per_s": round(uncached / seconds, 1) if self.prompt_tokens else None,
            "prefix_cache_hit_share": (
                round(hits / self.prompt_tokens, 4) if hits is not None and self.prompt_tokens else None
            ),
            "gpus": self.gpus,
        }
        return report

    def mass_report(self) -> dict[str, Any]:
        if not self.masses:
            return {"measured": 0, "threshold": self.min_label_mass}
        values = np.asarray(self.masses)
        return {
            "measured": len(values),
            "mean": round(float(values.mean()), 4),
            "p10": round(float(np.quantile(values, 0.1)), 4),
            "min": round(float(values.min()), 4),
            "threshold": self.min_label_mass,
            "below_threshold": self.low_mass,
        }

    def summary_line(self) -> str:
        """One terminal line: what the backend did, how fast, and whether its answers look healthy."""
        t, mass = self.throughput(), self.mass_report()
        parts = [f"{self.asked:,} requests in {t['seconds']:,.0f} s"]
        if t["requests_per_s"]:
            parts.append(f"{t['requests_per_s']:,.1f} req/s")
        if t["prompt_tokens_per_s"]:
            parts.append(f"{t['prompt_tokens_per_s']:,.0f} prompt tok/s")
        if t["prefix_cache_hit_share"] is not None:
            parts.append(f"prefix cache {t['prefix_cache_hit_share']:.0%}")
        if mass["measured"]:
            parts.append(f"label mass {mass['mean']:.2f} (p10 {mass['p10']:.2f})")
        return ", ".join(parts) + f", {self.failed()} failed"

    def report(self) -> dict[str, Any]:
        complete = sum(1 for r in self.labels.values() if "quality" in r and "domain" in r)
        return {
            "documents": len(self.labels),
            "complete": complete,
            "asked": self.asked,
            "cached": self.cached,
            "errors": dict(sorted(self.errors.items())),
            "first_errors": self.first_errors,
            "retried": dict(sorted(self.retried.items())),
            "throughput": self.throughput(),
            "label_mass": self.mass_report(),
            "letter_bias": self.letter_bias,
        }


def letter_bias(
    answers: Iterable[tuple[Mapping[str, float], Mapping[str, str]]], orders: Sequence[Mapping[str, str]]
) -> dict[str, Any]:
    """How much more probability each letter gets than the domains it stood for warrant.

    `answers`: (probability per letter, that document's letter -> domain map). Observed mass of a
    letter is compared with the mass the same documents give, on average over all the orders, to
    the domain the letter would stand for: 1.0 is no bias, 1.3 is a letter picked 30% too often.
    With one order the two are equal by construction, so no figure is reported.
    """
    if len(orders) < 2:
        return {"orders": len(orders), "by_letter": None}
    observed: Counter = Counter()
    expected: Counter = Counter()
    documents = 0
    for by_letter, letters in answers:
        documents += 1
        by_domain = {letters[letter]: p for letter, p in by_letter.items()}
        for letter in letters:
            observed[letter] += by_letter.get(letter, 0.0)
            expected[letter] += sum(by_domain.get(order[letter], 0.0) for order in orders) / len(orders)
    ratios = {letter: round(observed[letter] / expected[letter], 3) for letter in sorted(expected) if expected[letter]}
    return {"orders": len(orders), "documents": documents, "by_letter": ratios}


class AnnotationCache:
    """Answers keyed by (text hash, prompt hash), one append-only JSONL file per teacher identity.

    The identity holds everything outside the prompt that changes an answer (backend, model and
    revision, rendering, chat-template options, constraint). Only parsed answers are stored:
    failures are asked again on the next run.
    """

    def __init__(self, cache_dir: str | Path, identity: str, model: str):
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("_") or "model"
        self.path = Path(cache_dir) / f"{slug}-{xxhash.xxh64_hexdigest(identity)}.jsonl"
        self._answers: dict[tuple[str, str], Answer] = {}
        self._pending: list[str] = []
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    item = json.loads(line)
                except json.JSONDecodeError:  # a line cut by a killed run
                    continue
                self._answers[(item["text"], item["prompt"])] = Answer(item["probs"], item.get("mass"))

    def get(self, text: str, prompt: str) -> Answer | None:
        return self._answers.get((text, prompt))

    def put(self, text: str, prompt: str, answer: Answer) -> None:
        self._answers[(text, prompt)] = answer
        item = {"text": text, "prompt": prompt, "probs": answer.probs, "mass": answer.mass}
        self._pending.append(json.dumps(item, sort_keys=True))

    def flush(self) -> None:
        if self._pending:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as fh:
                fh.write("\n".join(self._pending) + "\n")
            self._pending = []

    def __len__(self) -> int:
        return len(self._answers)


class Progress:
    """One line per tenth of the requests, through `emit` (the runner's console)."""

    def __init__(self, total: int, emit: Any):
        self.total, self.emit = total, emit
        self.step = max(1, total // 10)
        self.started = time.perf_counter()

    def update(self, done: int, annotations: Annotations) -> None:
        if self.emit is None or (done % self.step and done != self.total):
            return
        seconds = max(time.perf_counter() - self.started, 1e-9)
        self.emit(
            f"{done:,}/{self.total:,} requests, {done / seconds:,.1f} req/s, "
            f"{annotations.prompt_tokens / seconds:,.0f} prompt tok/s, {annotations.failed()} failed"
        )
