"""Which representation works for this dataset? Every representation, every classifier, the
same folds, and the numbers a reviewer would ask for.

    result = compare("path/to/esc10", CompareConfig(models=("handcrafted", "yamnet")))
    result.ranking            # pandas: one row per representation x classifier
    write_report(result, "reports/esc10")

The flow: load the dataset; embed it with each representation through the embedding store
(so a second comparison costs seconds); keep the clips every representation could read; drop
classes too small for the split, saying so; build the splits once; warn when a representation
loaded from disk was fitted on clips a split tests it on; fit each representation that
learns from the data (a `LearnedRepresentation`) on every split's training clips and embed the
split with it; cross-validate every classifier on every representation over those same splits;
test each learned representation against the hand-crafted baseline with McNemar's test on the
same out-of-fold predictions.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from tfaudio.assets import WeightsError
from tfaudio.comparison.classifiers import cross_validate
from tfaudio.comparison.config import BASELINE, CompareConfig, CompareError, LeakageWarning
from tfaudio.comparison.metrics import mcnemar, score
from tfaudio.comparison.result import ComparisonResult, Leakage, RepresentationInfo, Run, Unavailable
from tfaudio.data.dataset import Dataset, Problem, load_dataset
from tfaudio.data.splits import Split, drop_small_classes, make_splits, minimum_per_class, resolve_strategy
from tfaudio.models.autoencoder.config import AutoencoderError
from tfaudio.models.base import LearnedRepresentation, ModelUnavailable, Representation
from tfaudio.store import EmbeddingStore


def _first_line(err: Exception) -> str:
    return (str(err).splitlines() or [type(err).__name__])[0]


def _subset(dataset: Dataset, keep: set[str]) -> Dataset:
    return replace(dataset, clips=tuple(c for c in dataset.clips if str(c.path) in keep))


def _progress(total: int, desc: str, unit: str = "clip"):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=total < 2, dynamic_ncols=True, leave=False)


class _Outcome:
    """What the steps of one comparison gather: what could not be used, and notes for the report."""

    def __init__(self, config: CompareConfig, log: Callable[[str], None]):
        self.config, self.log = config, log
        self.unavailable: list[Unavailable] = []
        self.skipped: dict[str, Problem] = {}
        self.notes: list[str] = []

    def left_out(self, name: str, err: Exception) -> None:
        """A representation that cannot be used: CompareError under --strict, else noted and skipped."""
        if self.config.strict:
            raise CompareError(f"{name} is unavailable: {err}") from None
        self.unavailable.append(Unavailable(name, str(err)))
        self.log(f"{name}: unavailable, left out ({_first_line(err)})")


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
    A representation loaded from disk that was fitted on clips of a test split is compared, with
    a LeakageWarning and a paragraph of the report saying so. CompareError for a fit setting
    the representation it names does not take.
    """
    from tfaudio.data.dataset import summarize

    dataset = data if isinstance(data, Dataset) else load_dataset(data, group_column=config.group_column)
    if len(dataset) == 0:
        raise CompareError(f"{dataset.root}: no audio clips found")
    store = EmbeddingStore(config.store)
    outcome = _Outcome(config, log)
    ready, learners = _resolve_models(outcome)
    tables = _embed_every_model(dataset, ready, store, outcome)
    if BASELINE not in tables:
        raise CompareError("the hand-crafted baseline could not be computed; every comparison needs it")
    strategy = resolve_strategy(dataset, config.split)
    working, small = _working_set(dataset, tables, strategy, outcome)
    splits = make_splits(working, strategy, config.folds, config.seed)
    leakage = _leakage(working, splits, {name: ready[name] for name in tables}, outcome)

    vectors: dict[str, np.ndarray | list[np.ndarray]] = {}
    infos: list[RepresentationInfo] = []
    for name, table in tables.items():
        row = {str(c.path): i for i, c in enumerate(table.clips)}
        vectors[name] = np.asarray(table.vectors)[[row[str(c.path)] for c in working.clips]]
        infos.append(RepresentationInfo(name, vectors[name].shape[1], table.pooling, ready[name].identity(),
                                        table.stats.cached, table.stats.computed, table.stats.seconds))
    for name, learner in learners.items():
        try:
            learner = learner.configure(config.fit_settings(name))
            vectors[name], info = _fit_per_split(name, learner, working, splits, store, outcome)
        except (ModelUnavailable, CompareError) as err:
            outcome.left_out(name, err)
        else:
            infos.append(info)
            outcome.notes.append(learner.fitting_note(len(splits)))

    runs = _cross_validate(vectors, working, splits, outcome)
    return ComparisonResult(
        config=config,
        dataset=working,
        summary=summarize(dataset).to_dict(),
        splits=splits,
        split_strategy=strategy,
        representations=infos,
        runs=runs,
        # Thumbnails: a per-split representation is drawn with its first split's model.
        vectors={k: v[0] if isinstance(v, list) else v for k, v in vectors.items()},
        unavailable=outcome.unavailable,
        skipped=[*outcome.skipped.values(), *small],
        notes=list(dict.fromkeys(outcome.notes)),
        leakage=leakage,
        command=command,
    )


