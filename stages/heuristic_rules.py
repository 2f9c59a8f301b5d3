"""The Gopher quality, Gopher repetition, C4 and FineWeb rules computed from one tokenization per text.

Each rule reads its parameters from the datatrove filter object it stands in for (so defaults and
parameter handling are datatrove's own) and returns what that filter's `filter()` returns, for any
document: the tests and `benchmarks/bench_filter.py` compare the two. The words come from `DocText`,
which tokenizes a text at most once and, after C4 rewrites a text, counts the words of the kept lines
from the first tokenization where the tokenizer is local to whitespace-separated chunks.
"""

from __future__ import annotations

import bisect
import re

import numpy as np
from datatrove.data import Document
from datatrove.pipeline.filters import (
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
)
from datatrove.pipeline.filters.c4_filters import CITATION_REGEX, ELLIPSIS, END_PUNCTUATION, POLICY_SUBSTRINGS
from datatrove.pipeline.filters.gopher_repetition_filter import (
    find_all_duplicate,
    find_duplicates,
    find_top_duplicate,
    get_n_grams,
)

from stages.word_tokens import FastWordTokenizer, Tokens

Result = bool | tuple[bool, str]

# The characters at which str.splitlines() breaks a line ("\r\n" counts as one break).
_LINE_BREAK = re.compile("\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")
_PARAGRAPH_BREAK = re.compile(r"\n{2,}")
_LINE_RUNS = re.compile("\n+")


class DocText:
    """One document's current text and its words, tokenized at most once per text version."""

    def __init__(self, text: str, tokenizer: FastWordTokenizer):
        self.text = text
        self.tokenizer = tokenizer
        self._tokens: Tokens | None = None
        # After C4: (words of the text C4 read, [(begin, end) spans of unchanged kept lines], changed lines)
        self._rewritten: tuple[Tokens, list[tuple[int, int]], list[str]] | None = None

    def tokens(self) -> Tokens:
        if self._tokens is None:
            self._tokens = self.tokenizer.tokenize(self.text)
            self._rewritten = None
        return self._tokens

    def current_tokens(self) -> Tokens | None:
        """The words of the current text if it was tokenized already."""
        return self._tokens

    def word_count(self) -> int:
        if self._tokens is None and self._rewritten is not None:
            before, spans, changed = self._rewritten
            return before.count_within(spans) + sum(len(self.tokenizer.tokenize(line)) for line in changed)
        return len(self.tokens())

    def rewrite(self, text: str, spans: list[tuple[int, int]] | None, changed: list[str]) -> None:
        """C4 kept some lines: `spans` locate the unchanged ones in the old text (None: unknown)."""
        if text == self.text:
            return
        before = self._tokens
        self.text, self._tokens = text, None
        local = before is not None and before.start is not None and spans is not None
        self._rewritten = (before, spans, changed) if local else None


def gopher_quality(f: GopherQualityFilter, doc: DocText) -> Result:
    text, tok = doc.text, doc.tokens()
    n_words = len(tok)
    n_non_symbol = int(tok.non_symbol.sum())
    if f.min_doc_words and n_non_symbol < f.min_doc_words:
        return False, "gopher_short_doc"
    if f.max_doc_words and n_non_symbol > f.max_doc_words:
        return False, "gopher_long_doc"
    # np.mean over the same integers as datatrove's list, so the same float.
    avg_length = np.mean(tok.length[tok.non_symbol])
    if f.min_avg_word_length and avg_length < f.min_avg_word_length:
        return False, "gopher_below_avg_threshold"
    if f.max_avg_word_length and avg_length > f.max_avg_word_length:
        return False, "gopher_above_avg_threshold"
    if f.max_symbol_word_ratio and text.count("#") / n_words > f.max_symbol_word_ratio:
        return False, "gopher_too_many_hashes"
    if f.max_symbol_word_ratio and (text.count("...") + text.count("…")) / n_words > f.max_symbol_word_ratio:
        return False, "gopher_too_many_ellipsis"
    lines = text.splitlines()
    if f.max_bullet_lines_ratio:
        bullets = sum(1 for line in lines if line.lstrip().startswith(("•", "-")))
        if bullets / len(lines) > f.max_bullet_lines_ratio:
            return False, "gopher_too_many_bullets"
    if f.max_ellipsis_lines_ratio:
        ellipses = sum(1 for line in lines if line.rstrip().endswith(("...", "…")))
        if ellipses / len(lines) > f.max_ellipsis_lines_ratio:
            return False, "gopher_too_many_end_ellipsis"
    if f.max_non_alpha_words_ratio and int(tok.has_alpha.sum()) / n_words < f.max_non_alpha_words_ratio:
        return False, "gopher_below_alpha_threshold"
    if f.min_stop_words and _distinct_stop_words(f, doc.tokenizer, tok) < f.min_stop_words:
        return False, "gopher_enough_stop_words"
    return True


