"""The synthetic non-English documents beside real text: FineWeb-2-style filter keep rates, the
statistics those filters look at, and lid.176's accuracy.

    python benchmarks/synth_languages.py [--docs 40] [--languages zh,ja,...]

For each language with a data file in configs/synth/languages/, the script generates `--docs`
documents (pipeline.synth.generate_multilingual) and takes as many real ones from the UD-treebank
sample (`--real`, ../shared/data/multilingual/docs.jsonl.gz). Both go through datatrove's Gopher
repetition, FineWeb quality and Gopher quality filters built with that language's FineWeb-2 config
(`--configs`: stop words, word lengths, repetition and line thresholds; min 2 stop words) and
datatrove's word tokenizer for the language. Per language it prints the keep rate, the median
number of words (tokens with a letter or digit), the mean word length, the share of words that are
FineWeb-2 stop words, and for the synthetic side the share lid.176 labels correctly.
This is how the data files were calibrated; tests never read ../shared.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import fasttext
import yaml
from datatrove.data import Document
from datatrove.pipeline.filters import FineWebQualityFilter, GopherQualityFilter, GopherRepetitionFilter
from datatrove.utils.text import PUNCTUATION_SET
from datatrove.utils.word_tokenizers import load_word_tokenizer

from pipeline.synth import generate_multilingual, multilingual_languages
from stages.langid import lid_model_path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "multilingual"
# ISO 639-1 -> FineWeb-2's config name, which is also datatrove's tokenizer code for the language.
FINEWEB2 = {
    "zh": "cmn_Hani",
    "ja": "jpn_Jpan",
    "th": "tha_Thai",
    "vi": "vie_Latn",
    "ru": "rus_Cyrl",
    "de": "deu_Latn",
    "fr": "fra_Latn",
    "es": "spa_Latn",
    "ar": "arb_Arab",
    "hi": "hin_Deva",
    "ko": "kor_Hang",
    "it": "ita_Latn",
    "pt": "por_Latn",
    "nl": "nld_Latn",
    "pl": "pol_Latn",
    "tr": "tur_Latn",
    "id": "ind_Latn",
    "cs": "ces_Latn",
    "fa": "fas_Arab",
    "he": "heb_Hebr",
    "ur": "urd_Arab",
}


def fineweb2_filters(config: dict, code: str) -> list:
    return [
        GopherRepetitionFilter(
            dup_line_frac=config["dup_line_frac"],
            top_n_grams=[tuple(x) for x in config["top_n_grams"]],
            dup_n_grams=[tuple(x) for x in config["dup_n_grams"]],
            language=code,
        ),
        FineWebQualityFilter(
            line_punct_thr=config["line_punct_thr"], new_line_ratio=config["new_line_ratio"], language=code
        ),
        GopherQualityFilter(
            min_avg_word_length=config["min_avg_word_length"],
            max_avg_word_length=config["max_avg_word_length"],
            max_non_alpha_words_ratio=config["max_non_alpha_words_ratio"],
            stop_words=config["stopwords"],
            min_stop_words=2,
            language=code,
        ),
    ]


def verdict(filters: list, text: str) -> str:
    """'keep', or the first filter's drop reason."""
    doc = Document(text=text, id="x", metadata={})
    for f in filters:
        result = f.filter(doc)
        if isinstance(result, tuple) and not result[0]:
            return result[1]
        if result is False:
            return f.name
    return "keep"


def describe(texts: list[str], filters: list, code: str, stop_words: set[str]) -> dict[str, float]:
    tokenizer = load_word_tokenizer(code)
    reasons = Counter(verdict(filters, t) for t in texts)
    words = [[w for w in tokenizer.word_tokenize(t) if any(ch not in PUNCTUATION_SET for ch in w)] for t in texts]
    return {
        "keep": reasons["keep"] / len(texts),
        "words": statistics.median(len(w) for w in words),
        "word_len": statistics.mean(statistics.mean(len(x) for x in w) for w in words if w),
        "stop": statistics.mean(sum(x in stop_words for x in w) / len(w) for w in words if w),
        "drops": dict((reasons - Counter(keep=reasons["keep"])).most_common(2)),
    }


def _pair(real: dict | None, synthetic: dict, key: str, fmt: str) -> str:
    """'real/synthetic' for one statistic; '-' where the sample has no text in the language."""
    return f"{format(real[key], fmt) if real else '-'}/{format(synthetic[key], fmt)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=40, help="documents per language and side")
    parser.add_argument("--languages", default=",".join(multilingual_languages()))
    parser.add_argument("--real", type=Path, default=SHARED / "docs.jsonl.gz")
    parser.add_argument("--configs", type=Path, default=SHARED / "fineweb2_configs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    languages = args.languages.split(",")

    real: dict[str, list[str]] = defaultdict(list)
    with gzip.open(args.real, "rt") as fh:
        for line in fh:
            doc = json.loads(line)
            if doc["language"] in languages and len(real[doc["language"]]) < args.docs:
                real[doc["language"]].append(doc["text"])
    synthetic: dict[str, list[str]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        generate_multilingual(Path(tmp), args.docs, languages, seed=args.seed)
        for line in (Path(tmp) / "multilingual.jsonl").read_text(encoding="utf-8").splitlines():
            doc = json.loads(line)
            synthetic[doc["lang"]].append(doc["text"])

    fasttext.FastText.eprint = lambda *a, **k: None  # silence the load-time warning
    lid = fasttext.load_model(str(lid_model_path()))
    header = (
        f"{'lang':5}{'keep real/syn':>15}{'words real/syn':>16}{'word len':>12}{'stop share':>13}{'lid':>6}  syn drops"
    )
    print(header)
    for lang in languages:
        config = yaml.safe_load((args.configs / f"{FINEWEB2[lang]}.yml").read_text())
        filters, stops = fineweb2_filters(config, FINEWEB2[lang]), set(config["stopwords"])
        syn = describe(synthetic[lang], filters, FINEWEB2[lang], stops)
        ref = describe(real[lang], filters, FINEWEB2[lang], stops) if real[lang] else None
        labels, _ = lid.predict([" ".join(t[:4000].split()) for t in synthetic[lang]])
        accuracy = sum(label[0] == f"__label__{lang}" for label in labels) / len(labels)

        cells = [
            _pair(ref, syn, key, fmt)
            for key, fmt in (("keep", ".2f"), ("words", ".0f"), ("word_len", ".1f"), ("stop", ".2f"))
        ]
        print(f"{lang:5}{cells[0]:>15}{cells[1]:>16}{cells[2]:>12}{cells[3]:>13}{accuracy:>6.2f}  {syn['drops'] or ''}")


if __name__ == "__main__":
    main()
