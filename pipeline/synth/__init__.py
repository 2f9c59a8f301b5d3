"""Synthetic corpus with ground truth, for tests, the demo and benchmarks (`mixwright synth`).

`generate(output_dir, docs, seed)` writes, in `output_dir`:

- `corpus.jsonl`: `{"id", "text", "meta"}` per line; `meta` is the ground truth: `domain` (an id of
  configs/taxonomy/domains.yaml), `quality_dims` ({dimension: 0-5}), `quality` (their weighted mean
  with the weights of configs/taxonomy/quality.yaml), `kind`, `language`, `dup_group`,
  `dup_edit_rate` and `planted` ([{benchmark, item_id, edit_rate}]).
- `benchmark.jsonl` + `benchmarks.yaml`: the synthbench items and a decontamination spec for them.
- `annotations.jsonl`: teacher-style labels (the `labels` backend's format) for every English
  document that is not spam (see `teacher_labels` for the noise).

What is in the corpus, by construction:

- ~81% clean English documents over every domain of the taxonomy but `other_spam`, in unequal
  shares (news and e-commerce large, mathematics and religion small, as on the web). Sentences are
  shared English templates whose slots are filled from per-domain word pools (10% of slots borrow
  another domain's pool), plus per-domain templates and blocks (datelines, prices and SKUs,
  handles, formulas and worked steps, code blocks, citations...); 20% of them take 25-45% of their
  domain words from one second domain, as multi-topic web pages do. Quality shows in the text: the
  share of explanatory sentences grows with `educational_value`, the share of chatty filler
  shrinks with `information_density`, and low `writing_quality` lowercases sentence starts.
  Clean documents pass datatrove's Gopher quality / Gopher repetition / C4 / FineWeb filters at
  default settings; code documents may lose their code lines to C4 (lines without terminal
  punctuation) and, when the block has curly brackets, the whole document (C4's curly-bracket rule).
- ~15% low-quality English: spam (caps, "buy now", links, repeated lines), boilerplate
  (navigation, cookie and copyright lines), heavy repetition (repeated paragraphs), too short
  (< 30 words) and symbol soup. Spam, boilerplate and symbols have domain `other_spam`.
- ~4% non-English (fr, de, es, it, pt, nl) everyday prose, domain `travel_lifestyle`.
- ~8% of documents in near-duplicate groups of 2-6: word-level edits (substitute, insert, delete)
  of a clean base document at rates from DUP_EDIT_RATES; the base carries the group id and rate 0.
- ~1% of the other clean documents contain one synthbench item (question + " " + answer) as a
  paragraph, verbatim or with word edits at 0.1 or 0.2.

Where things live: word pools, templates, per-domain weights and the synthbench templates are data,
in configs/synth/*.yaml (`vocab.load_data` reads each once); the code is split by concern: `vocab`
(pools, template filling), `styles` (domain styles and their structured blocks), `documents` (text
by kind), `neardup`, `benchmark` (synthbench and planting), `truth` (scores, teacher labels) and
`corpus` (the plan and the writer loop); `multilingual` writes separate non-English documents that
pass per-language filters (`generate_multilingual`, configs/synth/languages/*.yaml).

Determinism: one numpy Generator seeded with `seed` plans the corpus, another (seeded with
(seed, 1)) draws the text in document order, so the same seed gives byte-identical files.
"""

from pipeline.synth.benchmark import BENCHMARK_NAME, benchmark_items, benchmark_spec, write_benchmark
from pipeline.synth.corpus import generate
from pipeline.synth.multilingual import generate_multilingual, multilingual_languages
from pipeline.synth.neardup import DUP_EDIT_RATES, edit_words
from pipeline.synth.vocab import SHARED_POOLS

__all__ = [
    "BENCHMARK_NAME",
    "DUP_EDIT_RATES",
    "SHARED_POOLS",
    "benchmark_items",
    "benchmark_spec",
    "edit_words",
    "generate",
    "generate_multilingual",
    "multilingual_languages",
    "write_benchmark",
]
