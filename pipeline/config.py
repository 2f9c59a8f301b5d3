"""The run configuration: one pydantic model per section, unknown keys forbidden.

The section and key names are a contract (see DESIGN.md): users' YAML files, `--set` overrides
and the docs rely on them. A stage receives its own section, never the raw dict.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.errors import ConfigError

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
CONFIGS_DIR = PACKAGE_ROOT / "configs"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class InputConfig(Section):
    paths: list[str] = Field(default_factory=list)
    # auto: by extension (.warc, .warc.gz, .arc, .arc.gz are WARC: HTML responses, main text extracted)
    format: Literal["auto", "jsonl", "parquet", "warc"] = "auto"
    text_field: str = "text"
    id_field: str | None = "id"
    # Target size of one task's input; inputs are cut into shards of about this size so that
    # parallelism does not depend on how the corpus is split into files (datatrove issue #74).
    shard_mb: float = Field(default=32.0, gt=0)


class OutputConfig(Section):
    dir: str = "runs/demo"

    @field_validator("dir")
    @classmethod
    def _filesystem_dir(cls, value: str) -> str:
        # Any other URL (s3://, gs://, hf://) is worked on through a local mirror (pipeline/remote.py).
        return value.removeprefix("file://")


class EngineConfig(Section):
    kind: Literal["ray", "local"] = "ray"
    address: str | None = None
    workers: int | None = Field(default=None, ge=1)
    # A phase with no newly completed task for this long stops with PhaseFailed naming its unfinished tasks.
    stall_timeout_s: float = Field(default=1800.0, gt=0)


# The heuristic filter presets; stages/heuristics.py builds each one (a test keeps the two in step).
FILTER_PRESETS = ("gopher_quality", "gopher_repetition", "c4_quality", "fineweb_quality")
# One <lid.176 code>.yaml per language: its word tokenizer and its filter parameters (mostly FineWeb-2's).
LANGUAGES_DIR = CONFIGS_DIR / "languages"


def known_languages() -> list[str]:
    return sorted(path.stem for path in LANGUAGES_DIR.glob("*.yaml"))


class LangIdConfig(Section):
    enabled: bool = True
    # Listing a language is all it takes: its documents are filtered with configs/languages/<code>.yaml.
    languages: list[str] = Field(default_factory=lambda: ["en"])
    min_score: float = Field(default=0.65, ge=0.0, le=1.0)
    # Per-language filter parameters over that file, e.g. {fr: {gopher_quality: {min_stop_words: 1}}}.
    overrides: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict)

    @field_validator("languages")
    @classmethod
    def _known_languages(cls, languages: list[str]) -> list[str]:
        known = known_languages()
        unknown = [code for code in languages if code not in known]
        if unknown:
            raise ValueError(
                f"unknown language code(s) {', '.join(map(repr, unknown))}; expected lid.176 codes with settings "
                f"in configs/languages/: {', '.join(known)}"
            )
        return languages

    @field_validator("overrides")
    @classmethod
    def _overrides_listed(cls, overrides: dict[str, dict[str, dict[str, Any]]], info: Any) -> dict:
        languages = info.data.get("languages", [])
        for code, presets in overrides.items():
            if code not in languages:
                raise ValueError(f"langid.overrides.{code}: language {code!r} is not in langid.languages {languages}")
            for name in presets:
                if name not in FILTER_PRESETS:
                    raise ValueError(
                        f"langid.overrides.{code}.{name}: unknown filter preset; known: {', '.join(FILTER_PRESETS)}"
                    )
        return overrides


class FilterSpec(Section):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)


# The keyword options each teacher backend's constructor takes from `teacher`.
_BACKEND_KEYS = {
    "endpoint": (
        "url",
        "api",
        "concurrency",
        "timeout_s",
        "retries",
        "backoff_s",
        "top_logprobs",
        "generate_max_tokens",
        "constrain",
        "chat_template_kwargs",
    ),
    "vllm": (
        "tensor_parallel_size",
        "replicas",
        "max_model_len",
        "top_logprobs",
        "generate_max_tokens",
        "seed",
        "revision",
        "gpu_memory_utilization",
        "dtype",
        "quantization",
        "max_num_batched_tokens",
        "trust_remote_code",
        "max_logprobs",
        "chat_template_kwargs",
        "forward_env",
        "constrain",
        "load_timeout_s",
        "block_timeout_s",
        "block_docs",
    ),
    "transformers": ("device", "batch_size", "generate_max_tokens", "revision", "chat_template_kwargs"),
}


class TeacherConfig(Section):
    backend: Literal["labels", "vllm", "endpoint", "transformers"] = "labels"
    model: str | None = None
    # Hugging Face revision (commit or tag) of `model`; part of the cache key, so pin it.
    revision: str | None = None
    # endpoint: one OpenAI-compatible base URL, or a list of replicas' URLs
    url: str | list[str] | None = None
    labels_path: str | None = None
    mode: Literal["logprobs", "generate"] = "logprobs"
    sample_size: int = Field(default=2000, ge=1)
    seed: int = 0
    # Documents are cut to this many characters before prompting (the prompt cost bound).
    max_chars: int = Field(default=4000, ge=1)
    top_logprobs: int = Field(default=20, ge=1)
    # vLLM refuses a request above its `max_logprobs` (20 by default; `--max-logprobs` on a server)
    # and `vllm.LLM` then aborts the whole batch, so top_logprobs is checked against it at load.
    max_logprobs: int = Field(default=20, ge=1)
    # An answer whose top-k puts less than this probability on the labels (both spellings) is
    # unparseable: the prompt is not working for that document.
    min_label_mass: float = Field(default=0.3, ge=0.0, le=1.0)
    # Constrain the answer token with `structured_outputs`. Off by default: vLLM masks before it
    # computes logprobs, which hides the label mass and distorts completions-style prompts.
    constrain: bool = False
    # Letter-to-domain orders, one chosen per document by hash (1 = the taxonomy's order only;
    # configs/gpu.yaml uses 4, which also measures the letter bias).
    permutations: int = Field(default=1, ge=1, le=24)
    # Stop the phase when more than this share of the first requests fail (after 50 answers).
    max_error_rate: float = Field(default=0.2, ge=0.0, le=1.0)
    generate_max_tokens: int = Field(default=256, ge=1)
    # e.g. {enable_thinking: false} for Qwen3 chat templates
    chat_template_kwargs: dict[str, Any] = Field(default_factory=dict)
    # endpoint backend
    api: Literal["chat", "completions"] = "chat"
    concurrency: int = Field(default=64, ge=1)
    timeout_s: float = Field(default=60.0, gt=0)
    retries: int = Field(default=3, ge=0)
    backoff_s: float = Field(default=1.0, ge=0)
    # vllm backend: replicas "auto" = the cluster's GPUs // tensor_parallel_size
    tensor_parallel_size: int = Field(default=1, ge=1)
    replicas: int | Literal["auto"] = "auto"
    max_model_len: int = Field(default=8192, ge=1)
    gpu_memory_utilization: float = Field(default=0.9, gt=0.0, le=1.0)
    dtype: str = "auto"
    quantization: str | None = None
    max_num_batched_tokens: int | None = Field(default=None, ge=1)
    trust_remote_code: bool = False
    # Names of environment variables copied from the driver to the replicas (never their values in
    # the config, which is saved in the run folder).
    forward_env: list[str] = Field(default_factory=lambda: ["HF_HOME", "HF_TOKEN", "HF_HUB_OFFLINE", "HF_ENDPOINT"])
    load_timeout_s: float = Field(default=1800.0, gt=0)
    block_timeout_s: float = Field(default=1800.0, gt=0)
    block_docs: int = Field(default=64, ge=1)
    # transformers backend
    device: str = "auto"
    batch_size: int = Field(default=8, ge=1)

    @model_validator(mode="after")
    def _logprobs_within_engine_limit(self) -> TeacherConfig:
        if self.top_logprobs > self.max_logprobs:
            raise ValueError(
                f"teacher.top_logprobs ({self.top_logprobs}) exceeds teacher.max_logprobs ({self.max_logprobs}); "
                "vLLM refuses such requests: lower top_logprobs or raise max_logprobs (the server's --max-logprobs)"
            )
        return self

    def backend_options(self, ray_address: str | None = None, log_dir: str | None = None) -> dict[str, Any]:
        """The keyword options of the chosen backend's constructor; vllm also gets the engine's Ray
        address and a folder for its replicas' logs."""
        options = {key: getattr(self, key) for key in _BACKEND_KEYS.get(self.backend, ())}
        if self.backend == "vllm":
            options |= {"ray_address": ray_address, "log_dir": log_dir}
        return options


