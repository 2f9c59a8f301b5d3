"""The fused heuristic step decides exactly as datatrove's own filters, document by document.

Every comparison runs the same `HeuristicFilters` routing twice: `implementation="datatrove"` calls
datatrove's `filter()` (its tokenizer in a memory zone, its statistics), `"fused"` our single pass.
Both must give the same (preset, reason) and leave the same text (C4 rewrites it).
"""

from __future__ import annotations

import json

import pytest
from datatrove.data import Document

from pipeline.config import FILTER_PRESETS, FilterSpec, LangIdConfig
from pipeline.synth import generate, generate_multilingual
from stages.fused_heuristics import HeuristicFilters
from stages.heuristics import build_heuristic_steps, language_rules

ENGLISH = "One sentence here, with the words of it. Another one follows; it is longer than the first one."


def _steps(languages: list[str], filters: list | None = None) -> dict[str, HeuristicFilters]:
    config, filters = LangIdConfig(languages=languages), filters or list(FILTER_PRESETS)
    return {impl: build_heuristic_steps(filters, config, "unused", impl)[-1] for impl in ("fused", "datatrove")}


def _disagreements(steps: dict[str, HeuristicFilters], docs: list[tuple[str, str, str]]) -> list[str]:
    """docs: (id, language, text); the ids where the two implementations differ in verdict or text."""
    out = {}
    for impl, step in steps.items():
        for doc_id, language, text in docs:
            doc = Document(text=text, id=doc_id, metadata={"language": language, "language_score": 1.0})
            out[impl, doc_id] = (step.decide(doc), doc.text)
    return [doc_id for doc_id, _, _ in docs if out["fused", doc_id] != out["datatrove", doc_id]]