def _resolve_models(outcome: _Outcome) -> tuple[dict[str, Representation], dict[str, LearnedRepresentation]]:
    """Each model of the comparison at its precision, by name: (ready to embed, to fit per
    split once the splits are known). Unavailable models go to `outcome`; CompareError, before
    any clip is embedded, for fit settings a model does not take."""
    from tfaudio.models.precision import with_precision
    from tfaudio.models.registry import get

    config = outcome.config
    ready: dict[str, Representation] = {}
    learners: dict[str, LearnedRepresentation] = {}
    for name in config.model_list:
        try:
            found = get(name)
            representation = with_precision(found, config.precision)
        except ModelUnavailable as err:
            outcome.left_out(name, err)
            continue
        known = found.settings if isinstance(found, LearnedRepresentation) else ()
        unknown = [setting for setting in config.fit_overrides(name) if setting not in known]
        if unknown:
            takes = f"it takes {', '.join(known)}" if known else "it is not trained on each split's clips"
            raise CompareError(f"--fit {name}.{unknown[0]}: {name} has no setting {unknown[0]!r}; {takes}")
        if isinstance(representation, LearnedRepresentation):
            learners[name] = representation  # fitted per split, once the splits are known
        else:
            ready[name] = representation
            # A wrapper (another precision) reports what the representation it wraps was fitted on.
            ready[name].trained_on = found.trained_on
    return ready, learners


def _embed_every_model(dataset: Dataset, ready: dict[str, Representation], store: EmbeddingStore,
                       outcome: _Outcome) -> dict:
    """The dataset embedded with each representation of `ready`, by name (EmbeddingTables).

    A network that fails to load leaves the comparison (to `outcome`), and so do the clips a
    table could not read.
    """
    from tfaudio.pipeline.local import EmbedConfig, embed_dataset

    config = outcome.config
    embed_config = EmbedConfig(pooling=config.pooling, batch_size=config.batch_size,
                               max_duration=config.max_duration, strict=config.strict)
    tables = {}
    for name, representation in ready.items():
        try:
            with _progress(len(dataset), f"embedding {name}") as bar:
                table = embed_dataset(dataset, representation, store, embed_config, progress=bar.update)
        except (ModelUnavailable, WeightsError, AutoencoderError) as err:
            # A pretrained network loads on first use: damaged or mismatched weights show here
            # (an autoencoder:PATH's as AutoencoderError, naming its weights file).
            outcome.left_out(name, err)
            continue
        tables[name] = table
        for problem in table.stats.skipped:
            if problem.path not in outcome.skipped:
                outcome.skipped[problem.path] = problem
                outcome.log(f"skipped {problem.shown}: {problem.reason}")
        outcome.log(f"{name}: {len(table.clips)} clips ({table.stats.cached} cached, {table.stats.computed} computed)")
    return tables


def _leakage(working: Dataset, splits: list[Split], models: dict[str, Representation],
             outcome: _Outcome) -> list[Leakage]:
    """The representations fitted on clips that a split tests them on (by content digest,
    so a copy of a clip under another name counts), each with a LeakageWarning."""
    fitted = {name: m.trained_on for name, m in models.items() if m.trained_on is not None}
    if not fitted:
        return []  # nothing to check: no clip is hashed again
    from tfaudio.store import hash_clips

    digests = np.array(hash_clips(working.clips), dtype=object)
    found = []
    for name, trained_on in fitted.items():
        seen = np.array([d is not None and d in trained_on for d in digests])
        tested = [split for split in splits if seen[split.test].any()]
        if tested:
            clips = int(np.unique(np.concatenate([split.test[seen[split.test]] for split in tested])).size)
            leak = Leakage(name, clips, len(working), tuple(split.name for split in tested), len(splits))
            warnings.warn(LeakageWarning(leak.sentence()), stacklevel=3)
            outcome.log(f"{name}: {clips} test clips were in its training")
            found.append(leak)
    return found


