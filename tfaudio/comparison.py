"""Which representation works for this dataset? Every representation, every classifier, the
same folds, and the numbers a reviewer would ask for.

    result = compare("path/to/esc10", CompareConfig(models=("handcrafted", "yamnet")))
    result.ranking            # pandas: one row per representation x classifier
    result.write_report("reports/esc10")

The flow: load the dataset; embed it with each representation through the embedding store
(so a second comparison costs seconds); keep the clips every representation could read; drop
classes too small for the split, saying so; build the splits once; cross-validate every
classifier on every representation over those same splits; test each learned representation
against the hand-crafted baseline with McNemar's test on the same out-of-fold predictions.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tfaudio.data import Dataset, Problem, Split, load_dataset, make_splits
from tfaudio.evaluate import CLASSIFIERS, ClassifierSpec, CVResult, McNemar, Metrics, cross_validate, mcnemar, score

if TYPE_CHECKING:
    import pandas as pd

    from tfaudio.models.base import Representation

#: The representation every other one is tested against.
BASELINE = "handcrafted"
#: `--model autoencoder`: trained on each split's training clips (see `_autoencoder_features`).
AUTOENCODER = "autoencoder"
#: Split strategies a comparison accepts (each tests every clip exactly once).
SPLITS = ("auto", "predefined", "group", "stratified")


class CompareError(Exception):
    """A comparison that cannot run as asked (a model unavailable under --strict, no classes left)."""


@dataclass(frozen=True)
class CompareConfig:
    """What to compare and how.

    models: representation names (the baseline is added when missing: every learned
    representation is judged against it). classifiers: keys of `evaluate.CLASSIFIERS`.
    split: "auto" (the manifest's folds, else group-aware, else stratified k-fold) or a
    strategy of `data.make_splits`; folds: k for the generated splits. params: per-classifier
    hyperparameter overrides, ((classifier, ((name, value), ...)), ...). pooling: clip pooling
    for every model (None: each model's default). strict: an unavailable model or unreadable
    file stops the run. ae_epochs / latent: for the autoencoder, trained per split.
    """

    models: tuple[str, ...] = (BASELINE, "yamnet")
    classifiers: tuple[str, ...] = ("rf", "mlp", "logreg")
    split: str = "auto"
    folds: int = 5
    seed: int = 0
    params: tuple[tuple[str, tuple[tuple[str, object], ...]], ...] = ()
    pooling: str | None = None
    batch_size: int = 32
    max_duration: float | None = None
    strict: bool = False
    group_column: str | None = None
    store: str | None = None
    ae_epochs: int = 10
    latent: int = 64

    def __post_init__(self):
        unknown = [c for c in self.classifiers if c not in CLASSIFIERS]
        if unknown:
            raise ValueError(f"unknown classifier(s) {unknown}; choose from {', '.join(CLASSIFIERS)}")
        if not self.classifiers:
            raise ValueError("name at least one classifier")
        if self.split not in SPLITS:
            # A holdout tests only part of the clips; every comparison here pools all of them.
            raise ValueError(f"unknown split {self.split!r} for a comparison; choose one of {', '.join(SPLITS)}")
        object.__setattr__(self, "classifiers", tuple(dict.fromkeys(self.classifiers)))

    def spec(self, classifier: str) -> ClassifierSpec:
        overrides = dict(self.params).get(classifier, ())
        return ClassifierSpec(classifier, tuple(overrides), self.seed)

    @property
    def model_list(self) -> tuple[str, ...]:
        """The models in run order, baseline first, duplicates removed."""
        rest = [m for m in self.models if m != BASELINE]
        return (BASELINE, *dict.fromkeys(rest))


@dataclass(frozen=True)
class RepresentationInfo:
    """A representation as the report describes it: its pooled dimension, what determines its
    vectors (identity: model, weights digest, parameters), and how many clips came from cache."""

    name: str
    dim: int
    pooling: str
    identity: dict
    cached: int = 0
    computed: int = 0
    embed_seconds: float = 0.0
    per_split: bool = False


@dataclass(frozen=True)
class Unavailable:
    name: str
    reason: str


@dataclass(frozen=True)
class Run:
    """One representation x classifier: out-of-fold result, metrics, and the test against the
    baseline with the same classifier (None for the baseline itself)."""

    representation: str
    classifier: str
    cv: CVResult
    metrics: Metrics
    versus_baseline: McNemar | None


@dataclass
class ComparisonResult:
    """Everything a comparison measured. Tables are pandas DataFrames (`ranking`, `per_class`,
    `folds`, `predictions`); `write_report(out)` writes the HTML / Markdown / JSON / CSV report."""

    config: CompareConfig
    dataset: Dataset
    summary: dict
    splits: list[Split]
    split_strategy: str
    representations: list[RepresentationInfo]
    runs: list[Run]
    vectors: dict[str, np.ndarray]
    unavailable: list[Unavailable] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    command: str = ""
    fallback: str | None = None  # why the data is not what was asked for (e.g. offline demo)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.dataset.classes

    @property
    def dataset_ignored(self) -> list[Problem]:
        """Files found but not audio (unknown extension, hidden files are not listed)."""
        return list(self.dataset.ignored)

    @property
    def labels(self) -> np.ndarray:
        return self.dataset.labels

    def run(self, representation: str, classifier: str) -> Run:
        return next(r for r in self.runs if r.representation == representation and r.classifier == classifier)

    def ranked(self) -> list[Run]:
        """Runs from best to worst: pooled accuracy, then macro F1; on an exact tie the baseline
        comes first (a learned representation must beat it to win), then by name (stable)."""
        return sorted(self.runs, key=lambda r: (-round(r.metrics.accuracy, 9), -round(r.metrics.macro_f1, 9),
                                                r.representation != BASELINE, r.representation, r.classifier))

    def best_of(self, representation: str) -> Run:
        return next(r for r in self.ranked() if r.representation == representation)

    @property
    def winner(self) -> Run:
        return self.ranked()[0]

    def winner_versus_baseline(self) -> McNemar | None:
        """McNemar of the overall winner against the baseline's best classifier."""
        best, base = self.winner, self.best_of(BASELINE)
        if best.representation == BASELINE:
            return None
        return mcnemar(self.labels, best.cv.predictions, base.cv.predictions)

    @property
    def ranking(self) -> pd.DataFrame:
        import pandas as pd

        dims = {r.name: r.dim for r in self.representations}
        rows = []
        for rank, run in enumerate(self.ranked(), 1):
            m, versus = run.metrics, run.versus_baseline
            rows.append({
                "rank": rank,
                "representation": run.representation,
                "classifier": run.classifier,
                "dim": dims[run.representation],
                "accuracy": m.accuracy,
                "fold_mean": m.fold_mean,
                "fold_std": m.fold_std,
                "ci_low": m.accuracy_ci[0],
                "ci_high": m.accuracy_ci[1],
                "macro_precision": m.macro_precision,
                "macro_recall": m.macro_recall,
                "macro_f1": m.macro_f1,
                "mcnemar_p": versus.p_value if versus else np.nan,
                "fit_seconds": float(run.cv.fit_seconds.mean()),
                "predict_seconds": float(run.cv.predict_seconds.mean()),
            })
        return pd.DataFrame(rows)

    @property
    def per_class(self) -> pd.DataFrame:
        """Precision, recall, F1 and support per class for every run (long format)."""
        import pandas as pd

        rows = []
        for run in self.runs:
            values = run.metrics.per_class
            for i, name in enumerate(self.classes):
                rows.append({"representation": run.representation, "classifier": run.classifier, "class": name,
                             **{k: v[i].item() for k, v in values.items()}})
        return pd.DataFrame(rows)

    @property
    def folds(self) -> pd.DataFrame:
        """Accuracy per split for every run."""
        import pandas as pd

        return pd.DataFrame([
            {"representation": r.representation, "classifier": r.classifier, "split": s.name, "accuracy": acc}
            for r in self.runs for s, acc in zip(self.splits, r.cv.fold_accuracy)
        ])

    @property
    def predictions(self) -> pd.DataFrame:
        """One row per clip: file, label, fold, group, the split that tested it, and each run's
        out-of-fold predicted label (column "<representation>/<classifier>")."""
        import pandas as pd

        tested_in = np.empty(len(self.dataset), dtype=object)
        for split in self.splits:
            tested_in[split.test] = split.name
        table = pd.DataFrame({
            "file": [self.dataset.relative(c) for c in self.dataset.clips],
            "label": [c.label for c in self.dataset.clips],
            "fold": pd.array([c.fold for c in self.dataset.clips], dtype="Int64"),
            "group": [c.group for c in self.dataset.clips],
            "split": tested_in,
        })
        names = np.array(self.classes, dtype=object)
        for run in self.runs:
            table[f"{run.representation}/{run.classifier}"] = names[run.cv.predictions]
        return table

    def write_report(self, out: str | Path) -> Path:
        """Write index.html, report.md, metrics.json, predictions.csv (and timings.json) to `out`."""
        from tfaudio.report import write_report

        return write_report(self, Path(out))


def _first_line(err: Exception) -> str:
    return (str(err).splitlines() or [type(err).__name__])[0]


def _minimum_per_class(strategy: str, k: int) -> int:
    """Clips a class needs for the split strategy to put it on both sides of every split."""
    return k if strategy == "stratified" else 2


def _resolve_strategy(dataset: Dataset, strategy: str) -> str:
    if strategy != "auto":
        return strategy
    return "predefined" if dataset.folds is not None else "group" if dataset.groups is not None else "stratified"


def _drop_small_classes(dataset: Dataset, needed: int, why: str) -> tuple[Dataset, list[Problem]]:
    counts = {name: 0 for name in dataset.classes}
    for clip in dataset.clips:
        counts[clip.label] += 1
    small = [name for name, n in counts.items() if n < needed]
    if not small:
        return dataset, []
    problems = [Problem(f"class '{name}'", f"only {counts[name]} readable clip(s); {why} needs at least {needed}, "
                        "so the class is left out") for name in small]
    clips = tuple(c for c in dataset.clips if c.label not in small)
    classes = tuple(name for name in dataset.classes if name not in small)
    return replace(dataset, clips=clips, classes=classes), problems


def _subset(dataset: Dataset, keep: set[str]) -> Dataset:
    return replace(dataset, clips=tuple(c for c in dataset.clips if str(c.path) in keep))


def _progress(total: int, desc: str, unit: str = "clip"):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=total < 2, dynamic_ncols=True, leave=False)


def compare(
    data: str | Path | Dataset,
    config: CompareConfig = CompareConfig(),
    *,
    log: Callable[[str], None] = lambda message: print(message, file=sys.stderr),
    command: str = "",
) -> ComparisonResult:
    """Compare representations on `data` (a path or a loaded Dataset). See the module docstring.

    Unavailable models are recorded with the reason and the run goes on (CompareError under
    config.strict); unreadable files are skipped and listed (AudioError under config.strict).
    """
    from tfaudio.data import summarize
    from tfaudio.models.registry import ModelUnavailable, get
    from tfaudio.quiet import import_tensorflow_quietly
    from tfaudio.store import EmbedConfig, EmbeddingStore, embed_dataset

    dataset = data if isinstance(data, Dataset) else load_dataset(data, group_column=config.group_column)
    if len(dataset) == 0:
        raise CompareError(f"{dataset.root}: no audio clips found")
    store = EmbeddingStore(config.store)
    embed_config = EmbedConfig(pooling=config.pooling, batch_size=config.batch_size,
                               max_duration=config.max_duration, strict=config.strict)
    unavailable: list[Unavailable] = []
    skipped: dict[str, Problem] = {}
    tables = {}
    models: dict[str, Representation] = {}
    wants_autoencoder = AUTOENCODER in config.model_list

    for name in config.model_list:
        if name == AUTOENCODER:
            continue
        try:
            models[name] = get(name)
        except ModelUnavailable as err:
            if config.strict:
                raise CompareError(f"{name} is unavailable: {err}") from None
            unavailable.append(Unavailable(name, str(err)))
            log(f"{name}: unavailable, left out ({_first_line(err)})")
            continue
        with _progress(len(dataset), f"embedding {name}") as bar:
            table = embed_dataset(dataset, models[name], store, embed_config, progress=bar.update)
        tables[name] = table
        for problem in table.stats.skipped:
            skipped.setdefault(problem.path, problem)
        log(f"{name}: {len(table.clips)} clips ({table.stats.cached} cached, {table.stats.computed} computed)")

    if BASELINE not in tables:
        raise CompareError("the hand-crafted baseline could not be computed; every comparison needs it")
    # The same clips for every representation: those each one could read.
    readable = set.intersection(*({str(c.path) for c in t.clips} for t in tables.values()))
    for clip in dataset.clips:
        if str(clip.path) not in readable and str(clip.path) not in skipped:
            skipped[str(clip.path)] = Problem(str(clip.path), "not embedded by every representation")
    strategy = _resolve_strategy(dataset, config.split)
    needed = _minimum_per_class(strategy, config.folds)
    working, small = _drop_small_classes(_subset(dataset, readable), needed, f"{strategy} cross-validation")
    for problem in small:
        log(f"left out {problem.path}: {problem.reason}")
    if len(working.classes) < 2:
        raise CompareError(
            f"{dataset.root}: fewer than 2 classes have enough readable clips for {strategy} cross-validation "
            f"(at least {needed} each); nothing to compare"
        )
    splits = make_splits(working, strategy, config.folds, config.seed)
    y = working.labels

    vectors: dict[str, np.ndarray | list[np.ndarray]] = {}
    infos: list[RepresentationInfo] = []
    for name, table in tables.items():
        row = {str(c.path): i for i, c in enumerate(table.clips)}
        vectors[name] = np.asarray(table.vectors)[[row[str(c.path)] for c in working.clips]]
        infos.append(RepresentationInfo(name, vectors[name].shape[1], table.pooling, models[name].identity(),
                                        table.stats.cached, table.stats.computed, table.stats.seconds))
    notes: list[str] = []
    if wants_autoencoder:
        import_tensorflow_quietly()
        from tfaudio.models.autoencoder_params import AutoencoderError

        try:
            per_split, info = _autoencoder_features(working, splits, config, store, log)
        except (ModelUnavailable, AutoencoderError, CompareError) as err:
            if config.strict:
                raise CompareError(f"autoencoder is unavailable: {err}") from None
            unavailable.append(Unavailable(AUTOENCODER, str(err)))
            log(f"{AUTOENCODER}: unavailable, left out ({_first_line(err)})")
        else:
            vectors[AUTOENCODER] = per_split
            infos.append(info)
            notes.append(
                f"The autoencoder was trained {len(splits)} times, once per split on that split's training clips "
                f"only ({config.ae_epochs} epochs max, latent {config.latent}); its test clips never entered its training."
            )

    specs = [config.spec(c) for c in config.classifiers]
    runs: list[Run] = []
    with _progress(len(vectors) * len(specs) * len(splits), "classifiers", unit="fit") as bar:
        for name, features in vectors.items():
            for spec in specs:
                result = cross_validate(features, y, splits, spec)
                bar.update(len(splits))
                notes.extend(f"{name}: {warning}" for warning in dict.fromkeys(result.warnings))
                runs.append(Run(name, spec.name, result, score(y, result, len(working.classes), config.seed), None))
    baseline = {r.classifier: r for r in runs if r.representation == BASELINE}
    runs = [
        run if run.representation == BASELINE
        else replace(run, versus_baseline=mcnemar(y, run.cv.predictions, baseline[run.classifier].cv.predictions))
        for run in runs
    ]
    summary = summarize(dataset).to_dict()
    return ComparisonResult(
        config=config,
        dataset=working,
        summary=summary,
        splits=splits,
        split_strategy=strategy,
        representations=infos,
        runs=runs,
        # Thumbnails: a per-split representation is drawn with its first split's model.
        vectors={k: v[0] if isinstance(v, list) else v for k, v in vectors.items()},
        unavailable=unavailable,
        skipped=[*skipped.values(), *small],
        notes=list(dict.fromkeys(notes)),
        command=command,
    )


def _autoencoder_features(working: Dataset, splits: list[Split], config: CompareConfig, store, log):
    """Per split: an autoencoder trained on that split's training clips only; every clip of the
    split embedded with it. Returns ([float32 [clips, dim] per split], RepresentationInfo).

    Trained weights are kept under <store>/../autoencoders/<key>, keyed by the training clips'
    content and the settings, so a rerun of the same comparison loads them instead of training
    again, and gets the very same vectors (the embedding store is keyed by the weights' digest).
    """
    import hashlib
    import json
    import os
    import shutil

    from tfaudio.models.autoencoder import AutoencoderConfig, load_representation, save, train
    from tfaudio.models.autoencoder_params import CONFIG_FILE
    from tfaudio.store import EmbedConfig, embed_dataset, hash_clips

    ae_config = AutoencoderConfig(latent=config.latent, epochs=config.ae_epochs, seed=config.seed,
                                  max_duration=config.max_duration)
    embed_config = EmbedConfig(pooling=config.pooling, batch_size=config.batch_size, max_duration=config.max_duration)
    hashes = hash_clips(working.clips)
    cache = store.root.parent / "autoencoders"
    per_split, cached, computed, seconds, identity = [], 0, 0, 0.0, {}
    for split in splits:
        blob = json.dumps({"config": ae_config.to_dict(), "train": sorted(hashes[i] or "" for i in split.train)},
                          sort_keys=True, default=str)
        folder = cache / hashlib.sha256(blob.encode()).hexdigest()[:16]
        if (folder / CONFIG_FILE).is_file():
            log(f"autoencoder: {split.name}'s model is cached ({folder})")
        else:
            log(f"autoencoder: training on the {len(split.train)} training clips of {split.name}")
            partial = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
            save(train(working, split.train, ae_config), partial)
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(partial, folder)  # a model folder is complete or absent
        representation = load_representation(folder, name=AUTOENCODER)
        table = embed_dataset(working, representation, store, embed_config)
        if len(table.clips) != len(working):
            raise CompareError(f"the autoencoder could not embed {len(working) - len(table.clips)} clips of {split.name}")
        per_split.append(np.asarray(table.vectors))
        cached, computed, seconds = cached + table.stats.cached, computed + table.stats.computed, seconds + table.stats.seconds
        identity = {k: v for k, v in representation.identity().items() if "sha256" not in k and "digest" not in k}
    info = RepresentationInfo(AUTOENCODER, per_split[0].shape[1], table.pooling,
                              {**identity, "trained_per_split": True}, cached, computed, seconds, per_split=True)
    return per_split, info