class StudentsConfig(Section):
    enabled: bool = True
    hyperparams: str = "configs/students.yaml"


class QualityConfig(Section):
    min_quality: float | None = None


class DedupConfig(Section):
    enabled: bool = True
    ngram: int = Field(default=5, ge=1)
    bands: int = Field(default=14, ge=1)
    rows: int = Field(default=8, ge=1)
    seed: int = 1
    # Optional target Jaccard threshold; when set, bands x rows are derived from it.
    threshold: float | None = Field(default=None, gt=0.0, lt=1.0)
    # Drop LSH candidates whose estimated Jaccard (signature agreement) is below the threshold.
    verify: bool = True
    # A second set of `bands` buckets over the same values, offset by rows // 2: pairs just above the
    # threshold that share no band become candidates too (recall), at 8 more bytes a band per document.
    offset_bands: bool = True
    # Before MinHash: one document per normalised text, then per normalised `url` field (where present).
    exact: bool = True
    url: bool = True


class DecontamConfig(Section):
    enabled: bool = True
    benchmarks: str = "configs/benchmarks/demo.yaml"
    mode: Literal["window", "document"] = "window"
    window_factor: float = Field(default=2.0, ge=1.0)
    min_tokens: int = Field(default=13, ge=1)
    ratio: float = Field(default=0.6, gt=0.0, le=1.0)
    tokenizer: str = "words"
    action: Literal["drop", "annotate"] = "drop"


