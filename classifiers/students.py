"""fastText students: trained on the teacher's labels (P2), applied to every document (P3).

One model for the domain, one per quality dimension. fastText has no regression, so a quality
student classifies the teacher's score rounded to 0..5 and predicts the expected value over its
class probabilities: a continuous score on the teacher's scale that keeps the ordering between
"probably 2" and "probably 3", which thresholds (`quality.min_quality`) and keeper choice need.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xxhash
import yaml

from classifiers.taxonomy import Rubric, load_rubric
from pipeline.config import CONFIGS_DIR
from pipeline.docio import read_documents, write_json_atomic
from pipeline.errors import ConfigError

DEFAULT_HYPERPARAMS = CONFIGS_DIR / "students.yaml"
INDEX_FILE = "students.json"
DOMAIN_MODEL = "domain"
_PREFIX = "__label__"
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Hyperparams:
    fasttext: dict[str, Any]
    holdout: float = 0.2
    seed: int = 0
    max_chars: int = 4000


def load_hyperparams(path: str | Path = DEFAULT_HYPERPARAMS) -> Hyperparams:
    try:
        tree = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read student hyperparameters {path}: {exc.strerror}") from exc
    unknown = set(tree) - {"fasttext", "holdout", "seed", "max_chars"}
    if unknown:
        raise ConfigError(
            f"{path}: unknown keys {', '.join(sorted(unknown))} (known: fasttext, holdout, seed, max_chars)"
        )
    params = Hyperparams(
        dict(tree.get("fasttext") or {}), **{k: tree[k] for k in ("holdout", "seed", "max_chars") if k in tree}
    )
    if not 0 <= params.holdout < 1:
        raise ConfigError(f"{path}: holdout must be in [0, 1), found {params.holdout}")
    return params


def fasttext_text(text: str, max_chars: int) -> str:
    """One lowercased line: fastText reads one example per line and is case-sensitive."""
    return _SPACES.sub(" ", text[:max_chars]).strip().lower()


def is_holdout(uid: int, fraction: float, seed: int) -> bool:
    return xxhash.xxh64_intdigest(str(uid).encode(), seed=seed) % 10_000 < fraction * 10_000


def quality_model(dim: str) -> str:
    return f"quality_{dim}"


# ---------------------------------------------------------------- metrics


def domain_metrics(truth: Sequence[str], pred: Sequence[str]) -> dict[str, Any]:
    labels = sorted(set(truth) | set(pred))
    t, p = np.asarray(truth, dtype=object), np.asarray(pred, dtype=object)
    f1s = []
    for label in labels:
        tp = int(np.sum((t == label) & (p == label)))
        fp, fn = int(np.sum((t != label) & (p == label))), int(np.sum((t == label) & (p != label)))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    confusion = {
        a: {b: int(np.sum((t == a) & (p == b))) for b in labels if np.any((t == a) & (p == b))}
        for a in sorted(set(truth))
    }
    return {
        "accuracy": round(float(np.mean(t == p)), 4),
        "macro_f1": round(float(np.mean(f1s)), 4),
        "confusion": confusion,
    }


def quality_metrics(truth: Sequence[float], pred: Sequence[float], threshold: float = 3.0) -> dict[str, Any]:
    from scipy.stats import spearmanr

    t, p = np.asarray(truth, dtype=float), np.asarray(pred, dtype=float)
    rho = spearmanr(t, p).statistic if len(t) > 1 and np.ptp(t) > 0 and np.ptp(p) > 0 else float("nan")
    pos_t, pos_p = t >= threshold, p >= threshold
    tp = int(np.sum(pos_t & pos_p))
    denom = 2 * tp + int(np.sum(~pos_t & pos_p)) + int(np.sum(pos_t & ~pos_p))
    return {
        "spearman": None if np.isnan(rho) else round(float(rho), 4),
        "mae": round(float(np.mean(np.abs(t - p))), 4),
        f"f1_at_{threshold:g}": round(2 * tp / denom, 4) if denom else None,
    }


# ---------------------------------------------------------------- prediction


class Students:
    """The trained models of one run, loaded once (per worker), predicting in batches."""

    def __init__(self, models_dir: str | Path):
        import fasttext

        self.models_dir = Path(models_dir)
        index_path = self.models_dir / INDEX_FILE
        if not index_path.is_file():
            raise FileNotFoundError(f"{index_path} not found: train the students first (phase P2 or `mixwright train`)")
        index = json.loads(index_path.read_text())
        self.max_chars: int = index["max_chars"]
        self.weights: dict[str, float] = index["weights"]
        self.models = {name: fasttext.load_model(str(self.models_dir / f"{name}.bin")) for name in index["models"]}

    def _probs(self, name: str, lines: list[str]) -> tuple[list[str], np.ndarray]:
        """(labels, probability matrix docs x labels) of one model."""
        model = self.models[name]
        labels = [label.removeprefix(_PREFIX) for label in model.get_labels()]
        column = {_PREFIX + label: j for j, label in enumerate(labels)}
        predicted, probs = model.predict(lines, k=-1)
        matrix = np.zeros((len(lines), len(labels)))
        for i, (names, values) in enumerate(zip(predicted, probs)):
            matrix[i, [column[n] for n in names]] = values
        return labels, matrix

    def predict(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """The P3 metadata keys for each text: domain, domain_prob, domain_probs, quality_<dim>, quality."""
        lines = [fasttext_text(t, self.max_chars) for t in texts]
        records: list[dict[str, Any]] = [{} for _ in lines]
        if DOMAIN_MODEL in self.models:
            labels, probs = self._probs(DOMAIN_MODEL, lines)
            best = probs.argmax(axis=1)
            for record, row, b in zip(records, probs, best):
                record["domain"] = labels[b]
                record["domain_prob"] = round(float(row[b]), 4)
                record["domain_probs"] = {label: round(float(p), 4) for label, p in zip(labels, row) if p >= 1e-4}
        for dim in self.weights:
            labels, probs = self._probs(quality_model(dim), lines)
            scores = probs @ np.asarray([float(label) for label in labels])
            for record, score in zip(records, scores):
                record[f"quality_{dim}"] = round(float(score), 4)
        for record in records:
            record["quality"] = aggregate_quality(record, self.weights)
        return records


def aggregate_quality(record: Mapping[str, Any], weights: Mapping[str, float]) -> float:
    total = sum(weights.values())
    return round(sum(w * record[f"quality_{d}"] for d, w in weights.items()) / total, 4)


# ---------------------------------------------------------------- training


# fastText 0.9.2 (numpy2 wheel) sometimes stops with "Encountered NaN" on one run and trains fine
# on the next with the same input and seed (measured: 2 of 6 runs, 600-doc domain model); repeat
# before giving up. Successful runs gave identical bytes.
_NAN_ATTEMPTS = 3


def _fit(name: str, train_file: Path, params: dict[str, Any]) -> Any:
    import fasttext

    for _ in range(_NAN_ATTEMPTS):
        try:
            return fasttext.train_supervised(input=str(train_file), verbose=0, **params)
        except RuntimeError as exc:
            if "NaN" not in str(exc):
                raise
    raise ValueError(
        f"fastText diverged (NaN) {_NAN_ATTEMPTS} times training the {name} student: lower fasttext.lr "
        "or raise fasttext.bucket in the student hyperparameters (configs/students.yaml)"
    )


def _train_one(name: str, lines: list[str], targets: list[str], folder: Path, params: dict[str, Any]) -> None:
    train_file = folder / f".{name}.train.txt"
    train_file.write_text("".join(f"{_PREFIX}{y} {x}\n" for x, y in zip(lines, targets)))
    try:
        model = _fit(name, train_file, params)
    finally:
        train_file.unlink()
    tmp = folder / f".{name}.bin.tmp"
    model.save_model(str(tmp))
    tmp.replace(folder / f"{name}.bin")


def train_students(
    texts: Mapping[int, str],
    labels: Mapping[int, Mapping[str, Any]],
    models_dir: str | Path,
    hyperparams: Hyperparams,
    rubric: Rubric,
) -> dict[str, dict[str, Any]]:
    """Train the domain and quality students on teacher `labels` (uid -> metadata keys) of `texts`
    (uid -> text); write `<name>.bin`, `<name>.json` cards and the `students.json` index."""
    folder = Path(models_dir)
    folder.mkdir(parents=True, exist_ok=True)
    uids = sorted(u for u in labels if u in texts)  # sorted: the training file, hence the model, is reproducible
    lines = {u: fasttext_text(texts[u], hyperparams.max_chars) for u in uids}
    held = {u for u in uids if is_holdout(u, hyperparams.holdout, hyperparams.seed)}
    targets: dict[str, dict[int, str]] = {DOMAIN_MODEL: {u: labels[u]["domain"] for u in uids if "domain" in labels[u]}}
    for dim in rubric.ids:
        key = f"quality_{dim}"
        targets[quality_model(dim)] = {
            u: str(int(np.clip(round(labels[u][key]), 0, 5))) for u in uids if key in labels[u]
        }
    cards: dict[str, dict[str, Any]] = {}
    for name, target in targets.items():
        train = [u for u in target if u not in held]
        test = [u for u in target if u in held]
        if not train:
            raise ValueError(f"no teacher labels to train the {name} student: see RUN/annotations/report.json")
        _train_one(name, [lines[u] for u in train], [target[u] for u in train], folder, hyperparams.fasttext)
        cards[name] = {
            "name": name,
            "train_size": len(train),
            "holdout_size": len(test),
            "labels": sorted(set(target.values()), key=lambda x: (len(x), x)),
            "hyperparams": hyperparams.fasttext,
            "max_chars": hyperparams.max_chars,
        }
    weights = {d.id: d.weight for d in rubric.dimensions}
    write_json_atomic(
        folder / INDEX_FILE, {"models": sorted(targets), "weights": weights, "max_chars": hyperparams.max_chars}
    )
    _evaluate(cards, labels, texts, folder, held)
    for name, card in cards.items():
        write_json_atomic(folder / f"{name}.json", card)
    return cards


def _evaluate(
    cards: dict[str, dict[str, Any]],
    labels: Mapping[int, Mapping[str, Any]],
    texts: Mapping[int, str],
    folder: Path,
    held: set[int],
) -> None:
    """Held-out agreement with the teacher, into the cards."""
    test = sorted(held)
    if not test:
        return
    predicted = Students(folder).predict([texts[u] for u in test])
    for name, card in cards.items():
        key = "domain" if name == DOMAIN_MODEL else name
        pairs = [(labels[u][key], p[key]) for u, p in zip(test, predicted) if key in labels[u]]
        if not pairs:
            continue
        truth, pred = zip(*pairs)
        if name == DOMAIN_MODEL:
            card["holdout"] = domain_metrics(truth, pred) | {"chance": round(1 / len(card["labels"]), 4)}
        else:
            card["holdout"] = quality_metrics(truth, pred)


def train_from_paths(
    sample_path: str | Path,
    labels_path: str | Path,
    models_dir: str | Path,
    hyperparams_path: str | Path = DEFAULT_HYPERPARAMS,
    rubric_path: str | Path | None = None,
) -> dict[str, dict[str, Any]]:
    """`mixwright train`: documents (docio Parquet with `uid` in metadata) + teacher labels -> students."""
    from classifiers.teacher import load_teacher_labels

    texts = {int(d.metadata["uid"]): d.text for d in read_documents(sample_path)}
    rubric = load_rubric(rubric_path) if rubric_path else load_rubric()
    return train_students(
        texts, load_teacher_labels(labels_path), models_dir, load_hyperparams(hyperparams_path), rubric
    )
