"""Teacher prompts: one request per (document, question), laid out for prefix caching.

Order: [system: instructions + the whole taxonomy + the whole rubric] [user: document, then question].
The system part is byte-identical in every request, so the server computes its KV cache once for the
whole run; the document comes next, so the 1 + len(rubric) questions about one document share the
prefix up to the end of the document and only the last ~30 question tokens are new prefill. Putting
the question first would break the second level of sharing; putting the document before the
instructions would break the first. The teacher sends a document's questions back to back so the
shared prefix is still in the cache (vLLM's automatic prefix caching, block granularity).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass

from classifiers.taxonomy import SCORE_LABELS, Rubric, Taxonomy

Messages = list[dict[str, str]]
DOMAIN_QUESTION = "domain"
_ANSWER_PREFIX = "Answer:"


@dataclass(frozen=True)
class Question:
    id: str  # "domain" or a rubric dimension id
    labels: tuple[str, ...]  # the single-token answers allowed
    text: str


def letter_map(taxonomy: Taxonomy, order: int) -> dict[str, str]:
    """letter -> domain id in answer order `order`; 0 is the taxonomy's own order.

    A few fixed orders, one picked per document by hash, average out a model's preference for
    some letters (WebOrganizer shuffles its choices) while keeping one shared system prompt per
    order for prefix caching.
    """
    ids = list(taxonomy.ids)
    if order:
        random.Random(order).shuffle(ids)
    return dict(zip(taxonomy.letters, ids, strict=True))


def system_prompt(taxonomy: Taxonomy, rubric: Rubric, letters: Mapping[str, str] | None = None) -> str:
    letters = letters or taxonomy.by_letter()
    described = {d.id: d.description for d in taxonomy.domains}
    domains = "\n".join(f"{letter}. {domain}: {described[domain]}" for letter, domain in letters.items())
    dims = "\n".join(f"- {d.id}: {d.description}" for d in rubric.dimensions)
    return (
        "You annotate web documents for a language-model pre-training corpus. You read one document "
        "and answer one question about it, judging only the document's content.\n\n"
        f"Domains (answer with the letter):\n{domains}\n\n"
        f"Quality dimensions (each scored with an integer from 0 to 5):\n{dims}"
    )


def questions(taxonomy: Taxonomy, rubric: Rubric, mode: str) -> tuple[Question, ...]:
    """The domain question first, then one per rubric dimension, in rubric order."""
    if mode == "generate":
        # FineWeb-Edu style: a short justification, then a final line the parser looks for.
        tail = "First justify in at most three sentences, then end with a last line '{p} X' where X is {x}."
    else:
        tail = "Reply with {x} only."
    first, last = taxonomy.letters[0], taxonomy.letters[-1]
    domain = Question(
        DOMAIN_QUESTION,
        taxonomy.letters,
        "Which domain fits the document best? "
        + tail.format(p=_ANSWER_PREFIX, x=f"the domain's letter ({first}-{last})"),
    )
    dims = tuple(
        Question(
            d.id,
            SCORE_LABELS,
            f"Score the document's {d.id} from 0 to 5 with its rubric. "
            + tail.format(p=_ANSWER_PREFIX, x="one digit (0-5)"),
        )
        for d in rubric.dimensions
    )
    return (domain, *dims)


def truncate(text: str, max_chars: int) -> str:
    """Cut at the last whitespace before `max_chars` so no word is split into odd tokens."""
    if len(text) <= max_chars:
        return text
    cut = text.rfind(" ", 0, max_chars)
    return text[: cut if cut > max_chars // 2 else max_chars]


def messages(system: str, document: str, question: Question) -> Messages:
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": f"<document>\n{document}\n</document>\n\n{question.text}"},
    ]


def plain_prompt(conversation: Messages) -> str:
    """For `/v1/completions` and tokenizers without a chat template: same order, same prefix sharing."""
    return "\n\n".join(m["content"] for m in conversation) + f"\n{_ANSWER_PREFIX}"


def prompt_hash(system: str, question: Question, mode: str, max_chars: int) -> str:
    """Everything but the document that changes the answer: a change re-asks, nothing else does."""
    payload = "\x1f".join([system, question.id, question.text, "|".join(question.labels), mode, str(max_chars)])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]