# A share sum this close to 1 counts as 1 (YAML decimals do not add up exactly).
SHARE_TOLERANCE = 1e-6


# The keys a mixture can group documents by (`mixture.group_by`).
GROUP_KEYS = ("domain", "language", "source", "quality_bucket", "length_bucket")
# A named mixture becomes a folder name (RUN/mixtures/<name>/).
MIXTURE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class TokenizeConfig(Section):
    """Token files for training, written beside a mixture's Parquet (datatrove's tokenizer steps)."""

    tokenizer: str
    format: Literal["megatron", "datatrove"] = "datatrove"
    eos: bool = True
    eos_token: str = "<|endoftext|>"
    shuffle: bool = True


def _ascending(key: str, edges: list[float]) -> list[float]:
    if any(b <= a for a, b in zip(edges, edges[1:])) or any(e <= 0 for e in edges[:1]):
        raise ValueError(f"{key} = {edges}: expected bin edges > 0 in increasing order")
    return edges


class MixtureConfig(Section):
    mode: Literal["multipliers", "shares"] = "multipliers"
    # Keys of multipliers and shares are group names (the group_by values joined by "/", e.g.
    # "code/3-4") or glob patterns over them ("*/0-2"); a group takes the first key that matches.
    multipliers: dict[str, float] = Field(default_factory=dict)
    shares: dict[str, float] = Field(default_factory=dict)
    default_multiplier: float = Field(default=1.0, ge=0.0)
    token_budget: int | None = Field(default=None, gt=0)
    max_repeats: float = Field(default=4.0, ge=1.0)
    selection: Literal["uniform", "quality"] = "uniform"
    seed: int = 0
    strict: bool = False
    shard_docs: int = Field(default=50_000, ge=1)
    # Token counts for shares and budgets: null = `\w+` word count, or a local tokenizer.json.
    tokenizer: str | None = None
    group_by: list[Literal["domain", "language", "source", "quality_bucket", "length_bucket"]] = Field(
        default_factory=lambda: ["domain"], min_length=1
    )
    # Bin edges: quality (0-5 scores) and length (tokens per document) buckets, e.g. [2.5, 3.5].
    quality_bins: list[float] = Field(default_factory=lambda: [2.0, 3.0, 4.0])
    length_bins: list[int] = Field(default_factory=lambda: [512, 2048, 8192])
    # group_by source: null = the input file, or an input record field (e.g. "source").
    source_field: str | None = None
    tokenize: TokenizeConfig | None = None

    @field_validator("group_by")
    @classmethod
    def _distinct_keys(cls, keys: list[str]) -> list[str]:
        if len(set(keys)) != len(keys):
            raise ValueError(f"group_by {keys} names a key twice")
        return keys

    @field_validator("quality_bins")
    @classmethod
    def _quality_bins(cls, edges: list[float]) -> list[float]:
        return _ascending("quality_bins", edges)

    @field_validator("length_bins")
    @classmethod
    def _length_bins(cls, edges: list[int]) -> list[int]:
        return _ascending("length_bins", edges)

    @model_validator(mode="after")
    def _targets_valid(self) -> MixtureConfig:
        for key in ("multipliers", "shares"):
            for domain, value in getattr(self, key).items():
                if not value >= 0:
                    raise ValueError(f"mixture.{key}.{domain} = {value}: must be a number >= 0")
        if self.mode == "shares":
            if not self.shares:
                raise ValueError("mixture.mode is 'shares' but mixture.shares is empty: give a share per group")
            total = sum(self.shares.values())
            if total > 1 + SHARE_TOLERANCE:
                raise ValueError(
                    f"mixture.shares sum to {total:.4g}; they are fractions of the output and must sum to <= 1"
                )
        return self


