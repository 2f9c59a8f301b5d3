"""The words of a text exactly as datatrove's word tokenizer gives them, fast, as arrays.

datatrove's `SpaCyTokenizer.word_tokenize` enters spaCy's `memory_zone` on every call, so every lexeme is
rebuilt for every document (`Vocab._new_lexeme` dominates a profile). The same blank spaCy pipeline's
tokenizer used outside the zone gives the same tokens about 5x faster on real documents; memory stays
bounded by building a fresh pipeline once the vocabulary passes `_MAX_LEXEMES`. Languages that datatrove
does not tokenize with spaCy (Thai, Korean, Indic, Khmer, Lao, Burmese) use datatrove's own tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from datatrove.utils.text import PUNCTUATION_SET
from datatrove.utils.word_tokenizers import SpaCyTokenizer, WordTokenizer, chunk_text_on_bytes, load_word_tokenizer

# ~300k lexemes is ~100 MB of spaCy vocabulary; rebuilding the blank pipeline costs ~0.5 s.
_MAX_LEXEMES = 300_000
# datatrove cuts Japanese into chunks of at most this many UTF-8 bytes before spaCy sees it.
_JA_CHUNK_BYTES = 40_000


def _non_symbol(word: str) -> bool:
    """Gopher counts a word only if some character is not punctuation."""
    return any(ch not in PUNCTUATION_SET for ch in word)


def _has_alpha(word: str) -> bool:
    return any(ch.isalpha() for ch in word)


@dataclass
class Tokens:
    """The words of `text` (datatrove's `split_into_words`) as parallel arrays, one entry per word."""

    text: str
    ids: np.ndarray  # uint64; equal ids <=> equal words
    length: np.ndarray  # int64 characters
    non_symbol: np.ndarray  # bool
    has_alpha: np.ndarray  # bool
    # int64 offset of each word in `text`; set only where tokenization is local to whitespace-separated
    # chunks (spaCy's rule-based tokenizer), so the words of any line are the words found inside it.
    start: np.ndarray | None = None
    spaces_inside: bool = False  # some word contains " " (then " ".join of n-grams is not injective)
    # Every token, whitespace included, as (orth, offset, is_punct) rows: what spaCy's sentencizer sees.
    all_tokens: np.ndarray | None = field(default=None, repr=False)
    _words: list[str] | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def words(self) -> list[str]:
        if self._words is None:
            self._words = [self.text[s : s + n] for s, n in zip(self.start.tolist(), self.length.tolist())]
        return self._words

    def count_within(self, spans: list[tuple[int, int]]) -> int:
        """Words that start inside the [begin, end) spans of `text` (requires `start`)."""
        if not spans:
            return 0
        edges = np.searchsorted(self.start, np.asarray(spans, dtype=np.int64))
        return int((edges[:, 1] - edges[:, 0]).sum())


class FastWordTokenizer:
    """datatrove's word tokenizer for one language, returning `Tokens`; `id_of` maps a word to its id."""

    def __init__(self, language: str):
        self.language = language
        self.reference: WordTokenizer = load_word_tokenizer(language)
        self._spacy_language = self.reference.language if type(self.reference) is SpaCyTokenizer else None
        self._nlp = None
        self._flags: tuple[int, int] = (0, 0)
        self._sentence_ends = np.zeros(0, dtype=np.uint64)
        self._rule_based = False
        # Non-spaCy languages: word -> (id, non_symbol, has_alpha), bounded like spaCy's vocabulary.
        self._interned: dict[str, tuple[int, bool, bool]] = {}

    def _pipeline(self):
        if self._nlp is None or len(self._nlp.vocab.strings) > _MAX_LEXEMES:
            from spacy.tokenizer import Tokenizer

            # A fresh SpaCyTokenizer builds the same blank pipeline (and tokenizer config) as datatrove's.
            self._nlp = SpaCyTokenizer(self._spacy_language).tokenizer
            vocab = self._nlp.vocab
            self._flags = (vocab.add_flag(_non_symbol), vocab.add_flag(_has_alpha))
            self._rule_based = type(self._nlp.tokenizer) is Tokenizer
            punct_chars = self._nlp.get_pipe("sentencizer").punct_chars
            self._sentence_ends = np.array([vocab.strings.add(c) for c in punct_chars], dtype=np.uint64)
        return self._nlp

    def id_of(self, word: str) -> int:
        if self._spacy_language is not None:
            return self._pipeline().vocab.strings.add(word)
        return self._intern(word)[0]

    def _intern(self, word: str) -> tuple[int, bool, bool]:
        entry = self._interned.get(word)
        if entry is None:
            entry = self._interned[word] = (len(self._interned), _non_symbol(word), _has_alpha(word))
        return entry

    def tokenize(self, text: str) -> Tokens:
        if self._spacy_language is None:
            if len(self._interned) > _MAX_LEXEMES:  # only between documents: ids stay unique within one
                self._interned.clear()
            return self._from_words(text, self.reference.word_tokenize(text))
        nlp = self._pipeline()
        try:
            docs = self._spacy_docs(nlp, text)
        except Exception:
            # datatrove's own workaround: this string breaks spaCy's tokenizer.
            if "IS_ALPHA" not in text:
                raise
            docs = self._spacy_docs(nlp, text.replace("IS_ALPHA", ""))
            return self._from_words(text, [t.text.strip() for d in docs for t in d if t.text.strip()])
        if not self._rule_based:
            return self._from_words(text, [t.text.strip() for d in docs for t in d if t.text.strip()])
        from spacy.attrs import IDX, IS_PUNCT, IS_SPACE, LENGTH, ORTH

        non_symbol, has_alpha = self._flags
        everything = docs[0].to_array([ORTH, LENGTH, IDX, IS_SPACE, non_symbol, has_alpha, IS_PUNCT])
        table = everything[everything[:, 3] == 0]
        return Tokens(
            text=text,
            ids=table[:, 0],
            length=table[:, 1].astype(np.int64),
            non_symbol=table[:, 4].astype(bool),
            has_alpha=table[:, 5].astype(bool),
            start=table[:, 2].astype(np.int64),
            all_tokens=everything[:, [0, 2, 6]],
        )

    def sentence_count(self, text: str) -> int:
        """len(datatrove's split_into_sentences(text)): its sentencizer's sentences, and 1 if there are none.

        spaCy's sentencizer starts a sentence at a token that is neither punctuation nor one of its
        `punct_chars`, when one of its `punct_chars` came since the last start: counted here on arrays.
        """
        if self._spacy_language is None:
            return max(len(self.reference.span_tokenize(text)), 1)
        from spacy.attrs import IDX, IS_PUNCT, ORTH

        nlp = self._pipeline()
        try:
            docs = self._spacy_docs(nlp, text)
        except Exception:
            if "IS_ALPHA" not in text:
                raise
            docs = self._spacy_docs(nlp, text.replace("IS_ALPHA", ""))
        return max(sum(self._sentences(doc.to_array([ORTH, IDX, IS_PUNCT])) for doc in docs if len(doc)), 1)

    def sentences_within(self, tok: Tokens, spans: list[tuple[int, int]]) -> int:
        """The sum of `sentence_count(tok.text[b:e])` over the disjoint, ascending spans (rule-based spaCy only):
        tokenization is local to whitespace-separated chunks, so a line's tokens are the text's tokens inside it."""
        if not spans:
            return 0
        bounds = np.asarray(spans, dtype=np.int64)
        offsets = tok.all_tokens[:, 1].astype(np.int64)
        line = np.searchsorted(bounds[:, 0], offsets, side="right") - 1
        inside = (line >= 0) & (offsets < bounds[np.maximum(line, 0), 1])
        return len(spans) + self._sentences(tok.all_tokens[inside], line[inside])

    def _sentences(self, table: np.ndarray, line: np.ndarray | None = None) -> int:
        """Sentence starts after the first, over (orth, offset, is_punct) rows; with `line`, within each line."""
        ends = np.isin(table[:, 0], self._sentence_ends)
        relevant = ends | (table[:, 2] == 0)
        kinds = ends[relevant]
        transitions = kinds[:-1] & ~kinds[1:]
        if line is None:
            return 1 + int(np.count_nonzero(transitions))
        same_line = line[relevant]
        return int(np.count_nonzero(transitions & (same_line[:-1] == same_line[1:])))

    def _spacy_docs(self, nlp, text: str) -> list:
        if self._spacy_language == "ja":
            return [nlp.tokenizer(chunk) for chunk in chunk_text_on_bytes(text, _JA_CHUNK_BYTES)]
        return [nlp.tokenizer(text)]

    def _from_words(self, text: str, words: list[str]) -> Tokens:
        if self._spacy_language is not None:
            strings = self._pipeline().vocab.strings
            entries = [(strings.add(w), _non_symbol(w), _has_alpha(w)) for w in words]
        else:
            entries = [self._intern(w) for w in words]
        table = np.array(entries, dtype=np.uint64).reshape(-1, 3)
        return Tokens(
            text=text,
            ids=table[:, 0],
            length=np.fromiter(map(len, words), dtype=np.int64, count=len(words)),
            non_symbol=table[:, 1].astype(bool),
            has_alpha=table[:, 2].astype(bool),
            spaces_inside=any(" " in w for w in words),
            _words=words,
        )
