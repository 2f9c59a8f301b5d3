"""Decontamination core: tokenizer definition, the exact rule against a brute-force DP reference,
planted synthetic copies, and benchmark spec loading."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from decontam.benchmarks import BenchmarkError, load_benchmarks
from decontam.index import BenchmarkIndex, CandidateIndex
from decontam.lcs import Rule, brute_force_matches, lcs_dp, lcs_length
from decontam.tokenize import WordTokenizer, load_tokenizer
from pipeline.errors import ConfigError
from pipeline.synth import SHARED_POOLS, benchmark_items, edit_words

WORDS = WordTokenizer()


# ---------------------------------------------------------------- tokenizer


def test_words_tokenizer_is_nfkc_lowercase_word_runs():
    assert WORDS.tokens("Ｈｅｌｌｏ, WORLD! snake_case ﬁne x² 3.14") == [
        "hello",
        "world",
        "snake_case",
        "fine",
        "x2",
        "3",
        "14",
    ]
    text = "Café — ΣΟΦΟΣ said: ½ done"
    assert [text[a:b] for a, b in WORDS.spans(text)] == ["Café", "ΣΟΦΟΣ", "said", "½", "½", "done"]
    assert WORDS.tokens(text) == ["café", "σοφος", "said", "1", "2", "done"]


def test_word_spans_line_up_with_tokens_on_random_unicode():
    pool = list("abcXYZ019_ ") + [
        "\u00a0",
        "\u0301",
        "\u0327",
        "ﬁ",
        "Ａ",
        "²",
        "½",
        "İ",
        "Σ",
        "ß",
        "\u1100",
        "\u1161",
        "한",
        "\n",
        "-",
        "é",
        "\u3000",
    ]
    rng = random.Random(5)
    for _ in range(2000):
        text = "".join(rng.choice(pool) for _ in range(rng.randint(0, 30)))
        tokens, spans = WORDS.tokens(text), WORDS.spans(text)
        assert len(tokens) == len(spans), text
        for token, (a, b) in zip(tokens, spans):
            # a slice can change a final sigma's context, nothing else
            assert token.replace("ς", "σ") in "".join(WORDS.tokens(text[a:b])).replace("ς", "σ"), (text, token)


def test_hf_tokenizer_from_local_file(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {w: i for i, w in enumerate(["[UNK]", *"the quick brown fox jumps over lazy dog again and".split()])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "tokenizer.json"))
    hf = load_tokenizer(str(tmp_path / "tokenizer.json"))
    text = "the quick brown fox jumps"
    assert hf.tokens(text) == [1, 2, 3, 4, 5]
    assert [text[a:b] for a, b in hf.spans(text)] == text.split()
    with pytest.raises(ConfigError, match="tokenizer"):
        load_tokenizer(str(tmp_path / "missing.json"))


# ---------------------------------------------------------------- the rule


def test_rule_uses_the_decimal_ratio():
    rule = Rule()
    assert rule.required(25, 25) == 15  # 0.6 x 25 = 15 exactly, not 15.000000000000002
    assert rule.required(20, 100) == 13  # 12 < 13
    assert rule.required(200, 30) == 18
    assert Rule(ratio=0.7).required(10, 10) == 13
    assert Rule(window_factor=1.5).window(25) == 38 and rule.window(25) == 50
    for bad in ({"mode": "sentence"}, {"window_factor": 0.9}, {"min_tokens": 0}, {"ratio": 0.0}, {"ratio": 1.5}):
        with pytest.raises(ValueError, match="invalid contamination rule"):
            Rule(**bad)


def test_lcs_length_agrees_with_dp():
    rng = random.Random(1)
    for _ in range(300):
        a = [rng.randrange(6) for _ in range(rng.randint(0, 40))]
        b = [rng.randrange(6) for _ in range(rng.randint(0, 40))]
        assert lcs_length(a, b) == lcs_dp(a, b)


def _check(doc: list, items: list[list], rule: Rule, **options: int) -> dict[int, int]:
    """The index's result equals the brute force, and every reported span holds its LCS."""
    index = CandidateIndex(items, rule, **options)
    hits = index.find(doc)
    got = {h.item: h.lcs for h in hits}
    assert got == brute_force_matches(doc, items, rule)
    for hit in hits:
        assert lcs_dp(doc[hit.start : hit.end], items[hit.item]) == hit.lcs
        window = rule.window(len(items[hit.item])) if rule.mode == "window" else len(doc)
        assert hit.window_tokens == min(window, len(doc))
    return got