def _distinct_stop_words(f: GopherQualityFilter, tokenizer: FastWordTokenizer, tok: Tokens) -> int:
    stop_ids = np.array([tokenizer.id_of(w) for w in f.stop_words], dtype=np.uint64)
    return int(np.unique(tok.ids[np.isin(tok.ids, stop_ids)]).size)


def gopher_repetition(f: GopherRepetitionFilter, doc: DocText) -> Result:
    text = doc.text
    if not text:
        return False, "empty"
    paragraphs = _PARAGRAPH_BREAK.split(text.strip())
    duplicates, duplicate_chars = find_duplicates(paragraphs)
    if f.dup_para_frac and duplicates / len(paragraphs) > f.dup_para_frac:
        return False, "dup_para_frac"
    if f.dup_para_char_frac and duplicate_chars / len(text) > f.dup_para_char_frac:
        return False, "dup_para_char_frac"
    lines = _LINE_RUNS.split(text)
    duplicates, duplicate_chars = find_duplicates(lines)
    if f.dup_line_frac and duplicates / len(lines) > f.dup_line_frac:
        return False, "dup_line_frac"
    if f.dup_line_char_frac and duplicate_chars / len(text) > f.dup_line_char_frac:
        return False, "dup_line_char_frac"
    tok = doc.tokens()
    ngram_ids = _NgramIds(tok)
    for n, frac in f.top_n_grams:
        if len(tok) - n + 1 <= 0:
            continue
        if _top_ngram_chars(tok, ngram_ids, n) / len(text) > frac:
            return False, f"top_{n}_gram"
    concat = _Concatenation(tok, [n for n, _ in f.dup_n_grams])
    for n, frac in f.dup_n_grams:
        if concat.repeated_chars(n) / len(text) > frac:
            return False, f"duplicated_{n}_n_grams"
    return True


class _NgramIds:
    """Dense ids of word n-grams: equal ids <=> equal word tuples."""

    def __init__(self, tok: Tokens):
        self.unigrams = np.unique(tok.ids, return_inverse=True)[1].astype(np.int64)
        self.vocab = int(self.unigrams.max()) + 1 if len(self.unigrams) else 1
        self._by_n = {1: self.unigrams}

    def get(self, n: int) -> np.ndarray:
        if n not in self._by_n:
            shorter = self.get(n - 1)[:-1]
            pairs = shorter * self.vocab + self.unigrams[n - 1 :]
            self._by_n[n] = np.unique(pairs, return_inverse=True)[1].astype(np.int64)
        return self._by_n[n]


def _top_ngram_chars(tok: Tokens, ngram_ids: _NgramIds, n: int) -> int:
    """Characters of the most frequent " "-joined n-gram times its count (first seen wins ties, as Counter)."""
    if tok.spaces_inside:  # " ".join no longer tells word tuples apart: count the strings themselves
        return find_top_duplicate(get_n_grams(tok.words, n))
    ids = ngram_ids.get(n)
    counts = np.bincount(ids)
    best = counts.max()
    start = int(np.argmax(counts[ids] == best))  # the first position of a most frequent n-gram
    return int(tok.length[start : start + n].sum() + n - 1) * int(best)


_CACHED_POWERS = 1 << 20


class _HashCollision(Exception):
    pass


