"""Ground-truth quality scores and the noisy teacher labels of annotations.jsonl."""

from __future__ import annotations

from typing import Any

import numpy as np

from classifiers.taxonomy import Rubric
from pipeline.synth.vocab import pick

TEACHER_DOMAIN_ERROR = 0.1
TEACHER_SCORE_JITTER = 0.5
# Where the low-quality kinds sit on the 0-5 scale (writing quality is 0.3 higher).
LOW_FLOOR = {"spam": 0.2, "symbols": 0.0, "boilerplate": 0.4, "repetition": 0.9, "short": 1.0}


def _clip5(value: float) -> float:
    return min(5.0, max(0.0, value))  # scalar: np.clip costs ~5 us per call


def quality_dims(rng: np.random.Generator, edu_prior: float, kind: str, rubric: Rubric) -> dict[str, float]:
    """True 0-5 scores. Clean docs: a per-doc latent z moves all dimensions together around the
    domain's educational prior; low-quality kinds sit near the bottom. Unknown dimensions follow
    writing quality."""
    if kind in ("clean", "non_english"):
        z = rng.normal(0.0, 0.9)
        base = {
            "educational_value": edu_prior + z,
            "writing_quality": 3.2 + 0.6 * z,
            "information_density": 2.9 + 0.7 * z,
        }
        spread = 0.35
    else:
        floor = LOW_FLOOR[kind]
        base = {"educational_value": floor, "writing_quality": floor + 0.3, "information_density": floor}
        spread = 0.2
    noise = rng.normal(0.0, spread, size=len(rubric.ids))
    return {d: round(_clip5(base.get(d, base["writing_quality"]) + float(e)), 2) for d, e in zip(rubric.ids, noise)}


def teacher_labels(
    rng: np.random.Generator,
    doc_id: str,
    domain: str,
    dims: dict[str, float],
    domains: list[str],
    confusable: str | None,
) -> dict[str, Any]:
    """What an LLM teacher would answer: the true domain, replaced with probability 0.1 by a plausible
    wrong one (`confusable`, else a random other domain), and every score shifted by uniform noise in
    [-0.5, 0.5] (clipped to 0-5, 2 decimals)."""
    label = domain
    if rng.random() < TEACHER_DOMAIN_ERROR:
        label = (
            confusable
            if confusable in domains and confusable != domain
            else pick(rng, [d for d in domains if d != domain])
        )
    jitter = rng.uniform(-TEACHER_SCORE_JITTER, TEACHER_SCORE_JITTER, size=len(dims))
    noisy = {d: round(_clip5(s + float(j)), 2) for (d, s), j in zip(dims.items(), jitter)}
    return {"id": doc_id, "domain": label, **noisy}
