"""`mixwright mix` and named mixtures on real runs: mix == a full run with that mixture whatever the
engine and worker count, shares on an independent recount, token files read back, the
comparison page, and a run whose P5 is not complete refused."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pyarrow.dataset as ds
import pytest
import yaml
from conftest import table_rows, write_config
from mixture_helpers import EOS, train_tokenizer
from tokenizers import Tokenizer

from pipeline.config import load_config
from pipeline.errors import ConfigError
from pipeline.mix import run_mix
from pipeline.runner import run_pipeline
from stages.token_files import read_ds, read_megatron

# Dolma-style rates per domain x quality bucket, with glob patterns; token files for Megatron.
ANNEAL = {
    "group_by": ["domain", "quality_bucket"],
    "quality_bins": [2.0, 3.0, 4.0],
    "multipliers": {"*/4+": 3.0, "*/0-2": 0.2, "code/*": 2.5},
    "selection": "quality",
    "seed": 3,
}
# Qwen2.5-Turbo-style long-context stage: 40% of tokens from long documents, 60% shorter.
# (quality selection meets each target to within one document; uniform hashing only on average.)
LONG = {
    "group_by": ["length_bucket"],
    "length_bins": [400],
    "mode": "shares",
    "shares": {"400+": 0.4},
    "selection": "quality",
}
# Language x domain shares with a pattern; one share for a group that has no documents.
SHARES = {
    "group_by": ["language", "domain"],
    "mode": "shares",
    "shares": {"en/science": 0.2, "en/news": 0.15, "*/code": 0.15},
    "selection": "quality",
}
# Mixing reads only P5's output: dedup adds nothing to these tests but time.
NO_DEDUP = {"dedup": {"enabled": False}}
MISSING = {"mode": "shares", "shares": {"religion_of_mars": 0.3, "news": 0.3}}


def run_cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    from pipeline.synth import generate

    folder = tmp_path_factory.mktemp("mix_corpus")
    generate(folder, docs=300, seed=11)
    texts = [json.loads(line)["text"] for line in (folder / "corpus.jsonl").open()]
    train_tokenizer(texts, folder / "tokenizer.json")
    return folder


def _tokenize(corpus: Path, fmt: str, shuffle: bool) -> dict:
    return {
        "tokenizer": str(corpus / "tokenizer.json"),
        "format": fmt,
        "eos": True,
        "eos_token": EOS,
        "shuffle": shuffle,
    }


@pytest.fixture(scope="module")
def full_run(corpus, tmp_path_factory) -> Path:
    """Every phase on the local engine, one worker, small shards; three named mixtures."""
    root = tmp_path_factory.mktemp("full")
    mixtures = {
        "anneal": {**ANNEAL, "tokenize": _tokenize(corpus, "megatron", shuffle=False)},
        "long": {**LONG, "tokenize": _tokenize(corpus, "datatrove", shuffle=True)},
        "shares": SHARES,
    }
    cfg = write_config(root / "full.yaml", corpus, root / "run", input={"shard_mb": 0.1}, mixtures=mixtures, **NO_DEDUP)
    run_pipeline(load_config(cfg), show_progress=False)
    return root / "run"


def _mixture_file(tmp_path: Path, name: str, tree: dict) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"mixture": tree}))
    return path


def test_mix_equals_a_full_run_on_another_engine_and_worker_count(full_run, corpus, tmp_path, ray_session):
    # The same mixture as the main one of a fresh full run on Ray with 2 workers and other shards...
    other = tmp_path / "ray_run"
    cfg = write_config(
        tmp_path / "ray.yaml",
        corpus,
        other,
        input={"shard_mb": 0.4},
        engine={"kind": "ray", "workers": 2},
        mixture=ANNEAL,
        **NO_DEDUP,
    )
    run_pipeline(load_config(cfg), show_progress=False)
    # ...and `mix` on the local run with the local engine and 2 workers.
    run_mix(
        full_run,
        _mixture_file(tmp_path, "anneal", ANNEAL),
        "again",
        {"kind": "local", "workers": 2},
        show_progress=False,
    )
    remixed = table_rows(full_run / "mixtures" / "again")
    assert len(remixed) > 100
    assert remixed == table_rows(other / "mixture")
    assert remixed == table_rows(full_run / "mixtures" / "anneal")


def test_named_mixture_leaves_the_main_mixture_and_the_funnel_alone(full_run):
    funnel = json.loads((full_run / "reports" / "funnel.json").read_text())
    assert funnel["conservation"]["holds"]
    main = json.loads((full_run / "mixture" / "manifest.json").read_text())
    assert main["group_by"] == ["domain"] and (full_run / "mixture").glob("domain=*")
    for name in ("anneal", "long", "shares"):
        manifest = json.loads((full_run / "mixtures" / name / "manifest.json").read_text())
        # a named mixture accounts for itself: every clean document is kept or sampled away
        assert manifest["totals"]["docs_before"] == main["totals"]["docs_before"]
        for row in manifest["groups"].values():
            assert row["docs_before"] == row["originals_after"] + row["downsampled_away"]
        assert (full_run / "mixtures" / name / "domain_mix.html").is_file()


def _recount(folder: Path, keys: list[str]) -> dict[str, float]:
    """Token share per group straight from the Parquet files (pandas; not the manifest's code)."""
    frame = (
        ds.dataset(str(folder), format="parquet", partitioning="hive", exclude_invalid_files=True)
        .to_table()
        .to_pandas()
    )
    tokens = frame.groupby(frame[keys].astype(str).agg("/".join, axis=1))["token_count"].sum()
    return (tokens / tokens.sum()).to_dict()


def test_target_shares_land_within_one_and_a_half_points_on_a_recount(full_run):
    long = _recount(full_run / "mixtures" / "long", ["length_bucket"])
    assert long["400+"] == pytest.approx(0.4, abs=0.015) and long["0-400"] == pytest.approx(0.6, abs=0.015)
    shares = _recount(full_run / "mixtures" / "shares", ["language", "domain"])
    for group, share in {"en/science": 0.2, "en/news": 0.15}.items():
        assert shares[group] == pytest.approx(share, abs=0.015), group
    assert sum(s for g, s in shares.items() if g.endswith("/code")) == pytest.approx(0.15, abs=0.015)


def test_token_files_match_the_parquet_text_and_the_manifest_counts(full_run, corpus):
    tokenizer = Tokenizer.from_file(str(corpus / "tokenizer.json"))
    eos = tokenizer.token_to_id(EOS)
    folder = full_run / "mixtures" / "anneal"
    manifest = json.loads((folder / "manifest.json").read_text())
    counted = {}
    for prefix in sorted(p.with_suffix("") for p in (folder / "_tokens").rglob("*.bin")):
        group_dir = prefix.parent.relative_to(folder / "_tokens")
        rank = prefix.name.split("_")[0]
        parts = sorted((folder / group_dir).glob(f"part-{rank}-*.parquet"))
        texts = [t for p in parts for t in ds.dataset(str(p)).to_table(columns=["text"]).column("text").to_pylist()]
        sequences = read_megatron(prefix)
        assert len(sequences) == len(texts)
        for text, sequence in list(zip(texts, sequences))[:3]:  # unshuffled: the Parquet order
            assert sequence == tokenizer.encode(text).ids + [eos]
        name = "/".join(unquote(part.split("=", 1)[1]) for part in group_dir.parts)
        counted[name] = counted.get(name, 0) + sum(len(s) for s in sequences)
    assert counted == {g: c["tokens"] for g, c in manifest["tokenized"]["groups"].items()}
    assert manifest["tokenized"]["total_tokens"] == sum(counted.values()) > 0


def test_shuffled_datatrove_token_files_hold_every_document_once(full_run, corpus):
    tokenizer = Tokenizer.from_file(str(corpus / "tokenizer.json"))
    folder = full_run / "mixtures" / "long"
    manifest = json.loads((folder / "manifest.json").read_text())
    for group_dir in sorted(p for p in (folder / "_tokens").iterdir()):
        sequences = [tuple(s) for f in sorted(group_dir.glob("*.ds")) for s in read_ds(f)]
        texts = ds.dataset(str(folder / group_dir.name), format="parquet").to_table(columns=["text"]).column("text")
        expected = Counter(tuple(tokenizer.encode(t).ids + [tokenizer.token_to_id(EOS)]) for t in texts.to_pylist())
        assert Counter(sequences) == expected
        group = unquote(group_dir.name.split("=", 1)[1])
        assert manifest["tokenized"]["groups"][group]["tokens"] == sum(map(len, sequences))


def test_comparison_page_puts_every_mixture_beside_the_clean_corpus(full_run):
    page = json.loads((full_run / "reports" / "mixtures.json").read_text())
    assert {"mixture", "anneal", "long", "shares"} <= set(page["mixtures"])
    assert sum(page["clean"]["shares"].values()) == pytest.approx(1.0)
    anneal = page["mixtures"]["anneal"]
    assert anneal["repeat_tokens"] > 0 and anneal["sampled_away"] > 0 and anneal["token_files"] > 0
    html = (full_run / "reports" / "mixtures.html").read_text()
    HTMLParser().feed(html)
    assert "clean corpus" in html and "anneal: groups" in html


def test_infeasible_share_says_why_in_the_manifest_and_report(full_run, tmp_path):
    manifest = run_mix(full_run, _mixture_file(tmp_path, "missing", MISSING), show_progress=False)
    assert any("religion_of_mars" in w and "closest feasible" in w for w in manifest["warnings"])
    html = (full_run / "mixtures" / "missing" / "domain_mix.html").read_text()
    assert "religion_of_mars" in html
    with pytest.raises(ConfigError, match="strict"):
        run_mix(full_run, _mixture_file(tmp_path, "strict", {**MISSING, "strict": True}), show_progress=False)


def test_mix_refuses_a_run_whose_p5_is_not_complete(full_run, tmp_path):
    partial = tmp_path / "partial"
    (partial / "work" / "p5_clean").mkdir(parents=True)
    (partial / "config.yaml").write_text((full_run / "config.yaml").read_text())
    mixture = _mixture_file(tmp_path, "m", ANNEAL)
    result = run_cli("mix", str(partial), "--mixture", str(mixture))
    assert result.returncode == 2 and "P5" in result.stderr and "not complete" in result.stderr
    result = run_cli("mix", str(tmp_path / "nothing"), "--mixture", str(mixture))
    assert result.returncode == 2 and "not a mixwright run" in result.stderr


def test_mix_command_line_and_bad_mixture_files(full_run, tmp_path):
    # the README's command, with the packaged example (the run folder in place of runs/demo)
    command = [
        "mix",
        str(full_run),
        "--mixture",
        "configs/mixtures/anneal.yaml",
        "--name",
        "readme",
        "--engine",
        "local",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *command], capture_output=True, text=True, timeout=600, cwd=tmp_path
    )  # from another folder: packaged configs/ paths resolve
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = json.loads((full_run / "mixtures" / "readme" / "manifest.json").read_text())
    assert manifest["group_by"] == ["domain", "quality_bucket"] and "mixed in" in result.stderr
    assert "Mixture readme by domain / quality_bucket" in result.stdout
    good = _mixture_file(tmp_path, "cli_mix", LONG)
    bad = _mixture_file(tmp_path, "bad", {"mode": "shares", "shares": {"code": 0.8, "news": 0.7}})
    result = run_cli("mix", str(full_run), "--mixture", str(bad))
    assert result.returncode == 2 and "sum to 1.5" in result.stderr
    result = run_cli("mix", str(full_run), "--mixture", str(good), "--name", "../escape")
    assert result.returncode == 2 and "--name" in result.stderr