def _edited_copy(rng: random.Random, item: list, vocab: int) -> list:
    """Tokens dropped, replaced, repeated or swapped with a neighbour."""
    copy = []
    for token in item:
        roll = rng.random()
        if roll < 0.12:
            continue
        copy.append(rng.randrange(vocab + 5) if roll < 0.2 else token)
        if roll > 0.95:
            copy.append(token)
    for _ in range(rng.randint(0, 2)):
        if len(copy) > 1:
            at = rng.randrange(len(copy) - 1)
            copy[at], copy[at + 1] = copy[at + 1], copy[at]
    return copy


@pytest.mark.parametrize("mode", ["window", "document"])
def test_index_equals_brute_force_on_random_cases(mode):
    """Random items and documents, from a tiny vocabulary (repeated tokens everywhere) to a larger
    one, with edited copies planted anywhere (edges included); small levels put long documents in
    many chunks, and the prefix settings from the classic prefix (1) up."""
    rng = random.Random(11 if mode == "window" else 12)
    positives = 0
    for _ in range(400):
        vocab = rng.choice([3, 8, 30, 200])
        items = [[rng.randrange(vocab) for _ in range(rng.randint(3, 40))] for _ in range(rng.randint(1, 6))]
        doc = [rng.randrange(vocab + 5) for _ in range(rng.choice([rng.randint(0, 30), rng.randint(0, 160)]))]
        for _ in range(rng.choice([0, 1, 1, 2])):
            at = rng.choice([0, len(doc), rng.randint(0, len(doc))])
            doc[at:at] = _edited_copy(rng, rng.choice(items), vocab)
        rule = Rule(
            mode=mode,
            min_tokens=rng.choice([5, 8, 13]),
            ratio=rng.choice([0.5, 0.6, 0.8, 1.0]),
            window_factor=rng.choice([1.0, 1.5, 2.0]),
        )
        positives += bool(
            _check(doc, items, rule, prefix_extra=rng.choice([1, 2, 8]), level_base=rng.choice([4, 16, 128]))
        )
    assert positives > 100  # the cases exercise both outcomes


def _filler(rng: random.Random, n: int) -> list[str]:
    return [f"f{rng.randrange(10_000)}" for _ in range(n)]


ITEM = [f"w{i}" for i in range(25)]  # 25 distinct tokens: the rule needs 15 in a 50-token window


