"""Non-English documents for per-language filtering tests: `generate_multilingual` writes
`multilingual.jsonl` (`{"id", "text", "lang"}`, `lang` the ground truth, an ISO 639-1 code).

Each language is a data file, configs/synth/languages/<code>.yaml: sentence templates written in
the language, with its function words in place, and slot pools of whole phrases (subjects, objects,
places, times, verb phrases...), so that no template needs agreement rules. Its other keys:
`sentence_join` (" ", or "" for Chinese and Japanese, which write no spaces) and `cased` (upper-case
each sentence's first letter). A document has 8 to 26 sentences (lognormal around 20, never more
than the language has templates), in paragraphs of 3-5 sentences, one paragraph per line. Within a
document no template repeats and no pool entry repeats before its pool is used up: real text
repeats few phrases, and Gopher's repetition filter counts duplicated n-grams.

Unlike the six-language `non_english` kind of the main corpus, these documents are meant to pass
FineWeb-2's per-language filters (its stop words, word lengths and repetition thresholds, with
datatrove's per-language word tokenizers) as real text does, and to be identified by lid.176.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.synth.vocab import SYNTH_DIR, compile_template, load_data

LANGUAGES_DIR = SYNTH_DIR / "languages"
MIN_SENTENCES = 8  # per document; at most one per template
MEDIAN_SENTENCES = 20
PARAGRAPH_SENTENCES = (3, 5)  # inclusive


def multilingual_languages() -> tuple[str, ...]:
    """The language codes that have a data file, sorted."""
    return tuple(sorted(p.stem for p in LANGUAGES_DIR.glob("*.yaml")))


def _spec(language: str) -> dict[str, Any]:
    if not (LANGUAGES_DIR / f"{language}.yaml").is_file():
        raise ValueError(f"no synthetic text for language {language!r}; known: {', '.join(multilingual_languages())}")
    return load_data(f"languages/{language}")


class _Deck:
    """Draws from each list without replacement, reshuffling when it runs out: within a document a
    phrase recurs only after its whole pool has been used."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.order: dict[str, list[int]] = {}

    def draw(self, name: str, items: list[str]) -> str:
        order = self.order.get(name)
        if not order:
            order = self.order[name] = self.rng.permutation(len(items)).tolist()
        return items[order.pop()]


def multilingual_text(rng: np.random.Generator, language: str) -> str:
    """One document in `language` (a code with a data file in configs/synth/languages/)."""
    spec = _spec(language)
    pools, templates = spec["pools"], spec["templates"]
    deck = _Deck(rng)
    # No template twice in a document: its fixed words would be duplicated n-grams.
    count = min(len(templates), max(MIN_SENTENCES, int(rng.lognormal(np.log(MEDIAN_SENTENCES), 0.3))))
    sentences = []
    for _ in range(count):
        fmt, slots = compile_template(deck.draw("", templates))
        s = fmt.format(*(deck.draw(slot, pools[slot]) for slot in slots))
        sentences.append(s[0].upper() + s[1:] if spec["cased"] else s)
    lines = []
    i = 0
    while i < len(sentences):
        n = int(rng.integers(PARAGRAPH_SENTENCES[0], PARAGRAPH_SENTENCES[1] + 1))
        lines.append(spec["sentence_join"].join(sentences[i : i + n]))
        i += n
    return "\n".join(lines)


def generate_multilingual(
    output_dir: Path, docs_per_language: int, languages: Sequence[str] | None = None, seed: int = 0
) -> dict[str, int]:
    """Write `docs_per_language` documents per language into `output_dir/multilingual.jsonl`, with
    ids `<lang>-<n>`; return the count per language. Each language draws from its own generator,
    seeded with (seed, the language), so adding a language leaves the others' documents as they were."""
    if docs_per_language < 1:
        raise ValueError(f"docs_per_language must be at least 1, got {docs_per_language}")
    languages = list(languages) if languages is not None else list(multilingual_languages())
    for language in languages:
        _spec(language)  # an unknown language fails before anything is written
    output_dir.mkdir(parents=True, exist_ok=True)
    width = len(str(docs_per_language))
    with open(output_dir / "multilingual.jsonl", "w", encoding="utf-8") as out:
        for language in languages:
            rng = np.random.default_rng([seed, 2, zlib.crc32(language.encode())])
            for i in range(docs_per_language):
                doc = {"id": f"{language}-{i:0{width}d}", "text": multilingual_text(rng, language), "lang": language}
                out.write(json.dumps(doc, ensure_ascii=False) + "\n")
    return {language: docs_per_language for language in languages}
