"""Tokenizers for decontamination: the exact `words` definition, or a local Hugging Face tokenizer.json.

`words` is a documented definition, so that an audit can be reproduced by anyone: the tokens of a
text are the regex `\\w+` runs (Python `re`, Unicode word characters) of `NFKC(text).lower()`.

Both tokenizers give `tokens(text)` (the hot path: no offsets) and `spans(text)`, the character
span of every token in the *original* text, computed only for documents that matched.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Hashable
from pathlib import Path
from typing import Protocol

from pipeline.config import resolve_path
from pipeline.errors import ConfigError

WORDS = "words"
_WORD = re.compile(r"\w+")
_CHUNK = re.compile(r"\s+|\S+")


class Tokenizer(Protocol):
    name: str

    def tokens(self, text: str) -> list[Hashable]: ...

    def spans(self, text: str) -> list[tuple[int, int]]: ...


def _normalize(text: str) -> str:
    # NFKC is the identity on ASCII, and str.isascii() is O(1) in CPython: most web text skips it.
    return (text if text.isascii() else unicodedata.normalize("NFKC", text)).lower()


class WordTokenizer:
    """`\\w+` runs of NFKC(text).lower()."""

    name = WORDS

    def tokens(self, text: str) -> list[str]:
        return _WORD.findall(_normalize(text))

    def spans(self, text: str) -> list[tuple[int, int]]:
        if text.isascii():
            return [m.span() for m in _WORD.finditer(text)]
        # NFKC and lower() never act across whitespace (no composition, reordering or final-sigma
        # context crosses it), so each whitespace-free chunk normalizes on its own.
        spans: list[tuple[int, int]] = []
        for chunk in _CHUNK.finditer(text):
            piece, offset = chunk.group(), chunk.start()
            if piece.isascii():
                spans.extend((offset + m.start(), offset + m.end()) for m in _WORD.finditer(piece))
            elif not piece.isspace():
                spans.extend(_chunk_spans(piece, offset))
        return spans


def _chunk_spans(chunk: str, offset: int) -> list[tuple[int, int]]:
    """Spans in the original text of the tokens of one whitespace-free chunk."""
    norm = _normalize(chunk)
    # Map normalized positions back through segments (a character and its combining marks); if
    # normalizing segment by segment differs from the whole chunk (Hangul jamo and a few scripts
    # compose starters), every token of the chunk gets the chunk's span.
    starts = [i for i, ch in enumerate(chunk) if i == 0 or not unicodedata.combining(ch)]
    segments = list(zip(starts, starts[1:] + [len(chunk)]))
    pieces = [_normalize(chunk[a:b]) for a, b in segments]
    if "".join(pieces) != norm:
        return [(offset, offset + len(chunk))] * len(_WORD.findall(norm))
    origin: list[tuple[int, int]] = []  # normalized char index -> original segment span
    for (a, b), piece in zip(segments, pieces):
        origin.extend([(offset + a, offset + b)] * len(piece))
    return [(origin[m.start()][0], origin[m.end() - 1][1]) for m in _WORD.finditer(norm)]


class HFTokenizer:
    """A Hugging Face `tokenizers` model from a local tokenizer.json; tokens are its ids."""

    def __init__(self, path: Path):
        from tokenizers import Tokenizer as _HF

        self.name = str(path)
        self._model = _HF.from_file(str(path))
        # A tokenizer.json may carry truncation or padding settings; both would change the rule.
        self._model.no_truncation()
        self._model.no_padding()

    def tokens(self, text: str) -> list[int]:
        return self._model.encode(text, add_special_tokens=False).ids

    def spans(self, text: str) -> list[tuple[int, int]]:
        return [tuple(o) for o in self._model.encode(text, add_special_tokens=False).offsets]


def load_tokenizer(spec: str) -> Tokenizer:
    """`words`, or the path of a local tokenizer.json (never downloaded)."""
    if spec == WORDS:
        return WordTokenizer()
    path = resolve_path(spec)
    if not path.is_file():
        raise ConfigError(f"decontam.tokenizer: {spec!r} is neither 'words' nor an existing tokenizer.json file")
    return HFTokenizer(path)
