"""Sampling rates, the repeat cap, infeasible targets, quality cutoffs and worker-count independence."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path

import pytest
import yaml
from conftest import table_rows
from mixture_helpers import make_docs, run_mixture
from pydantic import ValidationError

from pipeline.config import MixtureConfig
from pipeline.errors import ConfigError
from stages.groups import UNSCORED, Grouping, bucket_labels, match_key
from stages.rebalance import Cutoff, copy_count, sampling_rates

TOKENS = {"ecommerce": 4500, "news": 2500, "science": 1500, "code": 1000, "mathematics": 500}


def manifest(root) -> dict:
    return json.loads((root / "mixture" / "manifest.json").read_text())


def test_multiplier_rates_are_the_multipliers_with_default_for_unnamed():
    rates = sampling_rates(
        TOKENS, MixtureConfig(multipliers={"ecommerce": 0.3, "science": 2.0}, default_multiplier=0.5)
    )
    assert rates.rates == {"ecommerce": 0.3, "news": 0.5, "science": 2.0, "code": 0.5, "mathematics": 0.5}
    output = 0.3 * 4500 + 0.5 * 2500 + 2.0 * 1500 + 0.5 * 1000 + 0.5 * 500
    assert rates.target_shares["science"] == pytest.approx(3000 / output)
    assert rates.warnings == []


def test_multiplier_budget_scales_all_rates():
    rates = sampling_rates(TOKENS, MixtureConfig(multipliers={"ecommerce": 0.0}, token_budget=2750))
    assert sum(rates.rates[d] * t for d, t in TOKENS.items()) == pytest.approx(2750)
    assert rates.rates["ecommerce"] == 0.0 and rates.rates["news"] == pytest.approx(0.5)


def test_shares_without_budget_give_the_largest_output_within_the_cap():
    config = MixtureConfig(mode="shares", shares={"mathematics": 0.2, "code": 0.3, "science": 0.5}, max_repeats=4)
    rates = sampling_rates(TOKENS, config)
    # mathematics binds: 4 x 500 tokens = 20% of a 10,000-token output.
    assert rates.rates["mathematics"] == pytest.approx(4.0)
    assert rates.rates["code"] == pytest.approx(3.0) and rates.rates["science"] == pytest.approx(5000 / 1500)
    assert rates.rates["ecommerce"] == 0.0 and rates.rates["news"] == 0.0
    assert "ecommerce, news" in rates.warnings[0]


def test_unnamed_domains_share_the_remainder_in_natural_proportion():
    rates = sampling_rates(TOKENS, MixtureConfig(mode="shares", shares={"mathematics": 0.1}, token_budget=5000))
    assert rates.rates["mathematics"] == pytest.approx(1.0)
    rest = {d: r for d, r in rates.rates.items() if d != "mathematics"}
    assert rest == pytest.approx(dict.fromkeys(rest, 4500 / 9500))


def test_share_for_a_domain_without_documents_names_it_and_the_closest_mix():
    config = MixtureConfig(mode="shares", shares={"religion": 0.5, "science": 0.25, "code": 0.25})
    rates = sampling_rates(TOKENS, config)
    assert (
        "'religion'" in rates.warnings[1] and "closest feasible mix: {'code': 0.5, 'science': 0.5}" in rates.warnings[1]
    )
    assert rates.target_shares["science"] == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="religion"):
        sampling_rates(TOKENS, config.model_copy(update={"strict": True}))


def test_budget_beyond_the_cap_falls_back_to_the_largest_feasible_budget():
    config = MixtureConfig(mode="shares", shares={"mathematics": 0.5, "code": 0.5}, token_budget=10_000, max_repeats=2)
    rates = sampling_rates(TOKENS, config)
    assert "'mathematics'" in rates.warnings[-1] and "token_budget 2,000" in rates.warnings[-1]
    assert (rates.rates["mathematics"], rates.rates["code"]) == pytest.approx((2.0, 1.0))
    with pytest.raises(ConfigError, match="token_budget"):
        sampling_rates(TOKENS, config.model_copy(update={"strict": True}))


def test_multiplier_above_the_cap_is_capped_or_refused():
    config = MixtureConfig(multipliers={"mathematics": 6.0}, max_repeats=4)
    rates = sampling_rates(TOKENS, config)
    assert rates.rates["mathematics"] == 4.0 and "'mathematics'" in rates.warnings[0]
    with pytest.raises(ConfigError, match="max_repeats"):
        sampling_rates(TOKENS, config.model_copy(update={"strict": True}))


@pytest.mark.parametrize(
    "update, message",
    [
        ({"mode": "shares", "shares": {"code": 0.7, "news": 0.6}}, "sum to 1.3"),
        ({"mode": "shares", "shares": {"code": -0.1}}, "mixture.shares.code"),
        ({"mode": "shares"}, "mixture.shares is empty"),
        ({"multipliers": {"code": -1.0}}, "mixture.multipliers.code"),
    ],
)
def test_invalid_mixtures_are_refused_at_load(update, message):
    with pytest.raises(ValidationError, match=message):
        MixtureConfig(**update)


def test_copy_count_whole_repeats_plus_a_hashed_fraction():
    counts = Counter(copy_count(2.25, None, 0, f"d{i}", 1.0) for i in range(20_000))
    assert set(counts) == {2, 3} and counts[3] / 20_000 == pytest.approx(0.25, abs=0.01)
    assert copy_count(3.0, None, 0, "x", 1.0) == 3
    cutoff = Cutoff(quality=3.0, tie_hash=-1)
    assert [copy_count(0.5, cutoff, 0, "x", q) for q in (2.9, 3.0, 3.1)] == [0, 0, 1]


@pytest.fixture(scope="module")
def docs():
    return make_docs(4000, seed=3)


@pytest.mark.parametrize("selection", ["uniform", "quality"])
def test_target_shares_met_within_one_point(docs, tmp_path, selection):
    shares = {"science": 0.3, "code": 0.2, "mathematics": 0.15, "ecommerce": 0.1}  # news gets the other 25%
    run_mixture(docs, MixtureConfig(mode="shares", shares=shares, selection=selection), tmp_path, tasks=2)
    achieved = {d: row["share_after"] for d, row in manifest(tmp_path)["groups"].items()}
    for domain, share in {**shares, "news": 0.25}.items():
        assert achieved[domain] == pytest.approx(share, abs=0.01), domain


@pytest.mark.parametrize("selection", ["uniform", "quality"])
def test_multipliers_met_within_one_point(docs, tmp_path, selection):
    config = MixtureConfig(multipliers={"ecommerce": 0.3, "science": 2.0, "mathematics": 3.5}, selection=selection)
    plan = run_mixture(docs, config, tmp_path, tasks=2)
    for domain, row in manifest(tmp_path)["groups"].items():
        assert row["rate"] == config.multipliers.get(domain, 1.0)
        assert row["share_after"] == pytest.approx(plan.groups[domain].target_share, abs=0.01), domain


def test_repeat_cap_bounds_copies_per_document(docs, tmp_path):
    config = MixtureConfig(mode="shares", shares={"mathematics": 0.5, "science": 0.5}, max_repeats=3)
    run_mixture(docs, config, tmp_path, tasks=1)
    rows = table_rows(tmp_path / "mixture")
    copies = Counter(row["id"].split("#r")[0] for row in rows)
    assert max(copies.values()) == 3
    assert max(row["repeat"] for row in rows) == 2
    assert manifest(tmp_path)["groups"]["mathematics"]["rate"] == pytest.approx(3.0)


@pytest.mark.parametrize("selection", ["uniform", "quality"])
def test_output_identical_across_task_counts(docs, tmp_path, selection):
    config = MixtureConfig(multipliers={"ecommerce": 0.4, "code": 2.6}, selection=selection, seed=11)
    run_mixture(docs, config, tmp_path / "one", tasks=1, shard_docs=10_000)
    run_mixture(docs[::-1], config, tmp_path / "five", tasks=5, shard_docs=70)
    one, five = table_rows(tmp_path / "one" / "mixture"), table_rows(tmp_path / "five" / "mixture")
    assert len(one) > 1000 and one == five


def test_seed_changes_the_sample(docs, tmp_path):
    for seed in (0, 1):
        run_mixture(docs, MixtureConfig(multipliers={"ecommerce": 0.5}, seed=seed), tmp_path / str(seed), tasks=1)
    ids = [{r["id"] for r in table_rows(tmp_path / str(seed) / "mixture")} for seed in (0, 1)]
    assert ids[0] != ids[1]


def test_quality_downsampling_keeps_the_best_documents_exactly(docs, tmp_path):
    plan = run_mixture(docs, MixtureConfig(multipliers={"ecommerce": 0.3}, selection="quality"), tmp_path, tasks=3)
    kept = {r["id"] for r in table_rows(tmp_path / "mixture") if r["domain"] == "ecommerce"}
    ecommerce = [d for d in docs if d.metadata["domain"] == "ecommerce"]
    kept_q = [d.metadata["quality"] for d in ecommerce if d.id in kept]
    dropped_q = [d.metadata["quality"] for d in ecommerce if d.id not in kept]
    assert min(kept_q) >= max(dropped_q)
    cutoff = plan.groups["ecommerce"].cutoff
    assert min(kept_q) == cutoff.quality and all(q > cutoff.quality for q in kept_q if q not in dropped_q)
    kept_tokens = sum(d.metadata["token_count"] for d in ecommerce if d.id in kept)
    assert abs(kept_tokens - plan.groups["ecommerce"].target_tokens) <= 160  # within one document


def _possible_groups(config: MixtureConfig, taxonomy: set[str]) -> list[str]:
    values = {
        "domain": sorted(taxonomy),
        "language": ["en", "zh", "fr", "de", "es"],
        "source": ["corpus.jsonl"],
        "quality_bucket": [*bucket_labels(config.quality_bins), UNSCORED],
        "length_bucket": bucket_labels(config.length_bins),
    }
    return ["/".join(combo) for combo in itertools.product(*(values[key] for key in config.group_by))]


@pytest.mark.parametrize(
    "path", sorted(Path(__file__).parents[1].glob("configs/mixtures/*.yaml")), ids=lambda p: p.name
)
def test_example_mixtures_are_valid_and_every_key_names_a_group(path):
    taxonomy = {d["id"] for d in yaml.safe_load((path.parents[1] / "taxonomy" / "domains.yaml").read_text())["domains"]}
    tree = yaml.safe_load(path.read_text())
    configs = [MixtureConfig(**tree["mixture"])] if "mixture" in tree else []
    configs += [MixtureConfig(**section) for section in tree.get("mixtures", {}).values()]
    assert configs
    for config in configs:
        groups = _possible_groups(config, taxonomy)
        for key in [*config.multipliers, *config.shares]:
            assert any(match_key(group, [key]) for group in groups), key
        assert sampling_rates(dict.fromkeys(groups, 1000), config).rates


def test_bucket_labels_and_grouping_values():
    assert bucket_labels([2, 3.5]) == ["0-2", "2-3.5", "3.5+"]
    grouping = Grouping.from_config(MixtureConfig(group_by=["language", "quality_bucket", "length_bucket", "source"]))
    assert grouping.values("code", "fr", "a/b.jsonl", 3.0, 9000) == ("fr", "3-4", "8192+", "a/b.jsonl")
    assert grouping.values("code", None, None, -1.0, 0) == ("unknown", "unscored", "0-512", "unknown")
    metadata = {"language": "fr", "quality": 3.0, "token_count": 9000, "source": "in/a.jsonl:7", "input": {"site": "x"}}
    assert grouping.doc_values(metadata) == ("fr", "3-4", "8192+", "in/a.jsonl")
    by_site = Grouping.from_config(MixtureConfig(group_by=["source"], source_field="site"))
    assert by_site.doc_values(metadata) == ("x",)


def test_keys_match_exact_names_first_then_patterns_in_order():
    assert match_key("code/4+", ["*/4+", "code/4+"]) == "code/4+"
    assert match_key("code/4+", ["code/*", "*/4+"]) == "code/*"
    assert match_key("[red]code", ["[red]code"]) == "[red]code"
    assert match_key("news/0-2", ["code/*"]) is None


def test_rates_per_domain_and_quality_bucket_with_patterns(docs, tmp_path):
    config = MixtureConfig(
        group_by=["domain", "quality_bucket"], quality_bins=[2.0, 4.0], multipliers={"*/4+": 3.0, "*/0-2": 0.0}
    )
    plan = run_mixture(docs, config, tmp_path, tasks=2)
    rows = table_rows(tmp_path / "mixture")
    assert {r["quality_bucket"] for r in rows} == {"2-4", "4+"}  # a hive folder level per key
    assert all(r["quality"] >= 4.0 for r in rows if r["repeat"] > 0)
    for name, group in plan.groups.items():
        assert group.rate == {"4+": 3.0, "0-2": 0.0}.get(name.split("/")[1], 1.0)
    achieved = manifest(tmp_path)["groups"]
    assert achieved["science/4+"]["tokens_after"] == 3 * achieved["science/4+"]["tokens_before"]


def test_length_shares_and_a_share_that_cannot_be_met(docs, tmp_path):
    config = MixtureConfig(
        group_by=["length_bucket"], length_bins=[100], mode="shares", shares={"100+": 0.7, "9999+": 0.1}
    )
    plan = run_mixture(docs, config, tmp_path, tasks=2)
    groups = manifest(tmp_path)["groups"]
    assert groups["100+"]["share_after"] == pytest.approx(0.7 / 0.9, abs=0.01)
    assert any("'9999+'" in w and "closest feasible" in w for w in plan.warnings)


def test_multiplier_above_the_cap_notes_why_in_the_plan(docs, tmp_path):
    plan = run_mixture(docs, MixtureConfig(multipliers={"mathematics": 9.0}, max_repeats=2), tmp_path, tasks=1)
    assert "capped at mixture.max_repeats = 2" in plan.groups["mathematics"].note
    assert manifest(tmp_path)["groups"]["mathematics"]["note"] == plan.groups["mathematics"].note
    assert plan.groups["news"].note is None