@pytest.mark.parametrize("mode", ["window", "document"])
def test_adversarial_cases(mode):
    rng = random.Random(3)
    rule = Rule(mode=mode)
    # gaps: every item token separated by one filler token -> still a subsequence in a 50-token window
    gapped = [t for w in ITEM for t in (w, *_filler(rng, 1))]
    assert _check(_filler(rng, 40) + gapped + _filler(rng, 40), [ITEM], rule) == {0: 25}
    # reordering: reversed item shares all tokens but its LCS is 1
    assert _check(_filler(rng, 10) + ITEM[::-1] + _filler(rng, 10), [ITEM], rule) == {}
    # 12 vs 13 tokens: a verbatim 12-token item never matches, a 13-token one does
    assert _check(ITEM[:12], [ITEM[:12]], rule) == {}
    assert _check(ITEM[:13], [ITEM[:13]], rule) == {0: 13}
    # items shorter than 13 tokens never match, whatever the document
    assert _check(ITEM[:12] * 5, [ITEM[:12], ITEM[:5]], rule) == {}
    # ratio exactly at 0.6: 15 of 25 tokens matches, 14 does not
    fifteen = ITEM[:15] + _filler(rng, 10)
    assert _check(_filler(rng, 60) + fifteen + _filler(rng, 60), [ITEM], rule) == {0: 15}
    assert _check(_filler(rng, 60) + ITEM[:14] + _filler(rng, 60), [ITEM], rule) == {}
    assert _check(ITEM[:15], [ITEM], rule) == {0: 15}  # a 15-token document: min(|s_t|, |s_e|) = 15, 15 >= 13
    # documents shorter than the item: 13 of its tokens in a 21-token document, padded with unknown tokens
    long_item = [f"v{i}" for i in range(60)]
    assert _check(_filler(rng, 4) + long_item[10:23] + _filler(rng, 4), [long_item], rule) == {0: 13}
    assert _check(_filler(rng, 5) + long_item[10:22] + _filler(rng, 5), [long_item], rule) == {}
    # repeated tokens: only as many as the item holds count; the same bag in another order falls short
    assert _check(["a"] * 30 + ["b"] * 30, [["a"] * 20, ["a", "b"] * 10, ["a"] * 10 + ["b"] * 10], rule) == {
        0: 20,
        2: 20,
    }
    # long documents: copies at the very start and end of 5,000 tokens
    long_doc = ITEM + _filler(rng, 5000) + ITEM[5:]
    assert _check(long_doc, [ITEM, ITEM[5:]], rule) == {0: 25, 1: 20}
    # ... where document mode also flags a document that only holds the item's tokens far apart
    spread = [t for w in ITEM for t in (w, *_filler(rng, 30))]
    assert _check(spread, [ITEM], rule) == ({} if mode == "window" else {0: 25})


def test_a_repeated_token_split_between_prefix_and_suffix():
    """Ten rare tokens then one token ten times: with prefix_extra 8 the prefix ends inside the
    run of x (5 in the prefix, 5 past it), so the suffix bound counts part of a token. The document
    holds a of the rare tokens then b x's, around the rule's threshold (a + min(b, 10) >= 13)."""
    rng = random.Random(6)
    item = [f"r{i}" for i in range(10)] + ["x"] * 10
    for extra in (1, 2, 8):
        for a in range(11):
            for b in range(13):
                doc = _filler(rng, 5) + item[:a] + ["x"] * b + _filler(rng, 5)
                for mode in ("window", "document"):
                    _check(doc, [item], Rule(mode=mode), prefix_extra=extra)


def test_prefixes_past_16_bits_use_64_bit_counters():
    """A 66,300-token item at ratio 0.01: its prefix (65,645 tokens) needs the filter's 64-bit
    counters; 700 of its tokens in order match (k = 663), 600 do not."""
    rng = random.Random(5)
    item = [f"t{i}" for i in range(66_300)]
    rule = Rule(ratio=0.01)
    index = CandidateIndex([item], rule)
    for shared, expected in ((700, {0: 700}), (600, {})):
        doc = _filler(rng, 100) + item[:shared] + _filler(rng, 66_000)
        assert {h.item: h.lcs for h in index.find(doc)} == expected


def test_copies_across_every_chunk_boundary():
    """A gapped copy (its window exactly full) at every offset of a document cut into chunks of
    16 and 32 tokens: each window lies in one chunk whatever its start."""
    rng = random.Random(4)
    item = ITEM[:13]
    gapped = [t for w in item for t in (w, "g")][:-1]  # 25 tokens; the window is 26
    rule = Rule()
    for offset in range(0, 70):
        doc = _filler(rng, offset) + gapped + _filler(rng, 70 - offset)
        assert _check(doc, [item, ITEM], rule, level_base=16) == {0: 13}, offset


def test_window_mode_flags_less_than_document_mode_on_unrelated_text():
    rng = random.Random(8)
    common = [f"c{i}" for i in range(40)]
    items = [[rng.choice(common) for _ in range(20)] for _ in range(30)]
    docs = [[rng.choice(common) for _ in range(1000)] for _ in range(5)]
    flagged = {}
    for mode in ("window", "document"):
        index = CandidateIndex(items, Rule(mode=mode))
        flagged[mode] = sum(bool(index.find(d)) for d in docs)
    assert flagged["document"] == 5 and flagged["window"] == 0