class _Concatenation:
    """datatrove's duplicated n-gram count: n-grams are compared as "".join(words) strings, scanned
    greedily left to right (a repeat skips its n words). Substrings of the joined text are compared by
    a polynomial hash mod 2^64, and every repeat it reports is checked on the characters themselves;
    a hash collision falls back to datatrove's own function."""

    _BASE = 0x9E3779B97F4A7C15  # odd, so invertible mod 2^64
    _powers = np.ones(1, dtype=np.uint64)
    _inverse_powers = np.ones(1, dtype=np.uint64)

    def __init__(self, tok: Tokens, sizes: list[int]):
        self.tok = tok
        self.bounds = np.zeros(len(tok) + 1, dtype=np.int64)
        np.cumsum(tok.length, out=self.bounds[1:])
        self._chars: np.ndarray | None = None
        self._prefix: np.ndarray | None = None
        self._keys: dict[int, np.ndarray] = {}
        self._repeated_keys = self._find_repeats(sizes)

    def _find_repeats(self, sizes: list[int]) -> np.ndarray:
        """The keys that occur twice, over every n at once: one sort instead of one per n (a key shared
        by two sizes only sends that size to the exact scan, which finds nothing)."""
        keys = [self._keys_of(n) for n in sizes if len(self.tok) - n + 1 > 0]
        if not keys:
            return np.zeros(0, dtype=np.uint64)
        ordered = np.sort(np.concatenate(keys))
        return ordered[1:][ordered[1:] == ordered[:-1]]

    def _keys_of(self, n: int) -> np.ndarray:
        if n not in self._keys:
            if self._prefix is None:
                self._prepare()
            positions = len(self.tok) - n + 1
            begin, end = self.bounds[:positions], self.bounds[n : n + positions]
            self._keys[n] = (self._prefix[end] - self._prefix[begin]) * self._inverse[begin]
        return self._keys[n]

    def _prepare(self) -> None:
        tok, total = self.tok, int(self.bounds[-1])
        if tok.start is not None:
            text_chars = np.frombuffer(tok.text.encode("utf-32-le"), dtype=np.uint32)
            offsets = np.repeat(tok.start - self.bounds[:-1], tok.length) + np.arange(total)
            self._chars = text_chars[offsets].astype(np.uint64)
        else:
            self._chars = np.frombuffer("".join(tok.words).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        powers, inverse = self._power_tables(total + 1)
        self._prefix = np.zeros(total + 1, dtype=np.uint64)
        np.cumsum(self._chars * powers[:total], out=self._prefix[1:])
        self._inverse = inverse

    @classmethod
    def _power_tables(cls, size: int) -> tuple[np.ndarray, np.ndarray]:
        """B^j and B^-j mod 2^64 for j < size; kept between documents up to _CACHED_POWERS (16 MB)."""
        if len(cls._powers) >= size:
            return cls._powers, cls._inverse_powers
        grown = max(size, min(2 * len(cls._powers), _CACHED_POWERS))
        tables = tuple(
            np.concatenate(([np.uint64(1)], np.cumprod(np.full(grown - 1, base, dtype=np.uint64))))
            for base in (cls._BASE, pow(cls._BASE, -1, 2**64))
        )
        if grown <= _CACHED_POWERS:
            cls._powers, cls._inverse_powers = tables
        return tables

    def repeated_chars(self, n: int) -> int:
        positions = len(self.tok) - n + 1
        if positions <= 0:
            return 0
        keys = self._keys_of(n)
        if not np.isin(keys, self._repeated_keys).any():
            return 0
        begin, end = self.bounds[:positions], self.bounds[n : n + positions]
        try:
            return self._greedy(keys, begin, end, n)
        except _HashCollision:
            return find_all_duplicate(self.tok.words, n)

    def _greedy(self, keys: np.ndarray, begin: np.ndarray, end: np.ndarray, n: int) -> int:
        _, first, group = np.unique(keys, return_index=True, return_inverse=True)
        group = group.reshape(-1)
        repeats = np.nonzero(first[group] < np.arange(len(keys)))[0]
        if repeats.size == 0:
            return 0
        # Occurrences of each repeated group, in order; only these positions can change the scan.
        order = np.argsort(group, kind="stable")
        group_starts = np.searchsorted(group[order], np.arange(len(first) + 1))
        cursor: dict[int, int] = {}  # group -> index into its occurrences of the next unchecked one
        seen: dict[int, int] = {}  # group -> first occurrence the scan visited
        skipped: list[int] = []  # a, b, a, b, ...: the scan jumped over [a, b), ascending
        next_visit, repeated = 0, 0
        for p in repeats.tolist():
            if p < next_visit:
                continue
            g = int(group[p])
            q = seen.get(g)
            if q is None:
                k = cursor.get(g, int(group_starts[g]))
                while q is None and int(order[k]) < p:
                    candidate = int(order[k])
                    if bisect.bisect_right(skipped, candidate) % 2 == 0:  # not inside any [a, b)
                        q = seen[g] = candidate
                    k += 1
                cursor[g] = k
            if q is None:  # every earlier occurrence was jumped over: this one is new to the scan
                seen[g] = p
                continue
            if not np.array_equal(self._chars[begin[q] : end[q]], self._chars[begin[p] : end[p]]):
                raise _HashCollision
            repeated += int(end[p] - begin[p])
            skipped += (p + 1, p + n)
            next_visit = p + n
        return repeated


def c4_quality(f: C4QualityFilter, doc: DocText) -> Result:
    text = doc.text
    if not f.split_paragraph:  # sentence mode: no fast path, datatrove itself on a copy
        probe = Document(text=text, id="")
        result = f.filter(probe)
        if probe.text != text:
            doc.rewrite(probe.text, None, [])
        return result
    kept: list[str] = []
    spans: list[tuple[int, int]] = []
    changed: list[str] = []
    starts = [0] + [m.end() for m in _LINE_BREAK.finditer(text)]
    for raw, start in zip(text.splitlines(), starts):
        line = raw.strip()
        words = line.split()
        if f.max_word_length != -1 and any(len(w) > f.max_word_length for w in words):
            continue
        stripped = line
        if f.remove_citations:
            line = CITATION_REGEX.sub("", line)
        if f.filter_no_terminal_punct and (not line.endswith(END_PUNCTUATION) or line.endswith(ELLIPSIS)):
            continue
        if len(words) < f.min_words_per_line:
            continue
        lowered = line.lower()
        if f.filter_lorem_ipsum and "lorem ipsum" in lowered:
            return False, "lorem_ipsum"
        if f.filter_javascript and "javascript" in lowered:
            continue
        if f.filter_curly_bracket and "{" in line:
            return False, "curly_bracket"
        if f.filter_policy and any(p in lowered for p in POLICY_SUBSTRINGS):
            continue
        kept.append(line)
        if line == stripped:
            begin = start + len(raw) - len(raw.lstrip())
            spans.append((begin, begin + len(line)))
        else:
            changed.append(line)
    if f.min_num_sentences != -1 and not _enough_sentences(doc, kept, spans, changed, f.min_num_sentences):
        return False, "too_few_sentences"
    doc.rewrite("\n".join(kept).strip(), spans, changed)
    return True


def _enough_sentences(
    doc: DocText, kept: list[str], spans: list[tuple[int, int]], changed: list[str], needed: int
) -> bool:
    # Every kept line holds at least one sentence (datatrove counts an unsplit line as one), so only
    # documents with fewer kept lines than needed are sentence-split.
    if len(kept) >= needed:
        return True
    tokenizer, tokens = doc.tokenizer, doc.current_tokens()
    if tokens is None or tokens.all_tokens is None:
        return sum(tokenizer.sentence_count(line) for line in kept) >= needed
    counted = tokenizer.sentences_within(tokens, spans) + sum(tokenizer.sentence_count(line) for line in changed)
    return counted >= needed


def fineweb_quality(f: FineWebQualityFilter, doc: DocText) -> Result:
    text = doc.text
    lines = [line for line in text.split("\n") if line.strip() != ""]
    if not lines:
        return False, "empty"
    ratio = sum(1 for line in lines if line.endswith(f.stop_chars)) / len(lines)
    if ratio < f.line_punct_thr and not (ratio == 0 and f.line_punct_exclude_zero):
        return False, "line_punct_ratio"
    ratio = sum(1 for line in lines if len(line) <= f.short_line_length) / len(lines)
    if ratio > f.short_line_threshold:
        return False, "short_line_ratio"
    if find_duplicates(lines)[1] / len(text.replace("\n", "")) > f.char_duplicates_ratio:
        return False, "char_dup_ratio"
    if text.count("\n") / doc.word_count() > f.new_line_ratio:
        return False, "list_ratio"
    return True


RULES = {
    "gopher_quality": gopher_quality,
    "gopher_repetition": gopher_repetition,
    "c4_quality": c4_quality,
    "fineweb_quality": fineweb_quality,
}
