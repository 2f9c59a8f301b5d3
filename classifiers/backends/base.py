"""What every teacher backend shares: requests, outcomes, the protocol, and reading answers.

The teacher (classifiers/teacher.py) and every backend import this module; no backend imports the
teacher and the teacher reaches backends only through the registry (`classifiers.backends`), so
there is no import loop.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from classifiers.prompts import Messages, Question

ERROR_KINDS = ("timeout", "server_error", "unparseable", "too_long")


@dataclass(frozen=True)
class Request:
    doc_key: int
    question: Question
    messages: Messages


@dataclass(frozen=True)
class Answer:
    """One parsed answer: probabilities over the question's labels, and what it cost."""

    probs: dict[str, float]  # renormalised over the labels present
    # Probability the model put on any label (both spellings) before renormalising; None when the
    # backend cannot know (generate mode, or a reply without top logprobs).
    mass: float | None = None
    prompt_tokens: int = 0
    cached_tokens: int | None = None  # prefix-cache hits, when the server reports them


@dataclass(frozen=True)
class TeacherError:
    kind: str  # one of ERROR_KINDS
    message: str


Outcome = Answer | TeacherError


class Backend(Protocol):
    model: str

    def ask(self, requests: Sequence[Request], mode: str) -> Iterator[tuple[int, Outcome]]:
        """(index in `requests`, outcome) pairs, in any order, as answers arrive; every index once."""
        ...

    def close(self) -> None:
        """Release engines, connections and GPUs; the backend is not used afterwards."""
        ...


def label_mass(top: Mapping[str, float], labels: Sequence[str]) -> dict[str, float]:
    """Top-k next-token logprobs -> probability per label, adding "A" and " A" (BPE spellings)."""
    mass: dict[str, float] = {}
    for token, logprob in top.items():
        label = token.strip()
        if label in labels and math.isfinite(logprob):
            mass[label] = mass.get(label, 0.0) + math.exp(logprob)
    return mass


def distribution_from_logprobs(top: Mapping[str, float], labels: Sequence[str]) -> dict[str, float] | None:
    """Top-k next-token logprobs -> probabilities over `labels`, renormalised (WebOrganizer).

    Labels missing from the top-k get 0. None when no label is among the top-k: unparseable.
    """
    mass = label_mass(top, labels)
    total = sum(mass.values())
    if total <= 0:
        return None
    return {label: mass[label] / total for label in labels if label in mass}


def answer_from_logprobs(
    top: Mapping[str, float], labels: Sequence[str], prompt_tokens: int = 0, cached_tokens: int | None = None
) -> Outcome:
    """An Answer carrying its label mass, or `unparseable` when no label is in the top-k."""
    mass = label_mass(top, labels)
    total = sum(mass.values())
    if total <= 0:
        shown = ", ".join(f"{t!r}" for t in list(top)[:5])
        return TeacherError("unparseable", f"no label among the top {len(top)} tokens ({shown})")
    probs = {label: mass[label] / total for label in labels if label in mass}
    return Answer(probs, min(total, 1.0), prompt_tokens, cached_tokens)


_FINAL_ANSWER = re.compile(r"answer\s*[:=]\s*\**\s*([A-Za-z0-9])\b", re.IGNORECASE)


def parse_generated(text: str, labels: Sequence[str]) -> dict[str, float] | None:
    """Generate mode: the last 'Answer: X' line decides; anything else is unparseable."""
    found = _FINAL_ANSWER.findall(text)
    if not found:
        return None
    answer = found[-1].upper()
    return {answer: 1.0} if answer in labels else None


def answer_from_text(
    text: str, labels: Sequence[str], prompt_tokens: int = 0, cached_tokens: int | None = None
) -> Outcome:
    """Generate mode: the final 'Answer: X', or the whole reply when it is just a label."""
    dist = parse_generated(text, labels)
    if dist is None and text.strip() in labels:
        dist = {text.strip(): 1.0}
    if dist is None:
        return TeacherError("unparseable", f"no final answer in {text[-120:]!r}")
    return Answer(dist, None, prompt_tokens, cached_tokens)


class LabelNotSingleToken(ValueError):
    """A label the model's tokenizer cannot spell with one token: it would get probability 0."""


def single_token_labels(encode: object, labels: Sequence[str]) -> dict[str, list[int]]:
    """Token ids that spell each label alone, with and without a leading space.

    `encode(text) -> list[int]` is the engine's own tokenizer (no special tokens). A label that is
    one token in neither spelling would silently get probability 0, so it raises LabelNotSingleToken.
    """
    ids: dict[str, list[int]] = {}
    for label in labels:
        variants = {tuple(encode(s)) for s in (label, " " + label)}  # type: ignore[operator]
        single = sorted(v[0] for v in variants if len(v) == 1)
        if not single:
            raise LabelNotSingleToken(f"the model's tokenizer has no single token for the label {label!r}")
        ids[label] = single
    return ids
