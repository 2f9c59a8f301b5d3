"""`vllm.sampling_params` of the fake vllm: the two classes the teacher builds."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class StructuredOutputsParams:
    choice: list[str] | None = None


@dataclass
class SamplingParams:
    max_tokens: int = 16
    temperature: float = 1.0
    logprobs: int | None = None
    structured_outputs: StructuredOutputsParams | None = None