def test_unicode_text_matches_through_nfkc_and_case():
    item = "Ｗｈｉｃｈ ﬁeld of Café science studies the ΣΟΦΟΣ behaviour of gases under extreme pressure and heat?"
    index = BenchmarkIndex([_bench("uni", [item])], Rule(), WORDS)
    doc = (
        "Intro text here.\n\nwhich field of café SCIENCE studies the σοφος behaviour of gases under extreme"
        " pressure and heat? More."
    )
    (row,) = index.scan(doc)
    assert row["lcs"] == row["item_tokens"] == 16
    assert (
        doc[row["start_char"] : row["end_char"]].startswith("which field")
        and doc[row["end_char"] - 4 : row["end_char"]] == "heat"
    )


def test_too_short_lists_the_items_that_can_never_match():
    texts = ["one two three", " ".join(ITEM), " ".join(ITEM[:12])]
    index = BenchmarkIndex([_bench("a", texts), _bench("b", texts[1:2])], Rule(), WORDS)
    assert index.too_short() == {"a": ["0", "2"], "b": []}


def _bench(name: str, texts: list[str]):
    from decontam.benchmarks import Benchmark

    return Benchmark(name=name, source="test", item_ids=tuple(str(i) for i in range(len(texts))), texts=tuple(texts))


# ---------------------------------------------------------------- planted synthetic copies


def test_planted_synth_copies_are_found(small_corpus):
    index = BenchmarkIndex(load_benchmarks(small_corpus / "benchmarks.yaml"), Rule(), WORDS)
    planted = flagged = 0
    for line in (small_corpus / "corpus.jsonl").read_text().splitlines():
        record = json.loads(line)
        found = {(r["benchmark"], r["item_id"]) for r in index.scan(record["text"])}
        for plant in record["meta"]["planted"]:
            planted += 1
            assert (plant["benchmark"], plant["item_id"]) in found
        flagged += bool(found)
        assert bool(found) == bool(record["meta"]["planted"]), record["id"]
    assert planted >= 3 and flagged == planted


def test_edited_copies_of_every_item_are_found():
    items = benchmark_items()
    texts = [f"{i['question']} {i['answer']}" for i in items]
    index = BenchmarkIndex([_bench("synthbench", texts)], Rule(), WORDS)
    rng = np.random.default_rng(0)
    pool = SHARED_POOLS["g"] + SHARED_POOLS["r"]
    filler = " ".join(pool[:60])
    for n, text in enumerate(texts):
        for rate in (0.0, 0.1, 0.2):
            doc = f"{filler}\n\n{edit_words(rng, text, rate, pool)}\n\n{filler}"
            assert str(n) in {r["item_id"] for r in index.scan(doc)}, (n, rate)


# ---------------------------------------------------------------- benchmark specs


def _spec(folder: Path, entries: list[dict]) -> Path:
    path = folder / "spec.yaml"
    path.write_text(json.dumps({"benchmarks": entries}))
    return path


