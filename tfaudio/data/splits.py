"""Splits of a dataset into training and test clips: the one split vocabulary of tfaudio.

compare, train, visualize and the autoencoder all resolve their strategy here, so a fold
means the same thing everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tfaudio.data.dataset import Dataset, DatasetError

if TYPE_CHECKING:  # pandas is imported where a summary is built, not for every dataset read
    pass


class SplitError(DatasetError):
    """The requested split is impossible for this dataset (e.g. a class with too few clips)."""


@dataclass(frozen=True)
class Split:
    """Indices into the dataset's clips: int64 [n_train] and int64 [n_test]."""

    name: str
    train: np.ndarray
    test: np.ndarray


def _require_per_class(labels: np.ndarray, classes: Sequence[str], needed: int, what: str) -> None:
    counts = np.bincount(labels, minlength=len(classes))
    short = [f"'{classes[i]}' ({counts[i]})" for i in np.flatnonzero(counts < needed)]
    if short:
        raise SplitError(
            f"{what} needs at least {needed} clips per class; too few in: {', '.join(short)}. "
            f"Add clips, drop those classes, or ask for fewer folds"
        )


def holdout(dataset: Dataset, test_size: float = 0.2, seed: int = 0) -> list[Split]:
    """One stratified train/test split (group-aware when the dataset has groups)."""
    from sklearn.model_selection import StratifiedGroupKFold, train_test_split

    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    labels = dataset.labels
    _require_per_class(labels, dataset.classes, 2, "A stratified holdout split")
    index = np.arange(len(labels))
    if dataset.groups is not None:
        k = max(2, int(round(1 / test_size)))
        train, test = next(StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(index, labels, dataset.groups))
    else:
        train, test = train_test_split(index, test_size=test_size, stratify=labels, random_state=seed)
    return [Split("holdout", np.sort(train), np.sort(test))]


def stratified_kfold(dataset: Dataset, k: int = 5, seed: int = 0) -> list[Split]:
    """k stratified folds, shuffled with `seed`."""
    from sklearn.model_selection import StratifiedKFold

    labels = dataset.labels
    _require_per_class(labels, dataset.classes, k, f"Stratified {k}-fold cross-validation")
    index = np.arange(len(labels))
    folds = StratifiedKFold(k, shuffle=True, random_state=seed).split(index, labels)
    return [Split(f"fold{i + 1}", train, test) for i, (train, test) in enumerate(folds)]


def group_kfold(dataset: Dataset, k: int = 5, seed: int = 0) -> list[Split]:
    """k folds with no group (speaker, recording) on both sides, stratified as far as possible."""
    from sklearn.model_selection import StratifiedGroupKFold

    groups = dataset.groups
    if groups is None:
        raise SplitError("group-aware folds need a group for every clip (a group column in the manifest)")
    labels = dataset.labels
    _require_per_class(labels, dataset.classes, 2, f"Group-aware {k}-fold cross-validation")
    if len(set(groups)) < k:
        raise SplitError(f"group-aware {k}-fold cross-validation needs at least {k} groups; found {len(set(groups))}")
    index = np.arange(len(labels))
    folds = StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(index, labels, groups)
    return [Split(f"fold{i + 1}", train, test) for i, (train, test) in enumerate(folds)]


def predefined_folds(dataset: Dataset) -> list[Split]:
    """One split per fold value of the manifest: that fold is the test side."""
    folds = dataset.folds
    if folds is None:
        raise SplitError("the dataset has no predefined folds (no fold column in its manifest)")
    values = np.unique(folds)
    if len(values) < 2:
        raise SplitError(f"predefined folds need at least 2 distinct folds; found only fold {values[0]}")
    _require_per_class(dataset.labels, dataset.classes, 2, "Cross-validation over predefined folds")
    return [Split(f"fold{v}", np.flatnonzero(folds != v), np.flatnonzero(folds == v)) for v in values]


SPLIT_STRATEGIES = ("auto", "predefined", "group", "stratified", "holdout")


def make_splits(
    dataset: Dataset, strategy: str = "auto", k: int = 5, seed: int = 0, test_size: float = 0.2
) -> list[Split]:
    """Splits by strategy. "auto": the manifest's folds if any, else group-aware folds if the
    clips have groups, else stratified k-fold."""
    if strategy == "auto":
        strategy = "predefined" if dataset.folds is not None else "group" if dataset.groups is not None else "stratified"
    if strategy == "predefined":
        return predefined_folds(dataset)
    if strategy == "group":
        return group_kfold(dataset, k, seed)
    if strategy == "stratified":
        return stratified_kfold(dataset, k, seed)
    if strategy == "holdout":
        return holdout(dataset, test_size, seed)
    raise ValueError(f"unknown split strategy {strategy!r}; choose one of {SPLIT_STRATEGIES}")