class Config(Section):
    input: InputConfig = Field(default_factory=InputConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    langid: LangIdConfig = Field(default_factory=LangIdConfig)
    filters: list[str | FilterSpec] = Field(default_factory=lambda: list(FILTER_PRESETS))
    # fused: one tokenization per document (stages/fused_heuristics.py); datatrove: its filters, the reference.
    filters_implementation: Literal["fused", "datatrove"] = "fused"
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    students: StudentsConfig = Field(default_factory=StudentsConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    decontam: DecontamConfig = Field(default_factory=DecontamConfig)
    mixture: MixtureConfig = Field(default_factory=MixtureConfig)
    # Optional named mixtures (e.g. stage1, anneal), each written to RUN/mixtures/<name>/.
    mixtures: dict[str, MixtureConfig] = Field(default_factory=dict)

    @field_validator("filters")
    @classmethod
    def _known_filters(cls, filters: list[str | FilterSpec]) -> list[str | FilterSpec]:
        for spec in filters:
            name = spec if isinstance(spec, str) else spec.name
            if name not in FILTER_PRESETS:
                raise ValueError(f"unknown filter preset {name!r}; known: {', '.join(FILTER_PRESETS)}")
        return filters

    @model_validator(mode="after")
    def _mixtures_valid(self) -> Config:
        for name, mixture in self.mixtures.items():
            if not re.match(MIXTURE_NAME, name):
                raise ValueError(f"mixtures.{name}: a mixture name is a folder name (letters, digits, _ . -)")
            if mixture.tokenizer != self.mixture.tokenizer:
                raise ValueError(
                    f"mixtures.{name}.tokenizer = {mixture.tokenizer!r}: token counts come from P5, which uses "
                    f"mixture.tokenizer = {self.mixture.tokenizer!r}; leave it out or give the same file"
                )
        return self

    @model_validator(mode="after")
    def _input_given(self) -> Config:
        if not self.input.paths:
            raise ValueError("input.paths is empty: give at least one file or glob (or --input PATH)")
        return self


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"invalid config ({source}):"]
    for item in err.errors():
        key = ".".join(str(p) for p in item["loc"]) or "<root>"
        found = item.get("input")
        if item["type"] == "extra_forbidden":
            lines.append(
                f"  {key}: unknown key (found {found!r}); check the spelling against the README's config reference"
            )
        elif item["type"] == "missing":
            lines.append(f"  {key}: required key is missing")
        elif item["type"] == "value_error" and isinstance(found, dict):
            # a check across a section's keys: its message names the keys and the values found
            lines.append(f"  {str(item['msg']).removeprefix('Value error, ')}")
        else:
            lines.append(f"  {key}: {item['msg']} (found {found!r})")
    return "\n".join(lines)


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    node = tree
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {dotted}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """`a.b=c` -> ("a.b", c), with c parsed as YAML so numbers, booleans and lists work."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. --set dedup.bands=20")
    return key.strip(), yaml.safe_load(raw) if raw.strip() else None


def load_config(
    path: str | Path | None,
    overrides: list[str] = (),
    inputs: list[str] | None = None,
    output: str | None = None,
) -> Config:
    """Load YAML, apply `--set` overrides and CLI shortcuts, validate. Raises ConfigError."""
    tree: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
        try:
            tree = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config {path} is not valid YAML: {exc}") from exc
        if not isinstance(tree, dict):
            raise ConfigError(f"config {path}: expected a mapping of sections, found {type(tree).__name__}")
    for item in overrides:
        _set_dotted(tree, *parse_override(item))
    if inputs:
        _set_dotted(tree, "input.paths", list(inputs))
    if output:
        _set_dotted(tree, "output.dir", output)
    try:
        return Config.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, source)) from None


def resolve_path(path: str | Path) -> Path:
    """A path from a config: as given when it exists (relative to the working directory), else
    relative to the package root, so `configs/...` works from any folder."""
    given = Path(path)
    if given.exists() or given.is_absolute():
        return given
    packaged = PACKAGE_ROOT / given
    return packaged if packaged.exists() else given


# Settings that change speed, not output: they neither block a resume nor enter the config hash.
RESOURCE_KEYS = (
    "engine",
    "teacher.replicas",
    "teacher.tensor_parallel_size",
    "teacher.concurrency",
    "teacher.timeout_s",
    "teacher.retries",
    "teacher.backoff_s",
    "teacher.batch_size",
    "teacher.device",
    "teacher.gpu_memory_utilization",
    "teacher.max_num_batched_tokens",
    "teacher.forward_env",
    "teacher.load_timeout_s",
    "teacher.block_timeout_s",
    "teacher.block_docs",
)


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}: dotted keys, as `--set` and error messages name them."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def output_settings(tree: dict[str, Any]) -> dict[str, Any]:
    """The dotted settings of a config tree that shape the output (RESOURCE_KEYS left out)."""
    return {
        key: value
        for key, value in flatten(tree).items()
        if not any(key == k or key.startswith(f"{k}.") for k in RESOURCE_KEYS)
    }


def dump_config(config: Config) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
