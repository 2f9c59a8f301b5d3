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

Determinism: one numpy Generator seeded with `seed` plans the corpus, another (seeded with
(seed, 1)) draws the text in document order, so the same seed gives byte-identical files.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from classifiers.taxonomy import DEFAULT_DOMAINS, DEFAULT_RUBRIC, Rubric, load_rubric, load_taxonomy

BENCHMARK_NAME = "synthbench"
BENCHMARK_SEED = 20240611  # fixed: the committed configs/benchmarks/synthbench.jsonl must not depend on the corpus seed
BENCHMARK_ITEMS = 200
SPAM_DOMAIN = "other_spam"
FOREIGN_DOMAIN = "travel_lifestyle"
DUP_EDIT_RATES = (0.0, 0.01, 0.03, 0.05, 0.1, 0.2)
PLANT_EDIT_RATES = (0.0, 0.0, 0.1, 0.2)  # half verbatim
KIND_SHARES = {"spam": 0.04, "boilerplate": 0.035, "repetition": 0.03, "short": 0.025, "symbols": 0.02, "non_english": 0.04}
DUP_SHARE = 0.08
PLANT_SHARE = 0.01
BORROW_SHARE = 0.1  # share of domain slots filled from another domain's pool: domains overlap, as on the web
# Web pages mix topics: this share of clean docs takes MIXED_SHARE of its domain words from one
# second domain, so that a domain classifier has honest errors to make.
MIXED_DOCS = 0.2
MIXED_SHARE = (0.25, 0.45)
TEACHER_DOMAIN_ERROR = 0.1
TEACHER_SCORE_JITTER = 0.5
FOREIGN_LANGUAGES = ("fr", "de", "es", "it", "pt", "nl")

# Unequal domain sizes, like web crawls; a taxonomy domain missing here gets DEFAULT_DOMAIN_WEIGHT.
DOMAIN_WEIGHTS = {
    "news": 14, "ecommerce": 13, "social_media": 10, "entertainment": 8, "technology": 8, "sports": 7,
    "travel_lifestyle": 7, "health": 6, "finance_business": 6, "education_reference": 5, "science": 4,
    "code": 4, "law_government": 4, "literature_arts": 3, "academic_research": 3, "mathematics": 2, "religion": 1.5,
}
DEFAULT_DOMAIN_WEIGHT = 3.0
# Mean educational value per domain (0-5): reference and science texts teach more than shop pages.
EDU_PRIOR = {
    "education_reference": 3.5, "mathematics": 3.5, "academic_research": 3.4, "science": 3.3, "code": 3.0,
    "health": 2.8, "law_government": 2.6, "finance_business": 2.4, "technology": 2.4, "religion": 2.3,
    "news": 2.2, "literature_arts": 2.2, "travel_lifestyle": 1.8, "sports": 1.6, "entertainment": 1.4,
    "ecommerce": 1.0, "social_media": 0.9,
}
# Mistakes a teacher LLM plausibly makes: a neighbouring domain, not a random one.
CONFUSABLE = {
    "ecommerce": "technology", "social_media": "entertainment", "entertainment": "literature_arts",
    "technology": "code", "science": "academic_research", "academic_research": "science",
    "mathematics": "education_reference", "code": "technology", "news": "law_government",
    "health": "science", "finance_business": "news", "law_government": "news",
    "education_reference": "science", "literature_arts": "entertainment", "sports": "entertainment",
    "travel_lifestyle": "ecommerce", "religion": "literature_arts",
}


def _words(text: str) -> list[str]:
    return text.split()


def _phrases(text: str) -> list[str]:
    return [p.strip() for p in text.split(";") if p.strip()]


# ----------------------------------------------------------------------------------------------
# Word pools. Slots in templates: {n} noun, {a} adjective, {v} transitive verb (past), {e} named
# entity of the domain (domain pools); {p} person, {g} general noun, {r} adverb, {c} city,
# {k} small number, {y} year, {t} time phrase (shared pools); domains may add pools of their own.
# ----------------------------------------------------------------------------------------------

SHARED_POOLS: dict[str, list[str]] = {
    "p": _phrases(
        "Maria Lopez; James Carter; Aisha Khan; Tom Becker; Elena Rossi; David Kim; Grace Owens; Samuel Reed;"
        " Nina Patel; Oliver Grant; Hannah Moore; Lucas Silva; Priya Shah; Daniel Novak; Chloe Martin; Omar Haddad;"
        " Laura Jensen; Victor Hale; Sofia Marin; Ethan Brooks; Rachel Stone; Marcus Webb; Julia Park; Kevin Doyle;"
        " Fatima Diallo; Peter Lang; Irene Costa; Noah Fischer; Amelia Ward; Henry Cole; Leila Nasser; Ben Harper"
    ),
    "g": _words(
        "people family neighbor community week morning evening afternoon weekend season year month group team"
        " friend colleague parent student teacher visitor reader customer member city town region country world"
        " office school library market street house kitchen garden village council committee audience crowd"
        " question answer problem idea plan decision reason result change chance choice detail example moment"
    ),
    "r": _words(
        "quickly carefully quietly clearly slowly recently finally easily usually rarely simply openly widely"
        " closely gradually steadily briefly suddenly properly partly largely mostly nearly fairly especially"
    ),
    "c": _words(
        "Boston Denver Seattle Chicago Austin Portland Toronto Dublin Leeds Glasgow Sydney Auckland Atlanta"
        " Phoenix Houston Oakland Bristol Cardiff Ottawa Calgary Nashville Memphis Tampa Raleigh Tucson Omaha"
    ),
    "k": [str(i) for i in range(2, 100)],
    "y": [str(i) for i in range(1958, 2026)],
    "t": _phrases(
        "on Monday; on Tuesday; on Wednesday; on Thursday; on Friday; over the weekend; last week; last month;"
        " earlier this year; this spring; last autumn; in the morning; late at night; before noon; after lunch"
    ),
}


@dataclass(frozen=True)
class DomainStyle:
    """How one domain writes: its word pools, its own sentence templates and an optional block
    (a dateline, a code block, a price list...) that `block(rng, fill)` returns as paragraphs."""

    pools: dict[str, list[str]]
    templates: tuple[str, ...]
    title: str = ""
    block: Callable[[np.random.Generator, Callable[[str], str]], list[str]] | None = None


def _pick(rng: np.random.Generator, items: list[str] | tuple[str, ...]) -> str:
    return items[int(rng.integers(len(items)))]


def _news_block(rng: np.random.Generator, fill: Callable[[str], str]) -> list[str]:
    month = _pick(rng, "January February March April May June July August September October November December".split())
    city = _pick(rng, SHARED_POOLS["c"]).upper()
    lead = fill("officials {v} the {a} {n} as the {n} drew criticism from the {e}.")
    return [f"{city}, {month} {int(rng.integers(1, 29))} (Metro Wire) - {lead[0].upper()}{lead[1:]}"]


def _ecommerce_block(rng: np.random.Generator, fill: Callable[[str], str]) -> list[str]:
    price = f"${int(rng.integers(5, 400))}.{int(rng.integers(0, 100)):02d}"
    sku = f"{_pick(rng, ['AX', 'BK', 'CT', 'DM', 'HL', 'RX'])}-{int(rng.integers(10000, 99999))}"
    lines = [
        fill("Price: " + price + " with free shipping on orders over $" + str(int(rng.integers(25, 99))) + "."),
        f"SKU: {sku}. In stock and ready to ship within {int(rng.integers(1, 5))} business days.",
        fill("- Includes a {a} {n} and a {a} {n} in the box."),
        fill("- Rated {k} out of 100 by verified buyers for the {n}."),
    ]
    return ["\n".join(lines)]


def _social_block(rng: np.random.Generator, fill: Callable[[str], str]) -> list[str]:
    posts = []
    for _ in range(int(rng.integers(2, 5))):
        handle = f"@{_pick(rng, SOCIAL_HANDLES)}{int(rng.integers(1, 99))}"
        tag = f"#{_pick(rng, SOCIAL_TAGS)}"
        body = fill("{s} {s}")
        posts.append(f"{handle} wrote: {body} Somehow {tag} is trending again and my post has {int(rng.integers(2, 900))} likes already.")
    return posts


def _math_block(rng: np.random.Generator, fill: Callable[[str], str]) -> list[str]:
    a, b, c = (int(x) for x in rng.integers(2, 12, size=3))
    x = int(rng.integers(1, 9))
    rhs = a * x + b
    return [
        f"Worked example. We want to solve the equation {a}x + {b} = {rhs} and find the value of the unknown x.",
        f"First we subtract {b} from both sides of the equation, which leaves us with {a}x = {rhs - b}. "
        f"Then we divide both sides by {a}, and we see that the solution is x = {x}. "
        "To check the answer, we put this value back into the left side and get the right side again, as required.",
        f"Next, consider the function f(x) = {c}x^2 + {a}x. Its derivative is {2 * c}x + {a}, "
        f"so the slope of the curve at the point where x is {x} equals {2 * c * x + a}.",
    ]


