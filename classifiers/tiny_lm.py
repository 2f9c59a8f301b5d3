"""A tiny randomly initialised causal LM with a word-level tokenizer, saved like any HF model.

For tests, benchmarks and offline smoke runs of the `transformers` backend: nothing is downloaded,
and the vocabulary holds every teacher label as one token, as a real chat model's does.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from classifiers.taxonomy import SCORE_LABELS, load_taxonomy


def build_tiny_lm(folder: str | Path, words: Iterable[str], seed: int = 0, n_positions: int = 2048) -> Path:
    """Save a 2-layer GPT-2 (width 32) and a WordLevel tokenizer over labels + `words` to `folder`."""
    import torch
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    folder = Path(folder)
    specials = ["[UNK]", "[PAD]", "[EOS]"]
    vocab = dict.fromkeys([*specials, *load_taxonomy().letters, *SCORE_LABELS, *words, ":", ".", "-", ","])
    core = Tokenizer(models.WordLevel({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]", eos_token="[EOS]"
    )
    tokenizer.save_pretrained(folder)
    torch.manual_seed(seed)
    eos = tokenizer.eos_token_id
    config = transformers.GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=n_positions,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=tokenizer.pad_token_id,
    )
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    return folder