def test_presets_and_formats(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "gsm.jsonl").write_text(
        json.dumps({"question": "Q one?", "answer": "A"})
        + "\n\n"
        + json.dumps({"question": "Q two?", "answer": "B"})
        + "\n"
    )
    with gzip.open(data / "he.jsonl.gz", "wt") as fh:
        fh.write(
            json.dumps({"task_id": "HumanEval/0", "prompt": "def f():", "canonical_solution": "  return 1"}) + "\n"
        )
    pq.write_table(
        pa.Table.from_pylist([{"question": "Which?", "choices": ["a", "b"], "answer": 0}]), data / "mmlu.parquet"
    )
    (data / "orig_0.csv").write_text('"What, exactly?",yes,no,maybe,never,A\n')
    (data / "arc.json").write_text(
        json.dumps([{"id": "arc-1", "question": {"stem": "Why?", "choices": [{"text": "x"}, {"text": "y"}]}}])
    )
    spec = _spec(
        tmp_path,
        [
            {"name": "gsm8k", "path": "data/gsm.jsonl", "preset": "gsm8k"},
            {"name": "he", "path": "data/he.jsonl.gz", "preset": "HumanEval"},
            {"name": "mmlu_hf", "path": "data/mmlu.parquet", "preset": "mmlu"},
            {"name": "mmlu_orig", "path": "data/orig_*.csv", "preset": "mmlu"},
            {"name": "arc", "path": "data/arc.json", "preset": "arc"},
            {"name": "custom", "path": str(data / "gsm.jsonl"), "fields": ["question", "answer"], "id": None},
        ],
    )
    got = {b.name: (b.item_ids, b.texts) for b in load_benchmarks(spec)}
    assert got["gsm8k"] == (("0", "1"), ("Q one?", "Q two?"))
    assert got["he"] == (("HumanEval/0",), ("def f():\n  return 1",))
    assert got["mmlu_hf"] == (("0",), ("Which?\na\nb",))
    assert got["mmlu_orig"] == (("0",), ("What, exactly?\nyes\nno\nmaybe\nnever",))
    assert got["arc"] == (("arc-1",), ("Why?\nx\ny",))
    assert got["custom"] == (("0", "1"), ("Q one?\nA", "Q two?\nB"))


@pytest.mark.parametrize(
    "entry, files, message",
    [
        ({"name": "gone", "path": "nope/*.jsonl", "fields": ["q"]}, {}, "benchmark 'gone': no file matches"),
        (
            {"name": "nofield", "path": "a.jsonl", "fields": ["question"]},
            {"a.jsonl": '{"q": "x"}\n'},
            "benchmark 'nofield': missing field",
        ),
        (
            {"name": "later", "path": "a.jsonl", "fields": ["q"]},
            {"a.jsonl": '{"q": "x"}\n{"z": 1}\n'},
            "field 'q' is missing in .* record 2",
        ),
        (
            {"name": "empty", "path": "a.jsonl", "fields": ["q"]},
            {"a.jsonl": "\n"},
            "benchmark 'empty': .*holds no records",
        ),
        (
            {"name": "badjson", "path": "a.jsonl", "fields": ["q"]},
            {"a.jsonl": '{"q": "x"}\n{oops\n'},
            "benchmark 'badjson': .*a.jsonl:2: bad JSON",
        ),
        ({"name": "p", "path": "a.jsonl", "preset": "nosuch"}, {"a.jsonl": '{"q": "x"}\n'}, "unknown preset 'nosuch'"),
        ({"name": "k", "path": "a.jsonl", "fields": ["q"], "colour": 1}, {"a.jsonl": '{"q": "x"}\n'}, "unknown key"),
        ({"name": "nof", "path": "a.jsonl"}, {"a.jsonl": '{"q": "x"}\n'}, "give 'fields' or a 'preset'"),
        (
            {"name": "dup", "path": "a.jsonl", "fields": ["q"], "id": "i"},
            {"a.jsonl": '{"q": "x", "i": 1}\n{"q": "y", "i": 1}\n'},
            "repeated values",
        ),
        ({"name": "ext", "path": "a.txt", "fields": ["q"]}, {"a.txt": "x\n"}, "unsupported benchmark file type"),
        ({"name": "obj", "path": "a.jsonl", "fields": ["q"]}, {"a.jsonl": '{"q": {"deep": 1}}\n'}, "dotted path"),
    ],
)
def test_bad_specs_name_the_benchmark(tmp_path, entry, files, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(BenchmarkError, match=message):
        load_benchmarks(_spec(tmp_path, [entry]))


def test_bad_spec_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read benchmark spec"):
        load_benchmarks(tmp_path / "missing.yaml")
    (tmp_path / "a.jsonl").write_text('{"q": "x"}\n')
    with pytest.raises(BenchmarkError, match="appears twice"):
        load_benchmarks(_spec(tmp_path, [{"name": "x", "path": "a.jsonl", "fields": ["q"]}] * 2))
    with pytest.raises(BenchmarkError, match="non-empty list under 'benchmarks:'"):
        load_benchmarks(_spec(tmp_path, []))