CODE_SNIPPETS = (
    "def {fn}(items, limit={k}):\n    result = []\n    for item in items:\n        if item.{attr} > limit:\n"
    "            result.append(item)\n    return result",
    "import {mod}\n\nclient = {mod}.Client(timeout={k})\nresponse = client.get('/{attr}')\nprint(response.status_code)",
    "class {cls}:\n    def __init__(self, {attr}):\n        self.{attr} = {attr}\n\n    def {fn}(self):\n        return self.{attr} * {k}",
    "function {fn}({attr}) {{\n  return {attr}.filter(x => x > {k});\n}}",
    "SELECT {attr}, COUNT(*) AS total\nFROM {mod}\nGROUP BY {attr}\nORDER BY total DESC\nLIMIT {k};",
)


def _code_block(rng: np.random.Generator, fill: Callable[[str], str]) -> list[str]:
    snippet = _pick(rng, CODE_SNIPPETS).format(
        fn=_pick(rng, CODE_FUNCS), attr=_pick(rng, CODE_ATTRS), mod=_pick(rng, CODE_MODULES),
        cls=_pick(rng, CODE_CLASSES), k=int(rng.integers(2, 100)),
    )
    return [fill("Here is a short example that shows how the {n} works in practice."), f"```\n{snippet}\n```",
            fill("Run it with a {a} {n} first, and check the {n} before you {e} it.")]


def _academic_block(rng: np.random.Generator, fill: Callable[[str], str]) -> list[str]:
    n = int(rng.integers(40, 900))
    return [
        "Abstract. " + fill("We study the {a} {n} and its effect on the {n} across {k} cohorts."),
        fill(f"Methods. We recruited {n} participants and {{v}} the {{n}} with a {{a}} {{n}}, following {{p}} et al. ({{y}})."),
        fill(f"Results. The {{n}} differed between groups (p < 0.0{int(rng.integers(1, 5))}, n = {n}), which supports the {{a}} hypothesis."),
    ]


def _sports_block(rng: np.random.Generator, fill: Callable[[str], str]) -> list[str]:
    home, away = (int(x) for x in rng.integers(0, 6, size=2))
    return [fill(f"Final score: {{e}} {home}, {{e}} {away}, after a {{a}} second half in front of {int(rng.integers(8, 80))},000 fans.")]


def _travel_block(rng: np.random.Generator, fill: Callable[[str], str]) -> list[str]:
    lines = [fill("Ingredients for {k} servings:")]
    pool = STYLES["travel_lifestyle"].pools
    for i in rng.choice(len(pool["ingredient"]), size=int(rng.integers(3, 6)), replace=False):
        lines.append(f"- {int(rng.integers(1, 4))} cups of {pool['ingredient'][i]}, {_pick(rng, pool['prep'])}.")
    return ["\n".join(lines)]


def _religion_block(rng: np.random.Generator, fill: Callable[[str], str]) -> list[str]:
    book = _pick(rng, ["Psalm", "Proverbs", "Isaiah", "Matthew", "John", "Romans", "Luke", "Genesis"])
    return [fill(f"As {book} {int(rng.integers(1, 50))}:{int(rng.integers(1, 30))} reminds the faithful, the {{n}} of the {{a}} {{n}} endures for ever.")]


def _law_block(rng: np.random.Generator, fill: Callable[[str], str]) -> list[str]:
    sec = f"Section {int(rng.integers(2, 90))}({_pick(rng, list('abcdef'))})"
    return [fill(f"Under {sec} of the {{e}}, the {{n}} must be {{v}} within {{k}} days of the {{n}}.")]


def _finance_block(rng: np.random.Generator, fill: Callable[[str], str]) -> list[str]:
    pct = f"{rng.uniform(0.2, 9.5):.1f}"
    return [fill(f"Shares of {{e}} rose {pct} percent to ${int(rng.integers(10, 500))}.{int(rng.integers(0, 100)):02d} after the company {{v}} its {{a}} {{n}}.")]


def _health_block(rng: np.random.Generator, fill: Callable[[str], str]) -> list[str]:
    return [fill(f"Common symptoms include {{symptom}}, {{symptom}} and {{symptom}}, and they usually last {int(rng.integers(2, 14))} days.")]


SOCIAL_HANDLES = _words("sunny_dev mike_t luna.rae jordanb pixelkat coffeeaddict trailrunner momof3 gamerguy88 bookworm_jen nightowl dadjokes")
SOCIAL_TAGS = _words("tbt mood weekendvibes fail blessed goals relatable monday nofilter throwback lol facts")
CODE_FUNCS = _words("parse_rows load_config fetch_user filter_items merge_records build_index render_page retry_request")
CODE_ATTRS = _words("score size count price weight status name timestamp user_id path")
CODE_MODULES = _words("requests sqlite3 pandas numpy orders users events logging httpx")
CODE_CLASSES = _words("Cache Parser Session Worker Config Router Buffer Queue")