ADVERSARIAL = {
    "empty": "",
    "whitespace": " \n\t \n",
    "empty_lines": "\n\n\n" + ENGLISH + "\n\n\n\n" + ENGLISH + "\n\n",
    "punctuation_only": "... !!! ??? --- ;;; ''' \"\"\" ((( ))) ***\n" * 40,
    "emoji": ("I love this place 😀😀 so much. The food 🍕 was great and the staff 👍 were kind to us. " * 12),
    "mixed_scripts": ("The word Москва means Moscow, and 東京 is Tokyo; مرحبا means hello in Arabic. " * 10),
    "code": "def f(x):\n    return {x: 1}\n\nfor i in range(10):\n    print(f(i))\n" * 8 + ENGLISH,
    "table": "| name | age | city |\n|---|---|---|\n" + "| Alice | 30 | Paris |\n| Bob | 25 | Rome |\n" * 30,
    "crlf": (ENGLISH + "\r\n") * 12,
    "cr_and_exotic_breaks": (ENGLISH + "\r" + ENGLISH + "\u2028" + ENGLISH + "\x85" + ENGLISH + "\x0c") * 5,
    "lone_line": ENGLISH,
    "lone_long_line": " ".join([ENGLISH] * 20),
    "citations": ("Rivers flow to the sea [1]. Most of them are long [citation needed]. It rains [edit].\n") * 10,
    "lorem": ENGLISH + "\n" + "Lorem ipsum dolor sit amet, it is nice text.\n" + ENGLISH * 5,
    "curly": (ENGLISH + "\n") * 6 + "Use the {braces} in a sentence like this one.\n",
    "policy_javascript": (
        "Please enable JavaScript in your browser to see it.\nRead our privacy policy here now.\n"
        + (ENGLISH + "\n") * 8
    ),
    "bullets": "\n".join(f"- item number {i} is here and is fine." for i in range(40)),
    "ellipsis": "\n".join(f"And then the story went on and on {i}..." for i in range(40)),
    "hashes": "#tag #more #news " * 60 + ENGLISH,
    "repeated_lines": (ENGLISH + "\n") * 30,
    "repeated_paragraphs": (ENGLISH + "\n\n") * 10 + "A different paragraph closes this text, and it is the end.",
    # "".join n-grams collide across word boundaries: ("ab", "c") == ("a", "bc").
    "join_collision": " ".join(["ab c", "a bc"] * 40) + ". " + ENGLISH * 6,
    "repeated_ngrams": ("the cat sat on the mat and then it ran away from the dog. " * 8 + ENGLISH * 6),
    "top_bigram": "very good " * 80 + ENGLISH,
    "long_word": "x" * 1200 + " is a long word. " + ENGLISH * 8,
    "few_lines": "First line is a sentence. Second sentence here. Third one too.\nAnd a last one. Done now. Yes.",
    "is_alpha": ("The token IS_ALPHA breaks spaCy's tokenizer, datatrove says. " * 12),
    "tabs_and_spaces": ("word\tword  word   word.\t\n  " * 30) + ENGLISH,
    "numbers": " ".join(str(i) for i in range(400)) + ". " + ENGLISH,
    "url_heavy": "Visit https://example.com/a/b?c=d and www.test.org for more, or mail me@x.io now. " * 15,
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_adversarial_documents_english(name):
    steps = _steps(["en"])
    assert _disagreements(steps, [(name, "en", ADVERSARIAL[name])]) == []


def test_five_megabyte_document():
    line = "A long document repeats this sentence with a number {} in it, again and again.\n"
    text = "".join(line.format(i % 977) for i in range(70_000))
    assert len(text) > 5_000_000
    steps = _steps(["en"], [FilterSpec(name="gopher_quality", params={"max_doc_words": None}), *FILTER_PRESETS[1:]])
    assert _disagreements(steps, [("big", "en", text)]) == []


@pytest.mark.parametrize(
    "params",
    [
        {"c4_quality": {"split_paragraph": False}},
        {"c4_quality": {"min_num_sentences": -1, "remove_citations": False}},
        {"c4_quality": {"filter_no_terminal_punct": False, "min_words_per_line": -1}},
        {"gopher_quality": {"min_stop_words": 4, "max_avg_word_length": 5}},
        {"gopher_repetition": {"top_n_grams": [[2, 0.01]], "dup_n_grams": [[5, 0.0], [7, 0.01]]}},
        {"fineweb_quality": {"line_punct_thr": 0.9, "short_line_thr": 0.1, "char_duplicates_ratio": 0.0}},
    ],
)
def test_parameters_reach_both_implementations(params):
    filters = [FilterSpec(name=name, params=params.get(name, {})) for name in FILTER_PRESETS]
    docs = [(name, "en", text) for name, text in ADVERSARIAL.items()]
    assert _disagreements(_steps(["en"], filters), docs) == []


def test_any_preset_order():
    docs = [(name, "en", text) for name, text in ADVERSARIAL.items()]
    order = ["c4_quality", "fineweb_quality", "gopher_repetition", "gopher_quality"]
    assert _disagreements(_steps(["en"], order), docs) == []


def test_synthetic_corpus(tmp_path):
    generate(tmp_path, docs=400, seed=3)
    records = [json.loads(line) for line in (tmp_path / "corpus.jsonl").read_text().splitlines()]
    docs = [(r["id"], "en", r["text"]) for r in records]
    assert _disagreements(_steps(["en"]), docs) == []


# Short real-looking paragraphs for the languages with their own tokenizer or script.
FIXTURES = {
    "fr": "Le chat de la voisine est sur le toit. Il regarde les oiseaux et il attend le soir dans la rue.",
    "de": "Der Hund der Nachbarin schläft im Garten. Er wartet auf den Abend und die Kinder aus der Schule.",
    "ru": "Кошка соседки сидит на крыше. Она смотрит на птиц и ждёт вечера, когда дети придут из школы.",
    "ar": "القطة تجلس على السطح في المساء. وهي تنظر إلى الطيور في الحديقة مع الأطفال من المدرسة.",
    "zh": "我们在学校的图书馆里看书。他的朋友也在这里，他们一起学习中文和历史。今天的天气很好。",
    "ja": "私たちは学校の図書館で本を読みました。彼の友達もここにいて、一緒に日本語を勉強しています。",
    "th": "เด็กๆ ไปโรงเรียนในตอนเช้า และกลับบ้านในตอนเย็น ที่บ้านมีแมวและสุนัขที่น่ารัก",
    "ko": "우리는 학교 도서관에서 책을 읽었습니다. 그의 친구도 여기에 있고 함께 한국어를 공부합니다.",
    "vi": "Chúng tôi đọc sách ở thư viện của trường. Bạn của anh ấy cũng ở đây và họ học tiếng Việt.",
    "hi": "हम स्कूल के पुस्तकालय में किताबें पढ़ते हैं। उसका दोस्त भी यहाँ है और वे हिंदी सीखते हैं।",
}


@pytest.mark.parametrize("language", sorted(FIXTURES))
def test_non_english_fixtures(language):
    sentence = FIXTURES[language]
    docs = [
        (f"{language}-prose", language, "\n".join([sentence * 3] * 6)),
        (f"{language}-lines", language, "\n".join(sentence.split(" ")[:4]) * 5),
        (f"{language}-repeat", language, (sentence + "\n") * 20),
        (f"{language}-mixed", language, sentence + "\n" + ADVERSARIAL["mixed_scripts"] + "\n" + sentence * 4),
    ]
    assert _disagreements(_steps([language]), docs) == []


def test_synthetic_multilingual_documents(tmp_path):
    counts = generate_multilingual(tmp_path, docs_per_language=4, seed=1)
    records = [json.loads(line) for line in (tmp_path / "multilingual.jsonl").read_text().splitlines()]
    steps = _steps(sorted(counts))
    docs = [(r["id"], r["lang"], r["text"]) for r in records]
    assert _disagreements(steps, docs) == []
    step = steps["fused"]
    kept = sum(step.decide(Document(text=t, id=i, metadata={"language": lang})) is None for i, lang, t in docs)
    assert kept >= 0.7 * len(docs), "per-language rules keep realistic text"


def test_language_rules_come_from_the_language_file():
    rules = language_rules("fr", list(FILTER_PRESETS), {})
    quality = dict(rules.filters)["gopher_quality"]
    assert rules.tokenizer_language == "fra_Latn"
    assert "le" in quality.stop_words and quality.max_avg_word_length == 11
    assert dict(language_rules("en", list(FILTER_PRESETS), {}).filters)["gopher_quality"].stop_words >= {"the", "and"}
