"""What every teacher backend shares: requests, outcomes, the protocol, and reading answers.

The teacher (classifiers/teacher.py) and every backend import this module; no backend imports the
teacher and the teacher reaches backends only through the registry (`classifiers.backends`), so
there is no import loop.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
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
class TeacherError:
    kind: str  # one of ERROR_KINDS
    message: str


Outcome = dict[str, float] | TeacherError


class Backend(Protocol):
    model: str  # part of the cache key

    def ask(self, requests: Sequence[Request], mode: str) -> list[Outcome]: ...


def distribution_from_logprobs(top: Mapping[str, float], labels: Sequence[str]) -> dict[str, float] | None:
    """Top-k next-token logprobs -> probabilities over `labels`, renormalised (WebOrganizer).

    Tokens are compared stripped, so "A" and " A" (with or without the BPE space) add up. Labels
    missing from the top-k get 0. None when no label is among the top-k: the answer is unparseable.
    """
    mass: dict[str, float] = {}
    for token, logprob in top.items():
        label = token.strip()
        if label in labels and math.isfinite(logprob):
            mass[label] = mass.get(label, 0.0) + math.exp(logprob)
    total = sum(mass.values())
    if total <= 0:
        return None
    return {label: mass[label] / total for label in labels if label in mass}


_FINAL_ANSWER = re.compile(r"answer\s*[:=]\s*\**\s*([A-Za-z0-9])\b", re.IGNORECASE)


def parse_generated(text: str, labels: Sequence[str]) -> dict[str, float] | None:
    """Generate mode: the last 'Answer: X' line decides; anything else is unparseable."""
    found = _FINAL_ANSWER.findall(text)
    if not found:
        return None
    answer = found[-1].upper()
    return {answer: 1.0} if answer in labels else None