STYLES: dict[str, DomainStyle] = {
    "ecommerce": DomainStyle(
        pools={
            "n": _words("blender backpack sneaker jacket charger mattress cookware headphones lamp vacuum stroller watch"
                        " kettle sofa rug duvet toaster suitcase wallet sunglasses cart checkout coupon discount warranty"
                        " refund delivery shipment order seller listing bundle size color fabric cushion zipper strap"),
            "a": _words("affordable durable lightweight waterproof cordless adjustable washable compact premium bestselling"
                        " refurbished stylish ergonomic breathable sturdy stackable foldable rechargeable"),
            "v": _words("ordered returned purchased unboxed shipped restocked discounted reviewed exchanged wrapped"
                        " assembled delivered refunded upgraded bought packed"),
            "e": _phrases("Amazon; Etsy; the outlet store; the online shop; Prime Day; Black Friday; the clearance sale;"
                          " the holiday sale; the checkout page; the seller"),
        },
        templates=(
            "Add the {a} {n} to your cart and save {k} percent at checkout.",
            "I {v} this {n} {t} and it arrived in {k} days, well packed.",
            "Five stars: the {n} feels {a} and the {n} is {r} {a}.",
            "Customers who {v} the {n} also bought a {a} {n}.",
            "Free returns within {k} days if the {n} does not fit.",
            "The {n} comes in {k} colors and ships from {e}.",
            "My only complaint is that the {n} is not as {a} as the photos suggest.",
            "Orders placed before noon ship the same day from our {c} warehouse.",
        ),
        title="{A} {N} for Every Home | Free Shipping",
        block=_ecommerce_block,
    ),
    "social_media": DomainStyle(
        pools={
            "n": _words("post thread comment feed selfie meme story follower timeline reply retweet upvote notification"
                        " profile livestream caption emoji hashtag vibe crush roommate brunch playlist outfit vlog"),
            "a": _words("hilarious cringe wholesome viral random awkward iconic relatable savage cute chill petty"
                        " unhinged lowkey highkey"),
            "v": _words("liked shared posted reposted screenshotted muted blocked followed unfollowed tagged commented"
                        " scrolled spammed dmed"),
            "e": _phrases("the group chat; my feed; the comments; this app; the algorithm; my cousin; my roommate; the internet"),
            "s": _phrases(
                "ok this is actually so funny.; not me crying at this again.; who else saw this coming?;"
                " can't stop laughing, honestly.; this made my whole day lol.; tell me why this is so true.;"
                " literally me every single morning.; i need answers right now.; the way i screamed.;"
                " no because this is real.; sending this to everyone i know.; why is nobody talking about this?"
            ),
        },
        templates=(
            "lol my roommate {v} the {a} {n} and now {e} is a mess.",
            "Not gonna lie, that {n} was {a} and i {v} it twice.",
            "Who else {v} the {n} from {e} this morning?",
            "honestly the {n} on {e} is so {a} right now.",
            "{k} people {v} my {n} and i am still not over it.",
            "Me after one {a} {n}: never again, until tomorrow.",
            "Can someone explain why my {n} got {v} by {e}?",
        ),
        block=_social_block,
    ),
    "entertainment": DomainStyle(
        pools={
            "n": _words("movie film series episode season album single soundtrack trailer premiere sequel cast director"
                        " actor actress singer band concert tour festival award nomination box office studio plot"
                        " character villain finale cameo franchise remake"),
            "a": _words("blockbuster acclaimed animated gripping star-studded campy haunting catchy binge-worthy"
                        " Oscar-winning overrated underrated cinematic nostalgic"),
            "v": _words("premiered streamed released directed starred dropped headlined remixed rebooted dubbed"
                        " casted teased renewed cancelled"),
            "e": _phrases("Netflix; the Grammys; the Oscars; Hollywood; the box office; Sundance; the studio; the streaming service;"
                          " the red carpet; Broadway"),
        },
        templates=(
            "The {a} {n} {v} on {e} and fans could not stop talking about the {n}.",
            "Critics called the {n} {a}, while the {n} felt {r} rushed.",
            "{p} {v} the {n} and earned a nomination at {e}.",
            "The third season of the {n} lands {t} with a {a} {n}.",
            "Without spoilers, the {n} in the final episode is {a}.",
            "The {n} grossed {k} million dollars in its opening weekend.",
            "Her new {n} is {a}, and the {n} is already a fan favorite.",
        ),
        title="{A} {N} Review: Is It Worth Watching?",
    ),
    "technology": DomainStyle(
        pools={
            "n": _words("smartphone laptop tablet chip processor router firmware update battery display cloud server"
                        " browser app startup platform device headset camera sensor storage bandwidth network"
                        " dashboard subscription patch outage gadget wearable"),
            "a": _words("wireless encrypted open-source cloud-based flagship budget foldable 5G high-resolution"
                        " energy-efficient enterprise beta backward-compatible"),
            "v": _words("launched upgraded rolled out patched benchmarked unveiled integrated deprecated shipped"
                        " tested deployed synced rebooted configured"),
            "e": _phrases("Apple; Google; Microsoft; Samsung; the IT department; Android; Windows; Linux; the data center;"
                          " the chipmaker; the app store"),
        },
        templates=(
            "The {a} {n} {v} by {e} supports version {k} of the {n}.",
            "Battery life on the {n} reached {k} hours in our {a} tests.",
            "{e} {v} a {a} {n} to fix the {n} reported by users.",
            "To enable the {n}, open settings and turn on the {a} {n}.",
            "Analysts expect the {a} {n} market to grow by {k} percent.",
            "The {n} runs {r} on older hardware, although the {n} lags.",
            "Our review unit shipped with {k} gigabytes of storage and a {a} {n}.",
        ),
        title="{A} {N} Hands-On: Specs, Price and Verdict",
    ),
    "science": DomainStyle(
        pools={
            "n": _words("cell molecule atom protein gene enzyme galaxy planet comet orbit star volcano glacier fossil"
                        " species ecosystem bacteria virus neuron photon electron magnet crystal climate ocean"
                        " atmosphere reaction experiment telescope particle wavelength"),
            "a": _words("microscopic radioactive magnetic genetic chemical molecular cosmic tectonic thermal"
                        " organic invisible dense ancient evolutionary"),
            "v": _words("observed measured detected absorbed emitted evolved catalyzed orbited heated cooled"
                        " split bonded released analyzed"),
            "e": _phrases("NASA; the laboratory; the research team; the Hubble telescope; biologists; physicists;"
                          " chemists; astronomers; geologists; the space agency"),
        },
        templates=(
            "Scientists {v} a {a} {n} inside the {n} for the first time.",
            "When a {n} is heated, its {n} moves faster and the {n} expands.",
            "{e} {v} the {n} using a {a} {n} and a {n}.",
            "The {n} is roughly {k} times larger than a typical {n}.",
            "Energy from the {n} is {v} by the {a} {n} and turned into heat.",
            "Over millions of years, the {n} {v} the {a} {n} we see today.",
            "A {a} {n} forms when {k} atoms share electrons.",
        ),
        title="How the {A} {N} Works",
    ),
    "academic_research": DomainStyle(
        pools={
            "n": _words("hypothesis framework methodology cohort dataset regression variance baseline ablation"
                        " corpus survey participant sample estimator coefficient confound literature paradigm"
                        " taxonomy benchmark protocol metric intervention covariate"),
            "a": _words("empirical longitudinal qualitative quantitative statistically significant robust novel"
                        " cross-sectional randomized peer-reviewed theoretical systematic preregistered"),
            "v": _words("validated replicated operationalized quantified estimated controlled hypothesized"
                        " synthesized modeled coded sampled benchmarked"),
            "e": _phrases("prior work; this paper; the reviewers; the present study; the authors; the literature;"
                          " the appendix; the supplementary material"),
        },
        templates=(
            "In this paper we propose a {a} {n} for the {n} problem.",
            "Consistent with {e}, we {v} the {n} on a {a} {n}.",
            "Table {k} reports the {a} {n} for each {n}.",
            "{p} et al. ({y}) {v} a similar {n} in a {a} {n}.",
            "These findings suggest that the {n} is {a} to the {n}.",
            "Limitations of the present study include the {a} {n} and the {n}.",
            "We leave the {a} {n} to future work.",
        ),
        block=_academic_block,
    ),
    "mathematics": DomainStyle(
        pools={
            "n": _words("theorem lemma proof integer polynomial matrix vector derivative integral function equation"
                        " prime divisor sequence series limit subset group ring field graph vertex angle triangle"
                        " root coefficient inequality"),
            "a": _words("continuous differentiable finite infinite rational irrational linear quadratic symmetric"
                        " convergent orthogonal nonnegative even odd"),
            "v": _words("proved derived factored integrated differentiated simplified bounded substituted"
                        " normalized expanded solved computed"),
            "e": _phrases("the previous lemma; induction; the triangle inequality; the definition; the main theorem;"
                          " the chain rule; the quadratic formula; Euclid"),
        },
        templates=(
            "Let the {n} be {a}, and suppose every {n} is {a}.",
            "By {e}, the {n} is bounded by the {n}.",
            "We {v} the {n} and obtain a {a} {n}.",
            "Therefore the {n} has exactly {k} roots, which completes the proof.",
            "Exercise {k}: show that every {a} {n} is {a}.",
            "Recall that a {n} is {a} if its {n} is zero.",
            "It follows from {e} that the sum of the first {k} odd numbers is a square.",
        ),
        title="{A} {N}: Definitions and Worked Problems",
        block=_math_block,
    ),
    "code": DomainStyle(
        pools={
            "n": _words("function variable loop array list dictionary class method module package library compiler"
                        " interpreter exception stack trace repository commit branch dependency endpoint query"
                        " parameter argument object string integer callback thread"),
            "a": _words("recursive asynchronous immutable deprecated nested generic static dynamic typed"
                        " thread-safe idempotent lazy verbose"),
            "v": _words("refactored debugged compiled imported installed committed merged deployed parsed"
                        " serialized cached profiled linted"),
            "e": _phrases("pip; npm; git; Python; JavaScript; Rust; the terminal; the debugger; the test suite;"
                          " Stack Overflow; the linter"),
        },
        templates=(
            "If the {n} raises an exception, wrap the call in a try block.",
            "I {v} the {a} {n} and now the {n} returns none.",
            "Use {e} to install the package, then import the {n}.",
            "The {n} is {a}, so every {n} shares the same state.",
            "Make sure the {n} is passed as a keyword argument.",
            "After I {v} the {n}, the test suite ran {k} times faster.",
            "This answer explains why the {a} {n} breaks the {n}.",
        ),
        title="How to Fix a {A} {N} Error",
        block=_code_block,
    ),
    "news": DomainStyle(
        pools={
            "n": _words("election governor senator mayor parliament minister protest ceasefire budget bill vote"
                        " campaign spokesperson investigation verdict scandal policy reform strike inflation"
                        " evacuation wildfire storm tariff summit coalition referendum"),
            "a": _words("bipartisan controversial emergency federal local international diplomatic preliminary"
                        " unprecedented official disputed widespread"),
            "v": _words("announced confirmed denied approved rejected condemned investigated postponed"
                        " signed vetoed reported evacuated"),
            "e": _phrases("the White House; the city council; the prime minister; the opposition; the ministry;"
                          " state officials; the police department; the United Nations; the electoral commission"),
        },
        templates=(
            "Officials {v} the {a} {n} late on Tuesday, according to a statement.",
            "The {n} comes weeks after {e} {v} a {a} {n}.",
            "\"We will not accept this {n},\" {p} told reporters in {c}.",
            "At least {k} people were affected by the {n}, local media reported.",
            "{e} is expected to vote on the {n} next week.",
            "Critics said the {a} {n} would hurt families in {c}.",
            "The {n} was {v} by a narrow margin of {k} votes.",
        ),
        title="{A} {N} Sparks Debate in {C}",
        block=_news_block,
    ),
    "health": DomainStyle(
        pools={
            "n": _words("symptom diagnosis treatment vaccine dose medication therapy patient clinic nurse physician"
                        " blood pressure cholesterol diet exercise sleep infection allergy inflammation immune system"
                        " vitamin protein calorie injury recovery"),
            "a": _words("chronic acute mild severe preventive clinical nutritious contagious inflammatory"
                        " over-the-counter low-fat prescribed"),
            "v": _words("prescribed diagnosed treated reduced lowered prevented monitored vaccinated screened"
                        " managed relieved tested"),
            "e": _phrases("the doctor; your physician; the clinic; the health department; the CDC; the nurse;"
                          " the hospital; a pharmacist"),
            "symptom": _words("fever fatigue headache nausea coughing dizziness chills soreness"),
        },
        templates=(
            "Talk to {e} before you stop any {a} {n}.",
            "A {a} {n} can often be {v} with rest and fluids.",
            "Adults should aim for {k} minutes of {n} most days of the week.",
            "The {n} is {r} {v} in people with a {a} {n}.",
            "Studies show that a {a} {n} lowers the risk of {n}.",
            "If the {n} lasts more than {k} days, seek medical care.",
            "{e} {v} the {n} and recommended a {a} {n}.",
        ),
        title="{A} {N}: Causes, Symptoms and Treatment",
        block=_health_block,
    ),
    "finance_business": DomainStyle(
        pools={
            "n": _words("stock bond dividend portfolio earnings revenue profit margin investor shareholder loan"
                        " mortgage interest rate budget retirement savings fund index merger acquisition forecast"
                        " quarter valuation startup credit debt tax"),
            "a": _words("quarterly annual bullish bearish volatile diversified fiscal taxable long-term short-term"
                        " profitable leveraged"),
            "v": _words("reported raised cut invested acquired borrowed repaid forecast hedged audited"
                        " refinanced diversified"),
            "e": _phrases("Acme Corp; the Federal Reserve; Wall Street; the central bank; Northwind Holdings;"
                          " the S&P 500; the board of directors; analysts"),
        },
        templates=(
            "{e} {v} its {a} {n} by {k} basis points.",
            "Investors who {v} in a {a} {n} saw steady returns.",
            "The company {v} {a} {n} of {k} million dollars.",
            "A {a} {n} can lower the {n} you pay each year.",
            "Analysts at {e} expect the {n} to rise next quarter.",
            "Before you sign a {n}, compare the {n} across lenders.",
            "The {n} fell {k} percent as {e} {v} its {n}.",
        ),
        title="{A} {N}: What Investors Need to Know",
        block=_finance_block,
    ),
    "law_government": DomainStyle(
        pools={
            "n": _words("statute regulation ordinance court judge plaintiff defendant appeal ruling contract clause"
                        " tenant landlord license permit testimony jurisdiction liability injunction amendment"
                        " attorney hearing settlement subpoena"),
            "a": _words("constitutional federal municipal binding statutory unlawful enforceable civil criminal"
                        " appellate administrative"),
            "v": _words("ruled upheld overturned enacted amended dismissed appealed enforced filed"
                        " settled repealed ratified"),
            "e": _phrases("the Supreme Court; the Act; the county court; Congress; the agency; the state legislature;"
                          " the tribunal; the appeals court"),
        },
        templates=(
            "The court {v} that the {n} was {a} under {e}.",
            "A {n} may file an {n} within {k} days of the {n}.",
            "{e} {v} the {a} {n} in {y}.",
            "The {n} argued that the {n} was not {a}.",
            "Under the {a} {n}, the {n} bears the burden of proof.",
            "The {n} must be signed by both parties and a {n}.",
            "Judge {p} {v} the {n} and ordered a new {n}.",
        ),
        block=_law_block,
    ),
    "education_reference": DomainStyle(
        pools={
            "n": _words("encyclopedia glossary definition chapter lesson textbook timeline map empire dynasty"
                        " revolution continent river capital language alphabet census treaty invention"
                        " civilization century region population curriculum"),
            "a": _words("historical geographic ancient medieval colonial official introductory comprehensive"
                        " primary secondary notable"),
            "v": _words("founded established conquered invented mapped documented defined compiled"
                        " translated explored settled"),
            "e": _phrases("the Roman Empire; the Nile; the Renaissance; the Industrial Revolution; the Ming dynasty;"
                          " the Silk Road; the encyclopedia; historians"),
        },
        templates=(
            "The {n} was {v} in {y} and became the {a} {n} of the region.",
            "{e} {v} the {n} along the {n}.",
            "The term {n} refers to a {a} {n} used in everyday life.",
            "Step {k}: read the {n} and write a short summary.",
            "Today the {n} has a population of about {k} million.",
            "Students often confuse the {n} with the {a} {n}.",
            "See also the {a} {n} and the {n} in the next chapter.",
        ),
        title="{N}: An Introduction",
    ),
    "literature_arts": DomainStyle(
        pools={
            "n": _words("novel poem stanza sonnet narrator protagonist chapter metaphor painting canvas sculpture"
                        " gallery exhibition portrait ballet opera symphony verse memoir essay manuscript"
                        " brushstroke chorus playwright"),
            "a": _words("lyrical melancholy surreal gothic romantic pastoral modernist abstract luminous"
                        " whimsical tragic epic"),
            "v": _words("painted sketched composed narrated illustrated sculpted recited staged"
                        " translated imagined portrayed"),
            "e": _phrases("the museum; the gallery; the poet; the novelist; the curator; the theater;"
                          " the critic; the orchestra"),
        },
        templates=(
            "The narrator {v} the {a} {n} as if it were a {n}.",
            "In the third {n}, the {n} turns {a} and strange.",
            "{e} {v} a {a} {n} inspired by the {n}.",
            "She walked home through the rain, thinking of the {a} {n}.",
            "The {n} hangs beside a {a} {n} in {e}.",
            "His {n} reads like a {n}, {a} and unresolved.",
        ),
        title="On the {A} {N}",
    ),
    "sports": DomainStyle(
        pools={
            "n": _words("match striker goalkeeper coach season playoff championship tournament league referee"
                        " penalty touchdown quarterback pitcher inning rebound sprint marathon medal roster"
                        " transfer injury lineup derby"),
            "a": _words("unbeaten defensive offensive relegated undefeated veteran rookie dominant clutch"
                        " record-breaking"),
            "v": _words("scored defeated signed benched traded drafted coached equalized tackled"
                        " won lost clinched"),
            "e": _phrases("United; the Rovers; the Wildcats; City; the Eagles; the Tigers; the Hawks; the Mariners"),
        },
        templates=(
            "{e} {v} the {n} in the {k}th minute to seal the win.",
            "The {a} {n} {v} twice before halftime.",
            "Coach {p} said the {n} was {a} after the loss.",
            "The {n} moved {e} up to third place in the {n}.",
            "A {a} {n} kept the {n} out of the lineup for {k} weeks.",
            "Fans in {c} celebrated the {a} {n} late into the night.",
        ),
        title="{E} Win {A} {N} in {C}",
        block=_sports_block,
    ),
    "travel_lifestyle": DomainStyle(
        pools={
            "n": _words("itinerary hotel hostel beach flight passport luggage recipe ingredient oven skillet garden"
                        " balcony wardrobe outfit hike trail museum cafe market souvenir road trip picnic candle"
                        " playlist weekend"),
            "a": _words("cozy scenic budget-friendly rustic seasonal homemade vegan crispy charming sunny"
                        " minimalist spacious"),
            "v": _words("booked packed baked roasted explored visited decorated planted brewed"
                        " sampled wandered tasted"),
            "e": _phrases("Lisbon; Kyoto; the Alps; Bali; Tuscany; the farmers market; the old town; the coast"),
            "ingredient": _words("flour rice oats lentils chickpeas spinach tomatoes milk sugar butter"),
            "prep": _phrases("sifted twice before you start; rinsed well under cold water; chopped into small pieces;"
                            " softened at room temperature; warmed gently in a pan; drained and patted dry;"
                            " soaked overnight in water; mixed with a pinch of salt"),
        },
        templates=(
            "We {v} a {a} {n} near {e} and stayed for {k} nights.",
            "Pack a {a} {n} and comfortable shoes for the {n}.",
            "Bake the {n} for {k} minutes until golden and crispy.",
            "My favorite {n} in {e} serves a {a} breakfast.",
            "The best time to visit the {n} is early {t}.",
            "Add a {a} {n} to make the {n} feel like home.",
        ),
        title="{K} {A} Ideas for Your Next {N}",
        block=_travel_block,
    ),
    "religion": DomainStyle(
        pools={
            "n": _words("prayer faith scripture gospel psalm parable sermon congregation pilgrimage worship"
                        " blessing grace salvation covenant prophet temple church mosque meditation"
                        " sabbath hymn soul mercy"),
            "a": _words("sacred holy divine spiritual devout merciful eternal humble righteous faithful"),
            "v": _words("prayed blessed worshipped preached forgave fasted sang confessed"
                        " proclaimed honored"),
            "e": _phrases("the Lord; the pastor; the congregation; the apostles; the rabbi; the imam; the faithful; the church"),
        },
        templates=(
            "The {n} reminds us that {e} is {a} and patient.",
            "Each week the {n} {v} together before the {n}.",
            "In the {n}, the prophet speaks of a {a} {n}.",
            "{e} {v} the {n} and asked for {a} {n}.",
            "Through {n} and {n}, believers seek a {a} life.",
        ),
        block=_religion_block,
    ),
}

