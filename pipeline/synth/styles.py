"""How each domain writes: its style from configs/synth/domains.yaml, plus the structured blocks
(datelines, price lists, worked equations, code...) that need numbers computed, so live in code."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from classifiers.taxonomy import Taxonomy
from pipeline.synth.vocab import SHARED_POOLS, DomainStyle, load_data, pick

Fill = Callable[[str], str]
Block = Callable[[np.random.Generator, Fill, dict[str, list[str]]], list[str]]


def _news(rng: np.random.Generator, fill: Fill, pools: dict[str, list[str]]) -> list[str]:
    month = pick(rng, pools["month"])
    city = pick(rng, SHARED_POOLS["c"]).upper()
    lead = fill("officials {v} the {a} {n} as the {n} drew criticism from the {e}.")
    return [f"{city}, {month} {int(rng.integers(1, 29))} (Metro Wire) - {lead[0].upper()}{lead[1:]}"]


def _ecommerce(rng: np.random.Generator, fill: Fill, pools: dict[str, list[str]]) -> list[str]:
    price = f"${int(rng.integers(5, 400))}.{int(rng.integers(0, 100)):02d}"
    sku = f"{pick(rng, pools['sku'])}-{int(rng.integers(10000, 99999))}"
    lines = [
        fill("Price: " + price + " with free shipping on orders over $" + str(int(rng.integers(25, 99))) + "."),
        f"SKU: {sku}. In stock and ready to ship within {int(rng.integers(1, 5))} business days.",
        fill("- Includes a {a} {n} and a {a} {n} in the box."),
        fill("- Rated {k} out of 100 by verified buyers for the {n}."),
    ]
    return ["\n".join(lines)]


def _social(rng: np.random.Generator, fill: Fill, pools: dict[str, list[str]]) -> list[str]:
    posts = []
    for _ in range(int(rng.integers(2, 5))):
        handle = f"@{pick(rng, pools['handle'])}{int(rng.integers(1, 99))}"
        tag = f"#{pick(rng, pools['tag'])}"
        body = fill("{s} {s}")
        likes = int(rng.integers(2, 900))
        posts.append(f"{handle} wrote: {body} Somehow {tag} is trending again and my post has {likes} likes already.")
    return posts


def _math(rng: np.random.Generator, fill: Fill, pools: dict[str, list[str]]) -> list[str]:
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


def _code(rng: np.random.Generator, fill: Fill, pools: dict[str, list[str]]) -> list[str]:
    snippet = pick(rng, pools["snippet"]).format(
        fn=pick(rng, pools["func"]),
        attr=pick(rng, pools["attr"]),
        mod=pick(rng, pools["module"]),
        cls=pick(rng, pools["class"]),
        k=int(rng.integers(2, 100)),
    )
    return [
        fill("Here is a short example that shows how the {n} works in practice."),
        f"```\n{snippet}\n```",
        fill("Run it with a {a} {n} first, and check the {n} before you {e} it."),
    ]


def _academic(rng: np.random.Generator, fill: Fill, pools: dict[str, list[str]]) -> list[str]:
    n = int(rng.integers(40, 900))
    abstract = "Abstract. " + fill("We study the {a} {n} and its effect on the {n} across {k} cohorts.")
    methods = fill(
        f"Methods. We recruited {n} participants and {{v}} the {{n}} with a {{a}} {{n}},"
        " following {p} et al. ({y})."
    )
    p = int(rng.integers(1, 5))  # drawn after the methods' words: the order of draws is the corpus
    results = fill(
        f"Results. The {{n}} differed between groups (p < 0.0{p}, n = {n}), which supports the {{a}} hypothesis."
    )
    return [abstract, methods, results]


def _sports(rng: np.random.Generator, fill: Fill, pools: dict[str, list[str]]) -> list[str]:
    home, away = (int(x) for x in rng.integers(0, 6, size=2))
    crowd = int(rng.integers(8, 80))
    return [fill(f"Final score: {{e}} {home}, {{e}} {away}, after a {{a}} second half in front of {crowd},000 fans.")]


def _travel(rng: np.random.Generator, fill: Fill, pools: dict[str, list[str]]) -> list[str]:
    lines = [fill("Ingredients for {k} servings:")]
    for i in rng.choice(len(pools["ingredient"]), size=int(rng.integers(3, 6)), replace=False):
        lines.append(f"- {int(rng.integers(1, 4))} cups of {pools['ingredient'][i]}, {pick(rng, pools['prep'])}.")
    return ["\n".join(lines)]


def _religion(rng: np.random.Generator, fill: Fill, pools: dict[str, list[str]]) -> list[str]:
    verse = f"{pick(rng, pools['book'])} {int(rng.integers(1, 50))}:{int(rng.integers(1, 30))}"
    return [fill(f"As {verse} reminds the faithful, the {{n}} of the {{a}} {{n}} endures for ever.")]


def _law(rng: np.random.Generator, fill: Fill, pools: dict[str, list[str]]) -> list[str]:
    sec = f"Section {int(rng.integers(2, 90))}({pick(rng, pools['subsection'])})"
    return [fill(f"Under {sec} of the {{e}}, the {{n}} must be {{v}} within {{k}} days of the {{n}}.")]


def _finance(rng: np.random.Generator, fill: Fill, pools: dict[str, list[str]]) -> list[str]:
    pct = f"{rng.uniform(0.2, 9.5):.1f}"
    price = f"${int(rng.integers(10, 500))}.{int(rng.integers(0, 100)):02d}"
    return [fill(f"Shares of {{e}} rose {pct} percent to {price} after the company {{v}} its {{a}} {{n}}.")]


def _health(rng: np.random.Generator, fill: Fill, pools: dict[str, list[str]]) -> list[str]:
    days = int(rng.integers(2, 14))
    return [
        fill(f"Common symptoms include {{symptom}}, {{symptom}} and {{symptom}}, and they usually last {days} days.")
    ]


# The `block:` names of configs/synth/domains.yaml.
BLOCKS: dict[str, Block] = {
    "news": _news,
    "ecommerce": _ecommerce,
    "social": _social,
    "math": _math,
    "code": _code,
    "academic": _academic,
    "sports": _sports,
    "travel": _travel,
    "religion": _religion,
    "law": _law,
    "finance": _finance,
    "health": _health,
}
LEADING_BLOCKS = frozenset({"news"})  # a dateline opens the article; other blocks go between paragraphs


def _style(spec: dict) -> DomainStyle:
    return DomainStyle(
        pools=spec["pools"],
        templates=tuple(spec["templates"]),
        title=spec.get("title", ""),
        block=spec.get("block"),
        weight=float(spec["weight"]),
        edu_prior=float(spec["edu_prior"]),
        confusable=spec.get("confusable"),
    )


def _generic_style(description: str) -> DomainStyle:
    """A taxonomy domain without a written style: its description's words are its vocabulary."""
    words = [w.strip(".,:;()").lower() for w in description.split()]
    content = sorted({w for w in words if len(w) > 3 and w.isalpha()}) or ["topic"]
    pools = {"n": content, "a": ["general", "common", "typical"], "v": ["discussed", "described"], "e": content}
    return DomainStyle(pools=pools, templates=())


def domain_styles(taxonomy: Taxonomy) -> dict[str, DomainStyle]:
    """A style for every domain of `taxonomy`, in its order."""
    written = load_data("domains")["domains"]
    return {d.id: _style(written[d.id]) if d.id in written else _generic_style(d.description) for d in taxonomy.domains}
