"""One document's text, by kind: clean English, the six-language `non_english` prose, and the
low-quality kinds (spam, boilerplate, repetition, short, symbol soup)."""

from __future__ import annotations

import re

import numpy as np

from pipeline.synth.styles import BLOCKS, LEADING_BLOCKS
from pipeline.synth.vocab import NO_MIX, Mix, Writer, load_data, pick

FOREIGN_LANGUAGES = ("fr", "de", "es", "it", "pt", "nl")
_LOW = load_data("low_quality")
SPAM_LINES: tuple[str, ...] = tuple(_LOW["spam_lines"])
BOILERPLATE_LINES: tuple[str, ...] = tuple(_LOW["boilerplate_lines"])
SYMBOLS: list[str] = list(_LOW["symbols"])
_ARTICLE = re.compile(r"(?<!\S)([Aa]) (?=[aeiou])")
_TITLE_SLOTS = ("N", "A", "E", "C", "K")


def fix_articles(text: str) -> str:
    """'a apple' -> 'an apple': templates say 'a {slot}' whatever word fills the slot."""
    return _ARTICLE.sub(r"\1n ", text)


def paragraphs(rng: np.random.Generator, sentences: list[str]) -> list[str]:
    """Sentences grouped into paragraphs of 2-6."""
    paras = []
    i = 0
    while i < len(sentences):
        n = int(rng.integers(2, 7))
        paras.append(" ".join(sentences[i : i + n]))
        i += n
    return paras


def doc_words(rng: np.random.Generator) -> int:
    """Lognormal length around 330 words: mostly 150-600, a tail to ~1500 (web docs average ~2 KB)."""
    return min(1500, max(90, int(rng.lognormal(5.8, 0.45))))  # e^5.8 ~ 330


def _title(rng: np.random.Generator, writer: Writer, mix: Mix) -> str | None:
    if not writer.style.title:
        return None
    pattern = writer.style.title
    for slot in _TITLE_SLOTS:
        pattern = pattern.replace("{" + slot + "}", "{" + slot.lower() + "}")
    return " ".join(w[0].upper() + w[1:] for w in writer.fill(rng, pattern, mix).split(" "))


def clean_text(rng: np.random.Generator, writer: Writer, dims: dict[str, float], words: int, mix: Mix = NO_MIX) -> str:
    """A clean English document of about `words` words in the writer's domain."""
    sentences = writer.sentences(rng, max(6, words // 12), dims, mix)
    paras = paragraphs(rng, sentences)
    block_name = writer.style.block
    if block_name is not None:
        block = BLOCKS[block_name](rng, lambda t: writer.fill(rng, t, mix), writer.style.pools)
        at = 0 if block_name in LEADING_BLOCKS else int(rng.integers(1, len(paras) + 1))
        paras[at:at] = block
    title = _title(rng, writer, mix)
    if title is not None:
        paras.insert(0, title)
    return "\n\n".join(paras)


def foreign_text(rng: np.random.Generator, language: str) -> str:
    """Everyday prose in one of FOREIGN_LANGUAGES (configs/synth/foreign.yaml), 8-21 sentences."""
    spec = load_data("foreign")["languages"][language]
    pools, templates = spec["pools"], spec["templates"]
    sentences = []
    for _ in range(int(rng.integers(8, 22))):
        s = re.sub(r"\{(\w)\}", lambda m: pick(rng, pools[m.group(1)]), pick(rng, templates))
        sentences.append(s[0].upper() + s[1:])
    return "\n\n".join(paragraphs(rng, sentences))


def spam_text(rng: np.random.Generator, writer: Writer) -> str:
    lines = []
    for _ in range(int(rng.integers(6, 16))):
        line = writer.fill(rng, pick(rng, SPAM_LINES).replace("{N}", "{n}"))
        lines.append(line.upper() if "!!!" in line or "OFFER" in line or "FREE" in line else line)
    # Spam repeats its best line: it is what the repetition filters catch.
    lines.extend([lines[0]] * int(rng.integers(2, 5)))
    order = rng.permutation(len(lines))
    return "\n".join(lines[i] for i in order)


def boilerplate_text(rng: np.random.Generator, writer: Writer) -> str:
    picks = rng.choice(len(BOILERPLATE_LINES), size=int(rng.integers(7, 13)), replace=False)
    lines = [writer.fill(rng, BOILERPLATE_LINES[i]) for i in picks]
    lines.insert(int(rng.integers(1, len(lines))), writer.sentences(rng, 1, {})[0])
    return "\n".join(lines)


def repetition_text(rng: np.random.Generator, writer: Writer, dims: dict[str, float]) -> str:
    paras = paragraphs(rng, writer.sentences(rng, int(rng.integers(4, 9)), dims))[:2]
    repeated = paras * int(rng.integers(3, 7))
    return "\n\n".join(repeated)


def short_text(rng: np.random.Generator, writer: Writer, dims: dict[str, float]) -> str:
    text = " ".join(writer.sentences(rng, 2, dims))
    return " ".join(text.split()[: int(rng.integers(5, 29))]).rstrip(".,!?") + "."


def symbols_text(rng: np.random.Generator, writer: Writer) -> str:
    tokens = []
    for _ in range(int(rng.integers(40, 160))):
        if rng.random() < 0.15:
            tokens.append(writer.fill(rng, "{n}"))
        else:
            junk = "".join(pick(rng, SYMBOLS) for _ in range(int(rng.integers(1, 6))))
            tokens.append(junk + str(int(rng.integers(0, 99))) * int(rng.random() < 0.3))
    lines = [" ".join(tokens[i : i + 12]) for i in range(0, len(tokens), 12)]
    return "\n".join(lines)
