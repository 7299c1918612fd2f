"""Train a detector: heads per label on an index's embeddings, cross-validated by recording,
calibrated on held-out scores, with a threshold per label at a target precision.

For each label (`training_set`): the labelled windows are split into folds by recording
(scikit-learn's StratifiedGroupKFold: no recording on both sides, the share of positives kept
alike), and the weak negatives by recording too: a recording's weak negatives go with its
labelled windows, and recordings with weak negatives only are dealt round the folds. A head
fitted on the other folds scores each fold's labelled windows (weak negatives are trained on,
never scored: they are guesses, not labels). Platt scaling (a, b) is fitted on those
out-of-fold raw scores; the calibrated held-out probabilities give the average precision, the
reliability (ECE) and the threshold at the target precision, each with an interval that
resamples recordings. The heads the detector keeps are fitted again on everything.

Platt's two parameters are fitted on the same held-out scores whose calibration is then
measured, so the ECE is slightly optimistic; it does not move the ranking (AP) or which windows
pass a threshold. Fewer than two recordings with positives (or with negatives), or no labelled
negative at all, leave nothing honest to hold out: the label gets heads but no metrics, Platt
(1, 0) and threshold 0.5, and its report's `note` says why.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable

import numpy as np

from tfaudio.detector.config import DetectorConfig
from tfaudio.detector.heads import Heads, fit_label, stack, standardisation
from tfaudio.detector.model import Detector, DetectorError, LabelReport, shown
from tfaudio.detector.trainingset import TrainingSet, label_seed, training_set
from tfaudio.errors import TfaudioWarning

#: The threshold of a label without cross-validation: the logistic of a raw score of 0.
DEFAULT_THRESHOLD = 0.5

Progress = Callable[[str, int, int], None]


def train_detector(index, store, labels=None, config: DetectorConfig = DetectorConfig(),
                   progress: Progress | None = None) -> Detector:
    """A detector of `labels` trained on the windows of `index` (a SearchIndex or its path)
    labelled in `store` (a LabelStore or its path).

    labels: names, or None for every label of the store with a positive window in the index.
    progress(step, done, total): called after each fit (total: every fold of every label, and
    the final fits). Raises DetectorError (one line) for a label without positives or without
    negatives in the index. The same call gives the same detector (everything is seeded).
    """
    index = _open_index(index)
    with _opened(store) as opened:
        sets = _sets(index, opened, labels, config)
        samples = {s.label: _samples(index, opened, s.label, config) for s in sets}
    plans = [_plan(s, config) for s in sets]
    total = sum(plan[1] + 1 for plan in plans)
    done = 0

    def step(what: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(what, done, total)

    ids = np.unique(np.concatenate([s.ids for s in sets]))
    every = np.asarray(index.vectors(ids), np.float32)
    matrices = [every[np.searchsorted(ids, s.ids)] for s in sets]
    reports, held_out, platt_a, platt_b, thresholds = [], {}, [], [], []
    for s, x, (assignment, folds, note) in zip(sets, matrices, plans):
        report, held = _cross_validate(s, x, assignment, folds, note, config, step)
        reports.append(report)
        held_out[s.label] = held
        platt_a.append(report.platt[0])
        platt_b.append(report.platt[1])
        thresholds.append(report.point.threshold if report.point is not None else DEFAULT_THRESHOLD)
    mean, scale = standardisation(every, config.standardize)
    parts = []
    for s, x in zip(sets, matrices):
        parts.append(fit_label(config.classifier, (x - mean) / scale, s.y, s.weights, config))
        step(f"{s.label}: final fit")
    heads = stack(config.classifier, [s.label for s in sets], mean, scale, parts)
    reports, thresholds = _on_the_archive(index, heads, reports, thresholds, held_out, samples, config)
    return Detector(labels=heads.labels, heads=heads, platt_a=np.array(platt_a), platt_b=np.array(platt_b),
                    thresholds=np.array(thresholds, np.float64), config=config, source=source_of(index),
                    reports=tuple(reports), held_out=held_out)


def fit_heads_now(index, store, label: str, config: DetectorConfig = DetectorConfig()) -> Heads:
    """Heads of one label fitted on all its examples at once, without cross-validation or
    calibration (for choosing windows to label before any detector was trained)."""
    index = _open_index(index)
    with _opened(store) as opened:
        (s,) = _sets(index, opened, [label], config)
    x = np.asarray(index.vectors(s.ids), np.float32)
    mean, scale = standardisation(x, config.standardize)
    return stack(config.classifier, [label], mean, scale,
                 [fit_label(config.classifier, (x - mean) / scale, s.y, s.weights, config)])


def source_of(index) -> dict:
    """What a detector must know of the index it was trained on to score other windows alike."""
    from pathlib import Path

    header = index.header
    return {"index": str(Path(index.path).resolve()), "model": index.model, "precision": index.precision,
            "hop": float(index.hop), "frame_hop": float(header["frame_hop"]), "frame_span": float(header["frame_span"]),
            "frames_per_window": int(header["frames_per_window"]), "key": header["key"], "dim": int(index.dim),
            "sample_rate": _sample_rate(index)}


def _sample_rate(index) -> int | None:
    """The model's sample rate, from the registry's card (no model loaded), else its identity."""
    from tfaudio.models.registry import card_for

    card = card_for(index.model)
    if card is not None:
        return int(card.sample_rate)
    rate = (index.identity.get("params") or {}).get("sample_rate")
    return None if rate is None else int(rate)


def _open_index(index):
    from tfaudio.search.index import SearchIndex

    return index if isinstance(index, SearchIndex) else SearchIndex.open(index)


class _opened:
    """A LabelStore given as one (left open) or as a path (opened, never created, then closed)."""

    def __init__(self, store):
        self.store, self.own = store, isinstance(store, (str, os.PathLike))

    def __enter__(self):
        if self.own:
            from tfaudio.labels import LabelStore

            self.store = LabelStore(self.store, create=False)
        return self.store

    def __exit__(self, *exc) -> None:
        if self.own:
            self.store.close()


def _sets(index, store, labels, config: DetectorConfig) -> list[TrainingSet]:
    """Training sets of `labels` (None: every label of the store with a positive window here)."""
    known = store.labels()
    where = f"{shown(store.path)} for {shown(index.path)}"
    if labels is not None:
        labels = [labels] if isinstance(labels, str) else list(labels)
        unknown = [label for label in labels if label not in known]
        if unknown:
            raise DetectorError(f"{shown(store.path)}: no label {', '.join(map(repr, unknown))} (labels there: "
                                f"{', '.join(known) or 'none'})")
    sets = [training_set(index, store, label, config) for label in (known if labels is None else labels)]
    without = [s.label for s in sets if not s.positives]
    if labels is not None and without:
        raise DetectorError(f"{where}: no positive window of {', '.join(map(repr, without))} (its positives are in "
                            "files the index does not hold, or none is labelled); label positives in the index")
    if without:
        warnings.warn(TfaudioWarning(f"{where}: no positive window of {', '.join(without)}; left out"), stacklevel=3)
    sets = [s for s in sets if s.positives]
    if not sets:
        raise DetectorError(f"{where}: no label has a positive window in the index; label some positives first")
    lonely = [s.label for s in sets if not (s.y == 0).any()]
    if lonely:
        raise DetectorError(f"{where}: no negative window of {', '.join(map(repr, lonely))} (every window is "
                            "labelled positive or unsure, or in a recording with positives); label some negatives")
    return sets


def _plan(s: TrainingSet, config: DetectorConfig) -> tuple[np.ndarray | None, int, str]:
    """(fold of each example int [m] or None, folds, note): the recording-grouped folds of one
    label, or None and why there is no cross-validation."""
    labelled_positive = s.labelled & (s.y == 1)
    positive_recordings = len(set(s.groups[labelled_positive]))
    negative_recordings = len(set(s.groups[s.y == 0]))
    folds = min(config.folds, positive_recordings, negative_recordings)
    if positive_recordings < 2:
        return None, 0, (f"positives in only {positive_recordings} recording: no cross-validation (label positives "
                         "in 2 or more recordings)")
    if not s.negatives:
        return None, 0, "no labelled negatives: no held-out metrics (label some negatives)"
    if folds < 2:
        return None, 0, "negatives in only 1 recording: no cross-validation (label or index more recordings)"
    from sklearn.model_selection import StratifiedGroupKFold

    labelled = np.flatnonzero(s.labelled)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=config.seed)
    fold_of: dict = {}
    with warnings.catch_warnings():
        # "The least populated class has only n members": fewer labelled negatives than folds
        # is expected early on, and the held-out pool is what is measured, not each fold.
        warnings.filterwarnings("ignore", "The least populated class", UserWarning)
        splits = list(splitter.split(np.zeros((len(labelled), 1)), s.y[labelled], s.groups[labelled]))
    for k, (_, test) in enumerate(splits):
        fold_of.update(dict.fromkeys(s.groups[labelled[test]], k))
    weak_only = sorted(set(s.groups[~s.labelled]) - set(fold_of))
    order = np.random.default_rng(label_seed(config.seed, s.label)).permutation(len(weak_only))
    fold_of.update({weak_only[i]: position % folds for position, i in enumerate(order)})
    return np.array([fold_of[g] for g in s.groups], np.int64), folds, ""


def _cross_validate(s: TrainingSet, x: np.ndarray, assignment, folds: int, note: str, config: DetectorConfig,
                    step: Callable[[str], None]) -> tuple[LabelReport, dict]:
    """One label's report and held-out arrays from its folds (none: a report without metrics)."""
    recordings = len(set(s.groups[s.labelled]))
    counts = dict(label=s.label, positives=s.positives, negatives=s.negatives, unsure=s.unsure,
                  weak_negatives=s.weak_negatives, recordings=recordings)
    empty = {"y": np.zeros(0, np.int8), "probability": np.zeros(0, np.float32), "groups": np.zeros(0, str),
             "ids": np.zeros(0, np.int64)}
    if assignment is None:
        return LabelReport(**counts, note=note), empty
    scores = np.full(len(s), np.nan)
    skipped = []
    for k in range(folds):
        train = assignment != k
        test = s.labelled & ~train
        if not ((s.y[train] == 1).any() and (s.y[train] == 0).any()):
            skipped.append(k + 1)  # a fold whose complement lacks a class cannot train a head
        else:
            mean, scale = standardisation(x[train], config.standardize)
            part = fit_label(config.classifier, (x[train] - mean) / scale, s.y[train], s.weights[train], config)
            heads = stack(config.classifier, [s.label], mean, scale, [part])
            scores[test] = heads.scores(x[test])[:, 0]
        step(f"{s.label}: fold {k + 1}/{folds}")
    if skipped:
        note = f"folds {', '.join(map(str, skipped))} of {folds} had nothing to train on and are not held out"
    scored = s.labelled & ~np.isnan(scores)
    return _measured(counts, s.y[scored], scores[scored], s.groups[scored], s.ids[scored], config, note)