# Shared English: the skeleton every domain fills with its own words. Fixed runs stay short (<= 4
# tokens) so that two templates in one document never share a 5-gram (Gopher's duplicate n-grams).
NEUTRAL_TEMPLATES = (
    "The {a} {n} {v} the {n} after {p} asked about it.",
    "{p} said that the {n} was {a} but the {n} was not.",
    "Most {g} agree that a {a} {n} matters more than the {n}.",
    "We {v} the {n} {t}, and it went {r} well.",
    "There is a {a} {n} near the {g} in {c}.",
    "{p} {v} a {a} {n} and then {v} the {n}.",
    "It took {k} minutes to find the {n}, which was {a}.",
    "Nobody in the {g} expected the {n} to be so {a}.",
    "A {n} like this is {r} {a}, even for a {n}.",
    "Some {g} prefer the {n}, while others choose the {a} {n}.",
    "Then the {n} changed, and {p} {v} the {a} {n}.",
    "Our {g} {v} the {n} {r} and kept the {a} {n}.",
    "Since {y}, the {n} has become {r} {a}.",
    "You can find the {a} {n} next to the {n}.",
    "Their {n} was {a}, though the {n} looked {a}.",
    "By the end of the {g}, the {n} had {v} every {n}.",
    "Why would anyone want a {n} that is not {a}?",
    "{p} from {c} {v} the {n} {t}.",
    "The {g} talked about the {n} for {k} hours.",
    "Each {n} has its own {a} {n} and its own {n}.",
)
EDU_TEMPLATES = (
    "This matters because the {n} {v} the {a} {n} in most cases.",
    "For example, {p} {v} a {a} {n} and measured the {n}.",
    "In other words, a {n} is a {a} {g} that shapes the {n}.",
    "The key idea is that every {n} depends on the {n}.",
    "To understand the {n}, first consider how the {a} {n} behaves.",
    "As a result, the {n} becomes {a} when the {n} grows.",
    "First, identify the {n}; second, compare it with the {a} {n}.",
    "Note that the {a} {n} differs from the {n} in {k} ways.",
    "A common mistake is to treat the {n} as a {a} {n}.",
    "In summary, the {n} explains why the {a} {n} {v} the {n}.",
    "The evidence shows that the {n} increased by {k} percent after {y}.",
    "One useful rule: a {a} {n} always needs a {n}.",
    "This is why experts describe the {n} as {a}.",
    "Compare this with the {n}, which {v} the {n} {r}.",
)
FILLER_TEMPLATES = (
    "Anyway, {p} said the {n} was pretty {a}, whatever that means.",
    "I don't know, maybe the {n} is {a} or maybe not.",
    "So yeah, that is basically it for the {n}.",
    "Stay tuned for more posts about the {n}!",
    "Honestly, what a {a} {g} it has been.",
    "Let me know what you think in the comments below!",
    "Okay, back to the {n} thing, where was I?",
    "Who knows what the {n} will look like next {g}.",
    "It is what it is, I guess, with the {n}.",
    "Thanks for reading and have a great {g}!",
)