def _working_set(dataset: Dataset, tables: dict, strategy: str, outcome: _Outcome) -> tuple[Dataset, list[Problem]]:
    """The clips every representation could read, without the classes too small for `strategy`
    (returned as Problems). CompareError when fewer than two classes remain."""
    config = outcome.config
    # The same clips for every representation: those each one could read.
    readable = set.intersection(*({str(c.path) for c in t.clips} for t in tables.values()))
    for clip in dataset.clips:
        if str(clip.path) not in readable and str(clip.path) not in outcome.skipped:
            outcome.skipped[str(clip.path)] = Problem(str(clip.path), "not embedded by every representation")
    needed = minimum_per_class(strategy, config.folds)
    working, small = drop_small_classes(_subset(dataset, readable), needed, f"{strategy} cross-validation")
    for problem in small:
        outcome.log(f"left out {problem.path}: {problem.reason}")
    if len(working.classes) < 2:
        raise CompareError(
            f"{dataset.root}: fewer than 2 classes have enough readable clips for {strategy} cross-validation "
            f"(at least {needed} each); nothing to compare"
        )
    return working, small


def _fit_per_split(name: str, learner: LearnedRepresentation, working: Dataset, splits: list[Split],
                   store: EmbeddingStore, outcome: _Outcome) -> tuple[list[np.ndarray], RepresentationInfo]:
    """Per split: `learner` fitted on that split's training clips only, every clip of the split
    embedded with it. Returns ([float32 [clips, dim] per split], RepresentationInfo).

    Fitted models are kept beside the embedding store (in <store>/..), so a rerun of the same
    comparison loads them instead of fitting again and gets the very same vectors.
    """
    from tfaudio.pipeline.local import EmbedConfig, embed_dataset

    config = outcome.config
    embed_config = EmbedConfig(pooling=config.pooling, batch_size=config.batch_size, max_duration=config.max_duration)
    per_split, cached, computed, seconds, identity = [], 0, 0, 0.0, {}
    for split in splits:
        representation = learner.fit(working, split.train, models_dir=store.root.parent, part=split.name, log=outcome.log)
        table = embed_dataset(working, representation, store, embed_config)
        if len(table.clips) != len(working):
            raise CompareError(f"the {name} could not embed {len(working) - len(table.clips)} clips of {split.name}")
        per_split.append(np.asarray(table.vectors))
        cached, computed, seconds = cached + table.stats.cached, computed + table.stats.computed, seconds + table.stats.seconds
        # What the fits share: the weights' digests differ from split to split.
        identity = {k: v for k, v in representation.identity().items() if "sha256" not in k and "digest" not in k}
    info = RepresentationInfo(name, per_split[0].shape[1], table.pooling,
                              {**identity, "trained_per_split": True}, cached, computed, seconds, per_split=True)
    return per_split, info


def _cross_validate(vectors: dict, working: Dataset, splits: list[Split], outcome: _Outcome) -> list[Run]:
    """Every classifier on every representation over the same splits, each learned
    representation tested against the baseline with the same classifier (McNemar)."""
    config, y = outcome.config, working.labels
    specs = [config.spec(c) for c in config.classifiers]
    runs: list[Run] = []
    with _progress(len(vectors) * len(specs) * len(splits), "classifiers", unit="fit") as bar:
        for name, features in vectors.items():
            for spec in specs:
                result = cross_validate(features, y, splits, spec)
                bar.update(len(splits))
                outcome.notes.extend(f"{name}: {warning}" for warning in dict.fromkeys(result.warnings))
                runs.append(Run(name, spec.name, result, score(y, result, len(working.classes), config.seed), None))
    baseline = {r.classifier: r for r in runs if r.representation == BASELINE}
    return [
        run if run.representation == BASELINE
        else replace(run, versus_baseline=mcnemar(y, run.cv.predictions, baseline[run.classifier].cv.predictions))
        for run in runs
    ]
