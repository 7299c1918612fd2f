"""Which representation works for this dataset? Every representation, every classifier, the
same folds, and the numbers a reviewer would ask for.

    result = compare("path/to/esc10", CompareConfig(models=("handcrafted", "yamnet")))
    result.ranking            # pandas: one row per representation x classifier
    write_report(result, "reports/esc10")

The flow: load the dataset; embed it with each representation through the embedding store
(so a second comparison costs seconds); keep the clips every representation could read; drop
classes too small for the split, saying so; build the splits once; cross-validate every
classifier on every representation over those same splits; test each learned representation
against the hand-crafted baseline with McNemar's test on the same out-of-fold predictions.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tfaudio.comparison.classifiers import cross_validate
from tfaudio.comparison.config import AUTOENCODER, BASELINE, CompareConfig, CompareError
from tfaudio.comparison.metrics import mcnemar, score
from tfaudio.comparison.result import ComparisonResult, RepresentationInfo, Run, Unavailable
from tfaudio.data.dataset import Dataset, Problem, load_dataset
from tfaudio.data.splits import Split, make_splits

if TYPE_CHECKING:

    from tfaudio.models.base import Representation


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
    from tfaudio.data.dataset import summarize
    from tfaudio.models.registry import ModelUnavailable, get
    from tfaudio.pipeline.local import EmbedConfig, embed_dataset
    from tfaudio.quiet import import_tensorflow_quietly
    from tfaudio.store import EmbeddingStore

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
        from tfaudio.models.autoencoder.config import AutoencoderError

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

    from tfaudio.models.autoencoder.config import CONFIG_FILE
    from tfaudio.models.autoencoder.model import AutoencoderConfig, load_representation
    from tfaudio.models.autoencoder.train import save, train
    from tfaudio.pipeline.local import EmbedConfig, embed_dataset
    from tfaudio.store import hash_clips

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
