"""The Parquet mixture: schema, hive partitions read by pyarrow and pandas, shard size, manifest == recount."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from mixture_helpers import make_docs, run_mixture
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace

from pipeline.config import MixtureConfig
from stages.mixture_writer import MIXTURE_SCHEMA, MixtureWriter
from stages.tokens import TokenCounter, count_words

ODD_DOMAINS = {"ecommerce": 3, "a/b c": 1, "<script>alert(1)</script>": 1}


@pytest.fixture(scope="module")
def mixture(tmp_path_factory) -> tuple[Path, list]:
    root = tmp_path_factory.mktemp("mix")
    docs = make_docs(1500, seed=5, weights=ODD_DOMAINS)
    del docs[0].metadata["quality"]  # an unscored document
    config = MixtureConfig(multipliers={"ecommerce": 0.5, "a/b c": 2.5})
    run_mixture(docs, config, root, tasks=2, shard_docs=100)
    return root / "mixture", docs


def parquet_files(mixture_dir: Path) -> list[str]:
    return sorted(str(p) for p in mixture_dir.glob("domain=*/*.parquet"))


def test_files_have_the_explicit_schema_and_shard_size(mixture):
    mixture_dir, _ = mixture
    files = parquet_files(mixture_dir)
    assert {Path(f).parent.name for f in files} == {
        "domain=ecommerce",
        "domain=a%2Fb%20c",
        "domain=%3Cscript%3Ealert%281%29%3C%2Fscript%3E",
    }
    rows = [pq.read_metadata(f).num_rows for f in files]
    assert max(rows) == 100 and all(Path(f).name.startswith(("part-00000-", "part-00001-")) for f in files)
    for f in files:
        assert pq.read_schema(f).remove_metadata() == MIXTURE_SCHEMA


def test_pyarrow_and_pandas_read_the_partitioned_mixture(mixture):
    mixture_dir, docs = mixture
    table = ds.dataset(parquet_files(mixture_dir), format="parquet", partitioning="hive").to_table()
    frame = pd.read_parquet(mixture_dir, ignore_prefixes=[".", "_", "manifest"])
    assert table.num_rows == len(frame)
    assert set(frame["domain"].astype(str)) == set(ODD_DOMAINS)
    assert frame["id"].is_unique
    by_id = {d.id: d for d in docs}
    copy = frame[frame["repeat"] == 2].iloc[0]
    original = by_id[copy["id"].removesuffix("#r2")]
    assert copy["domain"] == "a/b c" and copy["text"] == original.text
    assert copy["token_count"] == count_words(original.text) and copy["source"] == original.metadata["source"]
    assert json.loads(copy["metadata"]) == {"uid": original.metadata["uid"]}
    assert frame[frame["id"] == docs[0].id]["quality"].isna().all()


def test_manifest_matches_a_recount_of_the_parquet(mixture):
    mixture_dir, docs = mixture
    manifest = json.loads((mixture_dir / "manifest.json").read_text())
    frame = pd.read_parquet(parquet_files(mixture_dir), partitioning="hive")
    frame["domain"] = frame["domain"].astype(str)
    for domain, group in frame.groupby("domain"):
        row = manifest["domains"][domain]
        assert row["docs_after"] == len(group)
        assert row["tokens_after"] == group["token_count"].sum()
        assert row["upsampled_copies"] == (group["repeat"] > 0).sum()
        before = [d for d in docs if d.metadata["domain"] == domain]
        assert row["docs_before"] == len(before)
        assert row["tokens_before"] == sum(count_words(d.text) for d in before)
        assert row["downsampled_away"] == len(before) - (group["repeat"] == 0).sum()
    assert manifest["totals"]["tokens_after"] == frame["token_count"].sum()
    assert manifest["domains"]["ecommerce"]["downsampled_away"] > 0
    assert manifest["seed"] == 0 and manifest["config_hash"] == "test" and manifest["versions"]["pyarrow"]


def test_rerun_of_a_task_replaces_its_parts(tmp_path):
    docs = make_docs(300, seed=1, weights={"news": 1})
    for _ in TokenCounter().run(iter(docs)):
        pass
    for shard_docs in (10, 1000):
        for _ in MixtureWriter(tmp_path, shard_docs).run(iter(docs), rank=4):
            pass
    assert [p.name for p in tmp_path.glob("domain=news/*")] == ["part-00004-00000.parquet"]
    assert pq.read_metadata(tmp_path / "domain=news" / "part-00004-00000.parquet").num_rows == 300


def test_token_counter_with_a_local_tokenizer_file(tmp_path):
    vocab = {"[UNK]": 0, "hello": 1, "world": 2, ",": 3}
    tokenizer = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    docs = make_docs(2, weights={"news": 1})
    docs[0].text = "hello, world again"
    out = list(TokenCounter(tmp_path / "stats", tokenizer_path=tmp_path / "tokenizer.json").run(iter(docs)))
    assert out[0].metadata["token_count"] == 4  # hello , world [UNK]
    stats = pq.read_table(tmp_path / "stats" / "00000.parquet").to_pylist()
    quality = docs[0].metadata["quality"]
    assert stats[0] == {
        "uid": 0,
        "id": "doc-0",
        "domain": "news",
        "quality": quality,
        "tokens": 4,
        "language": "en",
        "source": "corpus.jsonl:1",
    }
    with pytest.raises(FileNotFoundError, match="missing.json"):
        list(TokenCounter(tokenizer_path=tmp_path / "missing.json").run(iter(docs)))


def test_word_count_counts_unicode_word_runs():
    assert count_words("Héllo, wörld! 3.14 naïve_x") == 5
    assert count_words("") == 0


def test_word_count_fast_path_equals_the_regex():
    import random
    import re

    samples = [
        "a",
        " a",
        "a ",
        "_",
        "__init__(x)",
        "x\x00y",
        "\u00a0é\u2003ß",
        "日本語 テキスト",
        "\U0001f600x",
        "½ ² ٣",
    ]
    rng = random.Random(3)
    alphabet = "ab _-.,\n\t0é\u00a0ß\u200b日½\U0001f600"
    samples += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(300)]
    samples.append("".join(chr(c) for c in range(0x4E00, 0x4E00 + 200)) + " x y")  # many distinct: the regex path
    for text in samples:
        assert count_words(text) == len(re.findall(r"\w+", text)), text


def test_group_keys_are_folder_levels_not_columns(tmp_path):
    docs = make_docs(400, seed=4)
    for doc in docs[::2]:
        doc.metadata["language"] = "fr"
        doc.metadata["source"] = f"other.jsonl:{doc.metadata['uid']}"
    run_mixture(docs, MixtureConfig(group_by=["language", "source"]), tmp_path, tasks=2)
    files = parquet_files_deep(tmp_path / "mixture")
    assert {Path(f).parent.relative_to(tmp_path / "mixture").as_posix() for f in files} == {
        "language=en/source=corpus.jsonl",
        "language=fr/source=other.jsonl",
    }
    schema = pq.read_schema(files[0]).remove_metadata()
    assert "language" not in schema.names and "source" not in schema.names and "domain" in schema.names
    frame = ds.dataset(files, format="parquet", partitioning="hive").to_table().to_pandas()
    assert len(frame) == len(docs) and set(frame["language"]) == {"en", "fr"}
    by_id = {d.id: d for d in docs}
    row = frame.iloc[0]
    assert json.loads(row["metadata"])["source"] == by_id[row["id"]].metadata["source"]  # the line is kept
    manifest = json.loads((tmp_path / "mixture" / "manifest.json").read_text())
    assert set(manifest["groups"]) == {"en/corpus.jsonl", "fr/other.jsonl"}
    assert sum(d["docs_after"] for d in manifest["domains"].values()) == len(docs)


def parquet_files_deep(mixture_dir: Path) -> list[str]:
    return sorted(str(p) for p in mixture_dir.rglob("part-*.parquet"))
