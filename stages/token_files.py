"""Token files for training: each mixture group tokenized by datatrove's `DocumentTokenizer`
(nanotron's .ds format) or `MegatronDocumentTokenizer` (.bin/.idx), with a local tokenizer.json.

Task `rank` reads back the Parquet parts it wrote in P7, group by group, so the token files are
exactly the mixture's documents, and writes them to tokens/<group folders>/ (the same
`<key>=<value>` folders as the Parquet): a training framework can weight groups by folder (e.g.
Megatron's data blend). `shuffle` shuffles documents within each file: datatrove's own
shuffle (seeded) for the .ds format; for Megatron, which has none, hash order of (seed, id).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.tokens.megatron_tokenizer import MegatronDocumentTokenizer
from datatrove.pipeline.tokens.tokenizer import DocumentTokenizer

from pipeline.config import TokenizeConfig
from pipeline.errors import ConfigError
from stages.groups import SEPARATOR
from stages.rebalance import unit_hash

# Megatron .idx: 9-byte magic, version (8), dtype code (1), sequence count (8), document count (8),
# then per sequence a length (4), a pointer (8) and a document index (8), plus one index more.
_MEGATRON_HEADER = 9 + 8 + 1 + 8 + 8
_DS_SUFFIX = ".ds"


def check_tokenize(config: TokenizeConfig, key: str) -> None:
    """ConfigError unless the tokenizer file loads and holds the EOS token (preflight)."""
    from tokenizers import Tokenizer

    path = Path(config.tokenizer)
    if not path.is_file():
        raise ConfigError(f"{key}.tokenizer: expected a local tokenizer.json, found no file at {config.tokenizer!r}")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # the tokenizers library raises its own untyped errors
        raise ConfigError(f"{key}.tokenizer: expected a tokenizer.json, cannot load {path}: {exc}") from None
    if config.eos and tokenizer.token_to_id(config.eos_token) is None:
        raise ConfigError(
            f"{key}.eos_token: {config.eos_token!r} is not in the vocabulary of {path}; "
            f"give the tokenizer's end-of-text token or set {key}.eos=false"
        )


def _task_documents(folder: Path, rank: int) -> list[Document]:
    import pyarrow.parquet as pq

    docs = []
    for path in sorted(folder.glob(f"part-{rank:05d}-*.parquet")):
        table = pq.read_table(path, columns=["id", "text"])
        ids, texts = table.column("id").to_pylist(), table.column("text").to_pylist()
        docs += [Document(text=text, id=doc_id) for doc_id, text in zip(ids, texts)]
    return docs


def group_folders(root: Path) -> list[Path]:
    """The leaf `<key>=<value>` folders under root, sorted."""
    return sorted({p.parent for p in root.rglob("*") if p.is_file() and "=" in p.parent.name})


def group_name(root: Path, folder: Path) -> str:
    return SEPARATOR.join(unquote(part.split("=", 1)[1]) for part in folder.relative_to(root).parts)


class MixtureTokenizer(PipelineStep):
    """P7 (after the mixture writer): token files per group for task `rank`."""

    name = "🔢 Mixture token files"
    type = "🔢 - TOKENIZER"

    def __init__(
        self, mixture_dir: str | os.PathLike, tokens_dir: str | os.PathLike, config: TokenizeConfig, seed: int
    ):
        super().__init__()
        self.mixture_dir = Path(mixture_dir)
        self.tokens_dir = Path(tokens_dir)
        self.config = config
        self.seed = seed

    def _tokenizer_step(self, folder: Path, rank: int) -> PipelineStep:
        eos = self.config.eos_token if self.config.eos else None
        if self.config.format == "megatron":
            # datatrove's Megatron step always appends its eos_token when given one; None = no EOS.
            return MegatronDocumentTokenizer(str(folder), tokenizer_name_or_path=self.config.tokenizer, eos_token=eos)
        return DocumentTokenizer(
            str(folder),
            tokenizer_name_or_path=self.config.tokenizer,
            eos_token=eos,
            shuffle_documents=self.config.shuffle,
            seed=unit_hash(self.seed, "tokens", rank) % 2**32,
        )

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for stale in self.tokens_dir.rglob(f"{rank:05d}_*"):
            stale.unlink()
        for folder in sorted({p.parent for p in self.mixture_dir.rglob(f"part-{rank:05d}-*.parquet")}):
            docs = _task_documents(folder, rank)
            if not docs:
                continue
            if self.config.shuffle and self.config.format == "megatron":
                docs.sort(key=lambda doc: unit_hash(self.seed, doc.id, 0))
            out = self.tokens_dir / folder.relative_to(self.mixture_dir)
            out.mkdir(parents=True, exist_ok=True)
            with self.track_time():
                self._tokenizer_step(out, rank).run(iter(docs), rank, world_size)
            self.stat_update("documents", value=len(docs))
        yield from ()


def _token_size(tokenizer_path: str) -> int:
    from tokenizers import Tokenizer

    # datatrove's rule: uint16 tokens unless the vocabulary needs more
    return 4 if Tokenizer.from_file(tokenizer_path).get_vocab_size() > 2**16 else 2


def count_token_files(tokens_dir: str | os.PathLike, config: TokenizeConfig) -> dict[str, Any]:
    """Exact tokens and documents per group, from the sizes of the token files (not from the plan)."""
    root = Path(tokens_dir)
    size = _token_size(config.tokenizer)
    groups: dict[str, dict[str, int]] = {}
    for folder in group_folders(root):
        if config.format == "megatron":
            tokens = sum(p.stat().st_size for p in folder.glob("*.bin")) // size
            docs = sum((p.stat().st_size - _MEGATRON_HEADER - 8) // 20 for p in folder.glob("*.idx"))
        else:
            tokens = sum(p.stat().st_size for p in folder.glob(f"*{_DS_SUFFIX}")) // size
            docs = sum(p.stat().st_size // 8 for p in folder.glob(f"*{_DS_SUFFIX}.index"))
        groups[group_name(root, folder)] = {"tokens": tokens, "documents": docs}
    return {
        "format": config.format,
        "tokenizer": str(config.tokenizer),
        "token_bytes": size,
        "eos": config.eos_token if config.eos else None,
        "shuffle": config.shuffle,
        "folder": root.name,
        "total_tokens": sum(g["tokens"] for g in groups.values()),
        "groups": groups,
    }


def read_megatron(prefix: str | os.PathLike, token_bytes: int = 2) -> list[list[int]]:
    """The token sequences of one Megatron .bin/.idx pair (for checks and tests)."""
    import numpy as np

    idx = Path(f"{prefix}.idx").read_bytes()
    (count,) = struct.unpack_from("<Q", idx, 18)
    lengths = np.frombuffer(idx, dtype=np.int32, count=count, offset=_MEGATRON_HEADER)
    tokens = np.fromfile(f"{prefix}.bin", dtype=np.int32 if token_bytes == 4 else np.uint16)
    ends = np.cumsum(lengths)
    return [tokens[end - length : end].tolist() for end, length in zip(ends, lengths)]


def read_ds(path: str | os.PathLike, token_bytes: int = 2) -> list[list[int]]:
    """The token sequences of one datatrove .ds file and its .ds.index (for checks and tests)."""
    import numpy as np

    ends = np.fromfile(f"{path}.index", dtype=np.uint64).astype(np.int64)
    tokens = np.fromfile(path, dtype=np.uint32 if token_bytes == 4 else np.uint16)
    starts = np.concatenate(([0], ends[:-1]))
    return [tokens[s:e].tolist() for s, e in zip(starts, ends)]