# ----------------------------------------------------------------------------------------------
# Non-English prose: real function words and everyday vocabulary so lid.176 recognises each one.
# Slots: {s} subject phrase, {o} object phrase, {l} place phrase, {t} time phrase.
# ----------------------------------------------------------------------------------------------

FOREIGN: dict[str, dict[str, Any]] = {
    "fr": {
        "s": _phrases("ma sœur; le voisin; notre famille; mon frère; mon ami Pierre; la boulangère; le professeur; ma mère"),
        "o": _phrases("le pain frais; une petite maison; le journal du matin; des pommes rouges; un vieux vélo; la voiture bleue; un bon livre; le café chaud"),
        "l": _phrases("au marché; dans le jardin; à la gare; près de la rivière; dans la cuisine; à la plage; chez ma grand-mère; en ville"),
        "t": _phrases("ce matin; hier soir; tous les jours; pendant les vacances; le dimanche; depuis longtemps; cet été; demain"),
        "templates": (
            "{s} a acheté {o} {l} {t}.", "Nous sommes allés {l} avec {s} parce qu'il faisait beau.",
            "{t}, {s} prépare le repas pour toute la famille.", "Il y a beaucoup de monde {l}, mais nous avons trouvé {o}.",
            "{s} pense que c'est une très bonne idée pour les vacances.", "Je voudrais savoir pourquoi {s} n'est pas encore arrivé.",
            "Après le travail, {s} aime se promener {l}.", "On a parlé de {o} pendant tout le dîner.",
            "C'est toujours un plaisir de retrouver {s} {l}.", "{s} ne sait pas encore où trouver {o}.",
            "Quand il pleut, nous restons {l} et nous lisons.", "Elle m'a dit que {o} était trop cher cette année.",
        ),
    },
    "de": {
        "s": _phrases("meine Schwester; der Nachbar; unsere Familie; mein Bruder; mein Freund Stefan; die Lehrerin; der Bäcker; meine Mutter"),
        "o": _phrases("frisches Brot; ein kleines Haus; die Zeitung; rote Äpfel; ein altes Fahrrad; das blaue Auto; ein gutes Buch; heißen Kaffee"),
        "l": _phrases("auf dem Markt; im Garten; am Bahnhof; neben dem Fluss; in der Küche; am Strand; bei meiner Oma; in der Stadt"),
        "t": _phrases("heute Morgen; gestern Abend; jeden Tag; in den Ferien; am Sonntag; seit langer Zeit; diesen Sommer; morgen"),
        "templates": (
            "{s} hat {t} {o} {l} gekauft.", "Wir sind mit {s} {l} gewesen, weil das Wetter schön war.",
            "{t} kocht {s} das Essen für die ganze Familie.", "Es gibt viele Leute {l}, aber wir haben {o} gefunden.",
            "{s} glaubt, dass es eine sehr gute Idee für den Urlaub ist.", "Ich möchte wissen, warum {s} noch nicht gekommen ist.",
            "Nach der Arbeit geht {s} gern {l} spazieren.", "Wir haben den ganzen Abend über {o} gesprochen.",
            "Es ist immer schön, {s} {l} zu treffen.", "{s} weiß noch nicht, wo man {o} finden kann.",
            "Wenn es regnet, bleiben wir zu Hause und lesen.", "Sie hat mir gesagt, dass {o} dieses Jahr zu teuer ist.",
        ),
    },
    "es": {
        "s": _phrases("mi hermana; el vecino; nuestra familia; mi hermano; mi amigo Pablo; la profesora; el panadero; mi madre"),
        "o": _phrases("pan fresco; una casa pequeña; el periódico; manzanas rojas; una bicicleta vieja; el coche azul; un buen libro; café caliente"),
        "l": _phrases("en el mercado; en el jardín; en la estación; cerca del río; en la cocina; en la playa; en casa de mi abuela; en el centro"),
        "t": _phrases("esta mañana; anoche; todos los días; durante las vacaciones; los domingos; desde hace mucho tiempo; este verano; mañana"),
        "templates": (
            "{s} compró {o} {l} {t}.", "Fuimos {l} con {s} porque hacía buen tiempo.",
            "{t}, {s} prepara la comida para toda la familia.", "Hay mucha gente {l}, pero encontramos {o}.",
            "{s} cree que es una muy buena idea para las vacaciones.", "Quiero saber por qué {s} todavía no ha llegado.",
            "Después del trabajo, a {s} le gusta pasear {l}.", "Hablamos de {o} durante toda la cena.",
            "Siempre es un placer ver a {s} {l}.", "{s} todavía no sabe dónde encontrar {o}.",
            "Cuando llueve, nos quedamos en casa y leemos.", "Me dijo que {o} era demasiado caro este año.",
        ),
    },
    "it": {
        "s": _phrases("mia sorella; il vicino; la nostra famiglia; mio fratello; il mio amico Marco; la maestra; il fornaio; mia madre"),
        "o": _phrases("il pane fresco; una piccola casa; il giornale; le mele rosse; una vecchia bicicletta; la macchina blu; un bel libro; il caffè caldo"),
        "l": _phrases("al mercato; nel giardino; alla stazione; vicino al fiume; in cucina; al mare; dalla nonna; in centro"),
        "t": _phrases("stamattina; ieri sera; ogni giorno; durante le vacanze; la domenica; da molto tempo; quest'estate; domani"),
        "templates": (
            "{s} ha comprato {o} {l} {t}.", "Siamo andati {l} con {s} perché faceva bel tempo.",
            "{t}, {s} prepara il pranzo per tutta la famiglia.", "C'è molta gente {l}, ma abbiamo trovato {o}.",
            "{s} pensa che sia un'ottima idea per le vacanze.", "Vorrei sapere perché {s} non è ancora arrivato.",
            "Dopo il lavoro, {s} ama passeggiare {l}.", "Abbiamo parlato di {o} per tutta la cena.",
            "È sempre un piacere incontrare {s} {l}.", "{s} non sa ancora dove trovare {o}.",
            "Quando piove, restiamo a casa e leggiamo.", "Mi ha detto che {o} era troppo caro quest'anno.",
        ),
    },
    "pt": {
        "s": _phrases("minha irmã; o vizinho; a nossa família; o meu irmão; o meu amigo João; a professora; o padeiro; a minha mãe"),
        "o": _phrases("pão fresco; uma casa pequena; o jornal; maçãs vermelhas; uma bicicleta velha; o carro azul; um bom livro; café quente"),
        "l": _phrases("no mercado; no jardim; na estação; perto do rio; na cozinha; na praia; na casa da minha avó; no centro da cidade"),
        "t": _phrases("hoje de manhã; ontem à noite; todos os dias; durante as férias; aos domingos; há muito tempo; neste verão; amanhã"),
        "templates": (
            "{s} comprou {o} {l} {t}.", "Fomos {l} com {s} porque estava um dia bonito.",
            "{t}, {s} prepara o almoço para toda a família.", "Há muita gente {l}, mas encontramos {o}.",
            "{s} acha que é uma ótima ideia para as férias.", "Eu gostaria de saber por que {s} ainda não chegou.",
            "Depois do trabalho, {s} gosta de passear {l}.", "Falamos sobre {o} durante todo o jantar.",
            "É sempre um prazer encontrar {s} {l}.", "{s} ainda não sabe onde encontrar {o}.",
            "Quando chove, ficamos em casa e lemos.", "Ela me disse que {o} estava muito caro este ano.",
        ),
    },
    "nl": {
        "s": _phrases("mijn zus; de buurman; onze familie; mijn broer; mijn vriend Joost; de juf; de bakker; mijn moeder"),
        "o": _phrases("vers brood; een klein huis; de krant; rode appels; een oude fiets; de blauwe auto; een goed boek; warme koffie"),
        "l": _phrases("op de markt; in de tuin; op het station; bij de rivier; in de keuken; op het strand; bij mijn oma; in de stad"),
        "t": _phrases("vanochtend; gisteravond; elke dag; tijdens de vakantie; op zondag; al heel lang; deze zomer; morgen"),
        "templates": (
            "{s} heeft {t} {o} {l} gekocht.", "We zijn met {s} {l} geweest omdat het mooi weer was.",
            "{t} kookt {s} het eten voor de hele familie.", "Er zijn veel mensen {l}, maar we hebben {o} gevonden.",
            "{s} denkt dat het een heel goed idee is voor de vakantie.", "Ik wil graag weten waarom {s} nog niet is gekomen.",
            "Na het werk wandelt {s} graag {l}.", "We hebben de hele avond over {o} gepraat.",
            "Het is altijd leuk om {s} {l} te zien.", "{s} weet nog niet waar je {o} kunt vinden.",
            "Als het regent, blijven we thuis en lezen we.", "Ze zei dat {o} dit jaar te duur was.",
        ),
    },
}