def _measured(counts: dict, y: np.ndarray, scores: np.ndarray, groups: np.ndarray, ids: np.ndarray,
              config: DetectorConfig, note: str) -> tuple[LabelReport, dict]:
    """Platt scaling, average precision, calibration and the threshold of held-out raw scores
    (of the windows `ids`, kept with the held-out arrays for the archive estimate)."""
    from tfaudio.detector.stats import (
        average_precision,
        binary_calibration,
        fit_platt,
        platt,
        threshold_at_precision,
    )

    a, b = fit_platt(scores, y)
    p = platt(scores, a, b)
    seeded = dict(resamples=config.resamples, seed=config.seed)
    ap, ap_ci = average_precision(y, p, groups, **seeded)
    roc_auc = None
    if (y == 1).any() and (y == 0).any():
        from sklearn.metrics import roc_auc_score

        roc_auc = float(roc_auc_score(y, p))
    report = LabelReport(**counts, average_precision=ap, average_precision_ci=ap_ci, roc_auc=roc_auc,
                         calibration=binary_calibration(p, y, groups, **seeded), platt=(a, b),
                         point=threshold_at_precision(y, p, config.target_precision, groups, **seeded), note=note)
    held = {"y": y.astype(np.int8), "probability": p.astype(np.float32), "groups": np.asarray(groups, dtype=str),
            "ids": ids}
    return report, held


