"""A skewed synthetic corpus and a direct P5 -> P6 -> P7 run over any number of tasks, for the mixture tests."""

from __future__ import annotations

import random
from pathlib import Path

from datatrove.data import Document

from pipeline.config import MixtureConfig
from stages.mixture_writer import MixtureWriter, write_manifest
from stages.rebalance import MixtureSampler, Sampling, compute_sampling
from stages.tokens import TokenCounter

# Natural token shares roughly 45 / 25 / 15 / 10 / 5 %: ecommerce over-represented, maths rare.
DOMAIN_WEIGHTS = {"ecommerce": 9, "news": 5, "science": 3, "code": 2, "mathematics": 1}


def make_docs(n: int, seed: int = 0, weights: dict[str, int] = DOMAIN_WEIGHTS) -> list[Document]:
    rng = random.Random(seed)
    domains = [d for d, w in weights.items() for _ in range(w)]
    docs = []
    for i in range(n):
        words = rng.randint(20, 160)
        docs.append(
            Document(
                text=" ".join(f"w{rng.randint(0, 999)}" for _ in range(words)),
                id=f"doc-{i}",
                metadata={
                    "domain": rng.choice(domains),
                    "quality": round(rng.uniform(0, 5), 1),
                    "language": "en",
                    "source": f"corpus.jsonl:{i + 1}",
                    "uid": i,
                },
            )
        )
    return docs


def run_mixture(docs: list[Document], config: MixtureConfig, root: Path, tasks: int, shard_docs: int = 200) -> Sampling:
    """P5 token stats, P6 plan (through its JSON), P7 sampling + writing, then the manifest."""
    shards = [docs[rank::tasks] for rank in range(tasks)]
    for rank, shard in enumerate(shards):
        for _ in TokenCounter(root / "stats").run(iter(shard), rank=rank, world_size=tasks):
            pass
    compute_sampling(root / "stats", config).to_json(root / "sampling.json")
    plan = Sampling.from_json(root / "sampling.json")
    for rank, shard in enumerate(shards):
        steps = MixtureWriter(root / "mixture", shard_docs).run(
            MixtureSampler(plan).run(iter(shard), rank=rank, world_size=tasks), rank=rank, world_size=tasks
        )
        for _ in steps:
            pass
    write_manifest(root / "mixture", plan, config_hash="test")
    return plan


EOS = "<|endoftext|>"


def train_tokenizer(texts: list[str], path: Path, vocab_size: int = 400) -> Path:
    """A small byte-level BPE trained here on `texts` (no download), saved as tokenizer.json."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer.save(str(path))
    return path