# ----------------------------------------------------------------------------------------------
# Low-quality material.
# ----------------------------------------------------------------------------------------------

SPAM_LINES = (
    "BUY NOW!!! CHEAP {N} ONLY $9.99 >>> http://www.best-{n}-deals.biz/?ref={k}",
    "CLICK HERE TO WIN A FREE {N} >>> http://win-free-{n}.info/claim",
    "LIMITED OFFER - 90% OFF ALL {N} - ORDER TODAY",
    "Buy now buy now buy now: {n} {n} {n} cheap cheap cheap",
    "Hot {n} deals, best price guaranteed, visit www.{n}-outlet.top now",
    "$$$ MAKE MONEY FAST FROM HOME $$$ no experience needed",
    "100% FREE {N} - NO CREDIT CARD - http://free-{n}.click",
)
BOILERPLATE_LINES = (
    "Home | About Us | Products | Blog | Contact",
    "Skip to main content",
    "This website uses cookies to improve your experience. Accept all cookies",
    "Privacy Policy | Terms of Use | Cookie Settings",
    "© {y} All rights reserved.",
    "Follow us on Facebook Twitter Instagram",
    "Subscribe to our newsletter",
    "Sign in | Register | My Account",
    "Share this page",
    "Back to top",
    "Search this site",
    "Related posts",
    "Menu",
    "Loading...",
    "Previous | Next",
)
SYMBOLS = list("#$%&*@!^~<>|+=/\\{}[]")


@lru_cache(maxsize=4096)
def _compile(template: str) -> tuple[str, tuple[str, ...]]:
    """'{a} {n}.' -> ('{} {}.', ('a', 'n')): slots are filled positionally, which is fast."""
    slots = tuple(re.findall(r"\{(\w+)\}", template))
    return re.sub(r"\{(\w+)\}", "{}", template), slots


Mix = tuple[float, int]
NO_MIX: Mix = (BORROW_SHARE, -1)


class _Vocabulary:
    """All word pools in one object array, addressed by (domain, slot) -> (offset, length), so that
    one doc's slot words are drawn with a handful of vectorised numpy operations."""

    def __init__(self, styles: dict[str, DomainStyle]):
        self.domains = list(styles)
        slot_names = sorted(set(SHARED_POOLS) | {s for st in styles.values() for s in st.pools})
        self.slot_index = {s: i for i, s in enumerate(slot_names)}
        self.shared = np.array([s in SHARED_POOLS for s in slot_names])
        words: list[str] = []
        self.offsets = np.zeros((len(self.domains), len(slot_names)), dtype=np.int64)
        self.lengths = np.zeros_like(self.offsets)
        shared_at = {}
        for name, pool in SHARED_POOLS.items():
            shared_at[name] = (len(words), len(pool))
            words.extend(pool)
        for d, style in enumerate(styles.values()):
            for name, j in self.slot_index.items():
                if name in shared_at:
                    self.offsets[d, j], self.lengths[d, j] = shared_at[name]
                elif name in style.pools:
                    self.offsets[d, j], self.lengths[d, j] = len(words), len(style.pools[name])
                    words.extend(style.pools[name])
                else:  # a slot this domain lacks borrows the general nouns
                    self.offsets[d, j], self.lengths[d, j] = shared_at["g"]
        self.words = np.array(words, dtype=object)
        self.flat_offsets, self.flat_lengths = self.offsets.ravel(), self.lengths.ravel()
        # Borrowing only makes sense for slots every domain has (n, a, v, e).
        self.borrowable = np.array([s in ("n", "a", "v", "e") for s in slot_names])

    def draw(self, rng: np.random.Generator, domain: int, slots: np.ndarray, mix: Mix = NO_MIX) -> list[str]:
        """Words for `slots`; a share `mix[0]` of the domain slots come from domain `mix[1]` (-1: any)."""
        n = len(slots)
        u = rng.random(2 * n)
        pick, borrow = u[:n], u[n:]
        share, other = mix
        # A borrow draw below `share` is itself uniform on [0, share): rescaled, it picks the domain.
        source = (borrow * (len(self.domains) / share)).astype(np.int64) if other < 0 else other
        doms = np.where((borrow < share) & self.borrowable[slots], source, domain)
        cell = doms * self.offsets.shape[1] + slots
        idx = self.flat_offsets[cell] + (pick * self.flat_lengths[cell]).astype(np.int64)
        return self.words[idx].tolist()


class _Writer:
    """Draws English sentences for one domain from compiled templates."""

    def __init__(self, vocab: _Vocabulary, domain: str, style: DomainStyle):
        self.vocab = vocab
        self.domain = vocab.domains.index(domain)
        self.style = style
        groups = {"neutral": NEUTRAL_TEMPLATES, "edu": EDU_TEMPLATES, "filler": FILLER_TEMPLATES, "domain": style.templates}
        self.templates: list[tuple[str, np.ndarray]] = []
        self.group = []
        for name, templates in groups.items():
            for t in templates:
                fmt, slots = _compile(t)
                self.templates.append((fmt, np.array([vocab.slot_index[s] for s in slots], dtype=np.int64)))
                self.group.append(name)

    def fill(self, rng: np.random.Generator, text: str, mix: Mix = NO_MIX) -> str:
        fmt, slots = _compile(text)
        return fmt.format(*self.vocab.draw(rng, self.domain, np.array([self.vocab.slot_index[s] for s in slots], dtype=np.int64), mix))

    def sentences(self, rng: np.random.Generator, count: int, dims: dict[str, float], mix: Mix = NO_MIX) -> list[str]:
        """`count` sentences; templates are drawn without replacement (Gumbel top-k) within a pass,
        so a document repeats no template until it has used them all."""
        edu = dims.get("educational_value", 2.5)
        density = dims.get("information_density", 2.5)
        weight = {"neutral": 1.0, "edu": 0.15 + edu / 5 * 1.6, "filler": 0.05 + (5 - density) / 5 * 1.2, "domain": 1.6}
        logw = np.log(np.array([weight[g] for g in self.group]))
        order: list[int] = []
        while len(order) < count:
            keys = logw - np.log(-np.log(rng.random(len(logw))))
            order.extend(np.argsort(-keys)[: count - len(order)].tolist())
        chosen = [self.templates[i] for i in order]
        words = self.vocab.draw(rng, self.domain, np.concatenate([s for _, s in chosen]), mix)
        out = []
        pos = 0
        for fmt, slots in chosen:
            s = fmt.format(*words[pos : pos + len(slots)])
            pos += len(slots)
            out.append(s[0].upper() + s[1:])
        lower = dims.get("writing_quality", 3.0) < 2.0
        if lower:  # sloppy writing: lowercase sentence starts, as careless posts do
            out = [s[0].lower() + s[1:] if rng.random() < 0.6 else s for s in out]
        return out


_ARTICLE = re.compile(r"(?<!\S)([Aa]) (?=[aeiou])")


def _fix_articles(text: str) -> str:
    """'a apple' -> 'an apple': templates say 'a {slot}' whatever word fills the slot."""
    return _ARTICLE.sub(r"\1n ", text)


def _paragraphs(rng: np.random.Generator, sentences: list[str]) -> list[str]:
    paras = []
    i = 0
    while i < len(sentences):
        n = int(rng.integers(2, 7))
        paras.append(" ".join(sentences[i : i + n]))
        i += n
    return paras


def _doc_words(rng: np.random.Generator) -> int:
    """Lognormal length around 330 words: mostly 150-600, a tail to ~1500 (web docs average ~2 KB)."""
    return min(1500, max(90, int(rng.lognormal(5.8, 0.45))))  # e^5.8 ~ 330


def _title(rng: np.random.Generator, writer: _Writer, mix: Mix) -> str | None:
    if not writer.style.title:
        return None
    pattern = writer.style.title
    for slot in ("N", "A", "E", "C", "K"):
        pattern = pattern.replace("{" + slot + "}", "{" + slot.lower() + "}")
    return " ".join(w[0].upper() + w[1:] for w in writer.fill(rng, pattern, mix).split(" "))