def _samples(index, store, label: str, config: DetectorConfig):
    """(known int8 [N]: 1 positive, 0 negative, -1 not labelled; the label's probability rounds)."""
    from tfaudio.detector.archive import sampled_rounds
    from tfaudio.labels.windows import window_kinds

    annotations = store.query(label=label, latest=True)
    if not any(a.weight is not None for a in annotations):
        return None, []
    kinds = window_kinds(index.windows, annotations, min_overlap=config.min_overlap)
    known = np.where(kinds == "positive", 1, np.where(kinds == "negative", 0, -1)).astype(np.int8)
    return known, sampled_rounds(index.windows, annotations, kinds, config.min_overlap)


def _on_the_archive(index, heads, reports, thresholds, held_out, samples, config: DetectorConfig):
    """Reports with the archive estimate of each label that has probability rounds, and the
    thresholds chosen on it (tfaudio.detector.archive); the others as they were."""
    from dataclasses import replace

    from tfaudio.detector.archive import archive_estimate, usable
    from tfaudio.detector.stats import platt

    wanted = [i for i, r in enumerate(reports) if r.point is not None and usable(samples[r.label][1])]
    if not wanted:
        return reports, thresholds
    columns = np.empty((len(index), len(wanted)), np.float64)
    for first, block in index.chunks():
        raw = heads.scores(np.asarray(block, np.float32))
        columns[first : first + len(block)] = np.column_stack(
            [platt(raw[:, i], *reports[i].platt) for i in wanted])
    reports, thresholds = list(reports), list(thresholds)
    for column, i in enumerate(wanted):
        label = reports[i].label
        known, rounds = samples[label]
        scores = columns[:, column]
        held = held_out[label]
        scores[held["ids"]] = held["probability"]  # labelled windows: what a model not trained on them says
        estimate = archive_estimate(scores, known, rounds, config.target_precision, seed=config.seed)
        reports[i] = replace(reports[i], archive=estimate)
        thresholds[i] = estimate.threshold
    return tuple(reports), thresholds
