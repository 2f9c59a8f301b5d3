"""synthbench: the synthetic benchmark (configs/synth/synthbench.yaml), its decontamination spec,
and planting its items into corpus documents, verbatim or word-edited."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.synth.neardup import edit_words
from pipeline.synth.vocab import load_data, pick

BENCHMARK_NAME = "synthbench"
BENCHMARK_SEED = 20240611  # fixed: the committed configs/benchmarks/synthbench.jsonl must not depend on the corpus seed
BENCHMARK_ITEMS = 200
PLANT_EDIT_RATES = (0.0, 0.0, 0.1, 0.2)  # half verbatim


def _coined(rng: np.random.Generator, parts: int = 3) -> str:
    return "".join(pick(rng, load_data("synthbench")["syllables"]) for _ in range(parts)).capitalize()


def _derived(rng: np.random.Generator, kind: str, a: int, b: int, c: int) -> dict[str, Any]:
    """The numbers and names an item of `kind` states besides place, person, thing, a, b and c."""
    if kind == "crates":
        sold = 1 + c % (a * b - 1)  # fewer than were packed
        return {"sold": sold, "packed": a * b, "left": a * b - sold}
    if kind == "river":
        return {"year": 1800 + a * 2, "km": b * 10}
    if kind == "element":
        return {"number": a + b, "colour": pick(rng, load_data("synthbench")["colours"])}
    if kind == "treaty":
        return {"year": 1600 + a * 7, "city1": _coined(rng), "city2": _coined(rng)}
    if kind == "train":
        speed, hours = b * 5, c % 6 + 2
        return {"hour": a % 12 + 1, "speed": speed, "hours": hours, "distance": speed * hours}
    if kind == "recipe":
        return {"spoons": a % 9 + 2}
    if kind == "orbit":
        return {"days": a + b + c}
    if kind == "garden":
        return {"year": 1900 + a + b, "times": c % 5 + 2}
    raise ValueError(f"configs/synth/synthbench.yaml: unknown item kind {kind!r}")


def benchmark_items() -> list[dict[str, str]]:
    """The synthbench items (id, question, answer), from a fixed seed: the same on every call."""
    templates = load_data("synthbench")["items"]
    kinds = list(templates)
    rng = np.random.default_rng(BENCHMARK_SEED)
    items = []
    for i in range(BENCHMARK_ITEMS):
        kind = kinds[i % len(kinds)]
        place, person, thing = _coined(rng), f"{_coined(rng, 2)} {_coined(rng)}", _coined(rng, 2)
        a, b, c = (int(x) for x in rng.integers(3, 40, size=3))
        fields = {
            "place": place,
            "person": person,
            "thing": thing,
            "a": a,
            "b": b,
            "c": c,
            **_derived(rng, kind, a, b, c),
        }
        items.append(
            {
                "id": f"{BENCHMARK_NAME}-{i:03d}",
                "question": templates[kind]["question"].format(**fields),
                "answer": templates[kind]["answer"].format(**fields),
            }
        )
    return items


def write_benchmark(path: Path) -> None:
    """Write benchmark_items() as JSONL (how configs/benchmarks/synthbench.jsonl is made)."""
    with open(path, "w") as fh:
        fh.writelines(json.dumps(item, ensure_ascii=False) + "\n" for item in benchmark_items())


def benchmark_spec(path: str) -> str:
    """The decontamination spec (YAML) for synthbench stored at `path`, relative to the spec's folder."""
    return (
        f"benchmarks:\n  - {{name: {BENCHMARK_NAME}, path: {path}, fields: [question, answer], id: id, preset: null}}\n"
    )


def plant(
    rng: np.random.Generator, text: str, items: list[dict[str, str]], pool: list[str]
) -> tuple[str, list[dict[str, Any]]]:
    """Insert one benchmark item as a paragraph (not before the title), verbatim or word-edited."""
    item = items[int(rng.integers(len(items)))]
    rate = PLANT_EDIT_RATES[int(rng.integers(len(PLANT_EDIT_RATES)))]
    paragraph = edit_words(rng, f"{item['question']} {item['answer']}", rate, pool)
    paras = text.split("\n\n")
    at = int(rng.integers(1, len(paras) + 1))
    paras.insert(at, paragraph)
    return "\n\n".join(paras), [{"benchmark": BENCHMARK_NAME, "item_id": item["id"], "edit_rate": rate}]