def clean_text(rng: np.random.Generator, writer: _Writer, dims: dict[str, float], words: int, mix: Mix = NO_MIX) -> str:
    """A clean English document of about `words` words in the writer's domain."""
    sentences = writer.sentences(rng, max(6, words // 12), dims, mix)
    paras = _paragraphs(rng, sentences)
    if writer.style.block is not None:
        block = writer.style.block(rng, lambda t: writer.fill(rng, t, mix))
        at = 0 if writer.style.block is _news_block else int(rng.integers(1, len(paras) + 1))
        paras[at:at] = block
    title = _title(rng, writer, mix)
    if title is not None:
        paras.insert(0, title)
    return "\n\n".join(paras)


def foreign_text(rng: np.random.Generator, language: str) -> str:
    spec = FOREIGN[language]
    templates = spec["templates"]
    sentences = []
    for _ in range(int(rng.integers(8, 22))):
        s = re.sub(r"\{(\w)\}", lambda m: _pick(rng, spec[m.group(1)]), _pick(rng, templates))
        sentences.append(s[0].upper() + s[1:])
    return "\n\n".join(_paragraphs(rng, sentences))


def spam_text(rng: np.random.Generator, writer: _Writer) -> str:
    lines = []
    for _ in range(int(rng.integers(6, 16))):
        line = writer.fill(rng, _pick(rng, SPAM_LINES).replace("{N}", "{n}"))
        lines.append(line.upper() if "!!!" in line or "OFFER" in line or "FREE" in line else line)
    # Spam repeats its best line: it is what the repetition filters catch.
    lines.extend([lines[0]] * int(rng.integers(2, 5)))
    order = rng.permutation(len(lines))
    return "\n".join(lines[i] for i in order)


def boilerplate_text(rng: np.random.Generator, writer: _Writer) -> str:
    picks = rng.choice(len(BOILERPLATE_LINES), size=int(rng.integers(7, 13)), replace=False)
    lines = [writer.fill(rng, BOILERPLATE_LINES[i]) for i in picks]
    lines.insert(int(rng.integers(1, len(lines))), writer.sentences(rng, 1, {})[0])
    return "\n".join(lines)


def repetition_text(rng: np.random.Generator, writer: _Writer, dims: dict[str, float]) -> str:
    paras = _paragraphs(rng, writer.sentences(rng, int(rng.integers(4, 9)), dims))[:2]
    repeated = paras * int(rng.integers(3, 7))
    return "\n\n".join(repeated)


def short_text(rng: np.random.Generator, writer: _Writer, dims: dict[str, float]) -> str:
    text = " ".join(writer.sentences(rng, 2, dims))
    return " ".join(text.split()[: int(rng.integers(5, 29))]).rstrip(".,!?") + "."


def symbols_text(rng: np.random.Generator, writer: _Writer) -> str:
    tokens = []
    for _ in range(int(rng.integers(40, 160))):
        if rng.random() < 0.15:
            tokens.append(writer.fill(rng, "{n}"))
        else:
            tokens.append("".join(_pick(rng, SYMBOLS) for _ in range(int(rng.integers(1, 6)))) + str(int(rng.integers(0, 99))) * int(rng.random() < 0.3))
    lines = [" ".join(tokens[i : i + 12]) for i in range(0, len(tokens), 12)]
    return "\n".join(lines)


def edit_words(rng: np.random.Generator, text: str, rate: float, pool: list[str]) -> str:
    """Apply round(rate x words) word edits (substitute, insert or delete, equally likely) at distinct
    positions. Only plain alphabetic tokens are touched, so line and paragraph breaks survive."""
    tokens = text.split(" ")
    editable = np.flatnonzero([t.isalpha() for t in tokens])
    n_edits = min(len(editable), int(round(rate * len(tokens))))
    if n_edits == 0:
        return text
    positions = rng.choice(editable, size=n_edits, replace=False)
    ops = rng.integers(3, size=n_edits)
    words = rng.integers(len(pool), size=n_edits)
    edits = {int(p): (int(o), pool[int(w)]) for p, o, w in zip(positions, ops, words)}
    out = []
    for i, tok in enumerate(tokens):
        op = edits.get(i)
        if op is None:
            out.append(tok)
        elif op[0] == 0:
            out.append(op[1])
        elif op[0] == 1:
            out.extend((tok, op[1]))
        # op 2: delete
    return " ".join(out)


# ----------------------------------------------------------------------------------------------
# The synthetic benchmark.
# ----------------------------------------------------------------------------------------------

_SYLLABLES = _words("ka lo mer vin tha dor el syl bra qu en wi ros tal mu ne gar fen ox ilo pra dun")
_ITEM_KINDS = ("crates", "river", "element", "treaty", "train", "recipe", "orbit", "garden")


def _coined(rng: np.random.Generator, parts: int = 3) -> str:
    return "".join(_pick(rng, _SYLLABLES) for _ in range(parts)).capitalize()


def _benchmark_item(rng: np.random.Generator, kind: str) -> tuple[str, str]:
    place, person, thing = _coined(rng), f"{_coined(rng, 2)} {_coined(rng)}", _coined(rng, 2)
    a, b, c = (int(x) for x in rng.integers(3, 40, size=3))
    if kind == "crates":
        sold = 1 + c % (a * b - 1)  # fewer than were packed
        q = (f"A baker in {place} packs {a} rolls into each of {b} crates and then sells {sold} rolls at the morning market. "
             "How many rolls are still left in the crates?")
        return q, f"There are {a * b - sold} rolls left, because {a} times {b} is {a * b} and {a * b} minus {sold} is {a * b - sold}."
    if kind == "river":
        q = (f"Which river did the explorer {person} follow when she mapped the northern valleys of {place} province "
             f"during the dry summer of {1800 + a * 2}?")
        return q, f"She followed the {thing} river, which runs for {b * 10} kilometres through {place} province."
    if kind == "element":
        q = (f"In the fictional periodic table used by the {place} Academy, what is the atomic number of the light metal "
             f"called {thing}, and which colour does its flame show?")
        return q, f"{thing} has atomic number {a + b}, and its flame burns a pale {_pick(rng, ['green', 'violet', 'orange', 'blue'])}."
    if kind == "treaty":
        q = (f"Which two cities signed the Treaty of {place} in {1600 + a * 7}, ending the long dispute over grazing rights "
             "along the eastern border?")
        return q, f"The treaty was signed by {_coined(rng)} and {_coined(rng)}, who agreed to share the pastures for {b} years."
    if kind == "train":
        q = (f"A train leaves {place} at {a % 12 + 1} o'clock and travels at {b * 5} kilometres per hour for {c % 6 + 2} hours. "
             "How far does the train travel in total?")
        return q, f"The train travels {b * 5 * (c % 6 + 2)} kilometres, since {b * 5} times {c % 6 + 2} equals {b * 5 * (c % 6 + 2)}."
    if kind == "recipe":
        q = (f"According to the old cookbook of {person}, how many spoons of {thing} spice go into the winter stew "
             f"that is served at the {place} harvest festival?")
        return q, f"The recipe asks for {a % 9 + 2} spoons of {thing} spice, added just before the stew boils."
    if kind == "orbit":
        q = (f"How many days does the moon {thing} need to complete one orbit around the gas giant {place}, "
             "as measured by the first survey probe?")
        return q, f"The moon {thing} completes one orbit every {a + b + c} days, according to the first survey probe."
    q = (f"In the botanical garden of {place}, which rare flower did the gardener {person} plant beside the glass house "
         f"in the spring of {1900 + a + b}?")
    return q, f"{person} planted the {thing} lily, a rare flower that blooms only {c % 5 + 2} times each decade."


def benchmark_items() -> list[dict[str, str]]:
    """The synthbench items (id, question, answer), from a fixed seed: the same on every call."""
    rng = np.random.default_rng(BENCHMARK_SEED)
    items = []
    for i in range(BENCHMARK_ITEMS):
        question, answer = _benchmark_item(rng, _ITEM_KINDS[i % len(_ITEM_KINDS)])
        items.append({"id": f"{BENCHMARK_NAME}-{i:03d}", "question": question, "answer": answer})
    return items


def write_benchmark(path: Path) -> None:
    """Write benchmark_items() as JSONL (how configs/benchmarks/synthbench.jsonl is made)."""
    with open(path, "w") as fh:
        fh.writelines(json.dumps(item, ensure_ascii=False) + "\n" for item in benchmark_items())


def benchmark_spec(path: str) -> str:
    """The decontamination spec (YAML) for synthbench stored at `path`, relative to the spec's folder."""
    return f"benchmarks:\n  - {{name: {BENCHMARK_NAME}, path: {path}, fields: [question, answer], id: id, preset: null}}\n"


# ----------------------------------------------------------------------------------------------
# Ground truth and teacher labels.
# ----------------------------------------------------------------------------------------------


def _clip5(value: float) -> float:
    return min(5.0, max(0.0, value))  # scalar: np.clip costs ~5 us per call


def quality_dims(rng: np.random.Generator, domain: str, kind: str, rubric: Rubric) -> dict[str, float]:
    """True 0-5 scores. Clean docs: a per-doc latent z moves all dimensions together around the
    domain's prior; low-quality kinds sit near the bottom. Unknown dimensions follow writing quality."""
    if kind in ("clean", "non_english"):
        z = rng.normal(0.0, 0.9)
        base = {
            "educational_value": EDU_PRIOR.get(domain, 2.5) + z,
            "writing_quality": 3.2 + 0.6 * z,
            "information_density": 2.9 + 0.7 * z,
        }
        spread = 0.35
    else:
        floor = {"spam": 0.2, "symbols": 0.0, "boilerplate": 0.4, "repetition": 0.9, "short": 1.0}[kind]
        base = {"educational_value": floor, "writing_quality": floor + 0.3, "information_density": floor}
        spread = 0.2
    noise = rng.normal(0.0, spread, size=len(rubric.ids))
    return {d: round(_clip5(base.get(d, base["writing_quality"]) + float(e)), 2) for d, e in zip(rubric.ids, noise)}


def teacher_labels(rng: np.random.Generator, doc_id: str, domain: str, dims: dict[str, float], domains: list[str]) -> dict[str, Any]:
    """What an LLM teacher would answer: the true domain, replaced with probability 0.1 by a plausible
    wrong one (CONFUSABLE, else a random other domain), and every score shifted by uniform noise in
    [-0.5, 0.5] (clipped to 0-5, 2 decimals)."""
    label = domain
    if rng.random() < TEACHER_DOMAIN_ERROR:
        wrong = CONFUSABLE.get(domain)
        label = wrong if wrong in domains and wrong != domain else _pick(rng, [d for d in domains if d != domain])
    jitter = rng.uniform(-TEACHER_SCORE_JITTER, TEACHER_SCORE_JITTER, size=len(dims))
    noisy = {d: round(_clip5(s + float(j)), 2) for (d, s), j in zip(dims.items(), jitter)}
    return {"id": doc_id, "domain": label, **noisy}


def _plan(rng: np.random.Generator, docs: int, clean_domains: list[str]) -> dict[str, Any]:
    """Kinds (exact counts, shuffled), domains, dup groups and planted docs for the whole corpus."""
    kinds = np.full(docs, "clean", dtype=object)
    order = rng.permutation(docs)
    start = 0
    for kind, share in KIND_SHARES.items():
        count = int(round(share * docs))
        kinds[order[start : start + count]] = kind
        start += count
    weights = np.array([DOMAIN_WEIGHTS.get(d, DEFAULT_DOMAIN_WEIGHT) for d in clean_domains], dtype=float)
    domain_idx = rng.choice(len(clean_domains), size=docs, p=weights / weights.sum())

    clean = np.flatnonzero(kinds == "clean")
    members = rng.permutation(clean)[: int(round(DUP_SHARE * docs))]
    dup_of: dict[int, int] = {}  # copy index -> base index
    group_of: dict[int, int] = {}
    rate_of: dict[int, float] = {}
    pos = 0
    group = 0
    while len(members) - pos >= 2:
        size = min(int(rng.integers(2, 7)), len(members) - pos)
        block = np.sort(members[pos : pos + size])
        pos += size
        base = int(block[0])
        group_of[base], rate_of[base] = group, 0.0
        for copy in block[1:]:
            dup_of[int(copy)] = base
            group_of[int(copy)] = group
            rate_of[int(copy)] = float(DUP_EDIT_RATES[int(rng.integers(len(DUP_EDIT_RATES)))])
        group += 1
    free = np.setdiff1d(clean, np.array(sorted(group_of), dtype=np.int64))
    planted = rng.permutation(free)[: max(1, int(round(PLANT_SHARE * len(free))))] if len(free) else np.array([], dtype=np.int64)
    return {"kinds": kinds, "domain_idx": domain_idx, "dup_of": dup_of, "group_of": group_of, "rate_of": rate_of,
            "planted": {int(i) for i in planted}, "groups": group}


def generate(output_dir: Path, docs: int, seed: int = 0, taxonomy_path: Path = DEFAULT_DOMAINS,
             rubric_path: Path = DEFAULT_RUBRIC) -> dict[str, Any]:
    """Write corpus.jsonl, benchmark.jsonl, benchmarks.yaml and annotations.jsonl into `output_dir`
    (see the module docstring) and return a summary: counts per kind, domain and language."""
    if docs < 1:
        raise ValueError(f"--docs must be at least 1, got {docs}")
    taxonomy = load_taxonomy(taxonomy_path)
    rubric = load_rubric(rubric_path)
    domains = list(taxonomy.ids)
    if SPAM_DOMAIN not in domains:
        raise ValueError(f"{taxonomy_path}: the generator needs a '{SPAM_DOMAIN}' domain for spam, boilerplate and symbol soup")
    styles = {d: STYLES.get(d) or _generic_style(desc) for d, desc in ((x.id, x.description) for x in taxonomy.domains)}
    vocab = _Vocabulary(styles)
    writers = {d: _Writer(vocab, d, styles[d]) for d in domains}
    clean_domains = [d for d in domains if d != SPAM_DOMAIN]
    second = {d: [domains.index(o) for o in clean_domains if o != d] for d in clean_domains}

    plan = _plan(np.random.default_rng(seed), docs, clean_domains)
    rng = np.random.default_rng([seed, 1])
    items = benchmark_items()
    edit_pool = SHARED_POOLS["g"] + SHARED_POOLS["r"]
    bases: dict[int, tuple[str, str, dict[str, float]]] = {}  # base index -> (text, domain, dims) for its copies
    needed_bases = set(plan["dup_of"].values())

    output_dir.mkdir(parents=True, exist_ok=True)
    counts: dict[str, Counter] = {"kinds": Counter(), "domains": Counter(), "languages": Counter()}
    n_annotations = 0
    width = max(7, len(str(docs)))
    with open(output_dir / "corpus.jsonl", "w") as corpus, open(output_dir / "annotations.jsonl", "w") as annotations:
        for i in range(docs):
            kind = str(plan["kinds"][i])
            domain = clean_domains[int(plan["domain_idx"][i])]
            language = "en"
            planted: list[dict[str, Any]] = []
            if i in plan["dup_of"]:
                text, domain, dims = bases[plan["dup_of"][i]]
                text = edit_words(rng, text, plan["rate_of"][i], edit_pool)
            else:
                if kind in ("spam", "boilerplate", "symbols"):
                    domain = SPAM_DOMAIN
                elif kind == "non_english":
                    domain = FOREIGN_DOMAIN
                dims = quality_dims(rng, domain, kind, rubric)
                writer = writers[domain]
                if kind == "clean":
                    text = clean_text(rng, writer, dims, _doc_words(rng), _doc_mix(rng, second[domain]))
                    if i in plan["planted"]:
                        text, planted = _plant(rng, text, items, edit_pool)
                elif kind == "non_english":
                    language = FOREIGN_LANGUAGES[int(rng.integers(len(FOREIGN_LANGUAGES)))]
                    text = foreign_text(rng, language)
                elif kind == "spam":
                    text = spam_text(rng, writers[clean_domains[int(plan["domain_idx"][i])]])
                elif kind == "boilerplate":
                    text = boilerplate_text(rng, writers[clean_domains[int(plan["domain_idx"][i])]])
                elif kind == "symbols":
                    text = symbols_text(rng, writer)
                elif kind == "repetition":
                    text = repetition_text(rng, writer, dims)
                else:
                    text = short_text(rng, writer, dims)
                text = _fix_articles(text) if language == "en" else text
                if i in needed_bases:
                    bases[i] = (text, domain, dims)
            doc_id = f"synth-{i + 1:0{width}d}"
            meta = {
                "domain": domain,
                "quality": round(rubric.aggregate(dims), 3),
                "quality_dims": dims,
                "kind": kind,
                "language": language,
                "dup_group": plan["group_of"].get(i),
                "dup_edit_rate": plan["rate_of"].get(i),
                "planted": planted,
            }
            corpus.write(json.dumps({"id": doc_id, "text": text, "meta": meta}, ensure_ascii=False) + "\n")
            if language == "en" and kind != "spam":
                annotations.write(json.dumps(teacher_labels(rng, doc_id, domain, dims, domains), ensure_ascii=False) + "\n")
                n_annotations += 1
            counts["kinds"][kind] += 1
            counts["domains"][domain] += 1
            counts["languages"][language] += 1

    write_benchmark(output_dir / "benchmark.jsonl")
    (output_dir / "benchmarks.yaml").write_text(benchmark_spec("benchmark.jsonl"))
    return {
        "docs": docs,
        "seed": seed,
        **{k: dict(sorted(v.items())) for k, v in counts.items()},
        "dup_groups": plan["groups"],
        "dup_docs": len(plan["group_of"]),
        "planted": len(plan["planted"]),
        "benchmark_items": len(items),
        "annotations": n_annotations,
    }


def _doc_mix(rng: np.random.Generator, others: list[int]) -> Mix:
    """NO_MIX, or (share, second domain) for a MIXED_DOCS share of clean documents."""
    if rng.random() >= MIXED_DOCS:
        return NO_MIX
    return float(rng.uniform(*MIXED_SHARE)), others[int(rng.integers(len(others)))]


def _plant(rng: np.random.Generator, text: str, items: list[dict[str, str]], pool: list[str]) -> tuple[str, list[dict[str, Any]]]:
    """Insert one benchmark item as a paragraph (not before the title), verbatim or word-edited."""
    item = items[int(rng.integers(len(items)))]
    rate = PLANT_EDIT_RATES[int(rng.integers(len(PLANT_EDIT_RATES)))]
    paragraph = edit_words(rng, f"{item['question']} {item['answer']}", rate, pool)
    paras = text.split("\n\n")
    at = int(rng.integers(1, len(paras) + 1))
    paras.insert(at, paragraph)
    return "\n\n".join(paras), [{"benchmark": BENCHMARK_NAME, "item_id": item["id"], "edit_rate": rate}]


def _generic_style(description: str) -> DomainStyle:
    """A taxonomy domain without a hand-written style: its description's words are its vocabulary."""
    words = [w.strip(".,:;()").lower() for w in description.split()]
    content = sorted({w for w in words if len(w) > 3 and w.isalpha()}) or ["topic"]
    return DomainStyle(pools={"n": content, "a": ["general", "common", "typical"], "v": ["discussed", "described"], "e": content},
                       templates=())