@pytest.mark.parametrize(
    "tokenize, message",
    [
        ({"tokenizer": "absent/tokenizer.json"}, "mixtures.anneal.tokenize.tokenizer"),
        ({"eos_token": "<|not-there|>"}, "mixtures.anneal.tokenize.eos_token"),
    ],
)
def test_token_file_settings_that_cannot_run_are_refused_before_any_work(corpus, tmp_path, tokenize, message):
    from rich.console import Console

    from pipeline.preflight import preflight
    from pipeline.rundir import RunDir

    settings = {**_tokenize(corpus, "megatron", shuffle=True), **tokenize}
    cfg = write_config(
        tmp_path / "c.yaml", corpus, tmp_path / "run", mixtures={"anneal": {**ANNEAL, "tokenize": settings}}
    )
    with pytest.raises(ConfigError, match=message):
        preflight(load_config(cfg), RunDir(tmp_path / "run"), Console(stderr=True))
    assert not (tmp_path / "run").exists()


def test_named_mixture_settings_are_checked_at_load(corpus, tmp_path):
    bad_name = write_config(tmp_path / "a.yaml", corpus, tmp_path / "run", mixtures={"../x": ANNEAL})
    with pytest.raises(ConfigError, match=r"mixtures\.\.\./x"):
        load_config(bad_name)
    other_tokenizer = write_config(
        tmp_path / "b.yaml", corpus, tmp_path / "run", mixtures={"a": {"tokenizer": "t.json"}}
    )
    with pytest.raises(ConfigError, match="token counts come from P5"):
        load_config(other_tokenizer)
