"""Splits of a dataset into training and test clips: the one split vocabulary of tfaudio.

compare, train, visualize and the autoencoder all name their strategy, resolve "auto" and count
the clips a class needs here, so a fold means the same thing everywhere:

    "predefined"  one split per fold of the manifest ("fold" is its old name)
    "group"       k folds, no group (speaker, recording) on both sides
    "stratified"  k folds, class proportions kept
    "holdout"     one stratified train / test split
    "auto"        the manifest's folds if any, else group-aware folds if the clips have groups,
                  else stratified folds (`resolve_strategy`)

Training holds out one validation set with the same words (`validation_holdout`): one of the
manifest's folds, a group-aware share or a stratified share of the clips.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from tfaudio.data.dataset import Dataset, DatasetError, Problem

#: Every split strategy.
SPLIT_STRATEGIES = ("auto", "predefined", "group", "stratified", "holdout")

#: Old names of a strategy, still accepted: `tfaudio train --split fold` was "predefined".
ALIASES = {"fold": "predefined"}

#: The strategies that test every clip exactly once (cross-validation), which a comparison needs.
CROSS_VALIDATION = ("auto", "predefined", "group", "stratified")

#: The strategies training holds one validation set out with (`validation_holdout`). "holdout"
#: is not among them: every one of these is a holdout, and "auto" already picks its kind.
VALIDATION_SPLITS = ("auto", "predefined", "group", "stratified")


class SplitError(DatasetError):
    """The requested split is impossible for this dataset (e.g. a class with too few clips)."""


@dataclass(frozen=True)
class Split:
    """Indices into the dataset's clips: int64 [n_train] and int64 [n_test]."""

    name: str
    train: np.ndarray
    test: np.ndarray


def resolve_strategy(dataset: Dataset, strategy: str = "auto") -> str:
    """The strategy `strategy` names for this dataset: an alias gives its strategy ("fold" ->
    "predefined"); "auto" gives "predefined" when the manifest has folds, else "group" when the
    clips have groups, else "stratified". Raises ValueError for an unknown name."""
    strategy = ALIASES.get(strategy, strategy)
    if strategy not in SPLIT_STRATEGIES:
        raise ValueError(f"unknown split strategy {strategy!r}; choose one of {SPLIT_STRATEGIES}")
    if strategy != "auto":
        return strategy
    return "predefined" if dataset.folds is not None else "group" if dataset.groups is not None else "stratified"


def minimum_per_class(strategy: str, k: int = 5) -> int:
    """Clips a class needs for `strategy` (resolved, not "auto") to put it on both sides of
    every split: k for stratified k-fold, else 2."""
    return k if ALIASES.get(strategy, strategy) == "stratified" else 2


def drop_small_classes(dataset: Dataset, needed: int, why: str) -> tuple[Dataset, list[Problem]]:
    """The dataset without the classes that have fewer than `needed` clips, and one Problem per
    class left out, saying that `why` (e.g. "stratified cross-validation") needs `needed`."""
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


def _require_per_class(labels: np.ndarray, classes: Sequence[str], needed: int, what: str) -> None:
    counts = np.bincount(labels, minlength=len(classes))
    short = [f"'{classes[i]}' ({counts[i]})" for i in np.flatnonzero(counts < needed)]
    if short:
        raise SplitError(
            f"{what} needs at least {needed} clips per class; too few in: {', '.join(short)}. "
            f"Add clips, drop those classes, or ask for fewer folds"
        )


def holdout(dataset: Dataset, test_size: float = 0.2, seed: int = 0, *, grouped: bool = True) -> list[Split]:
    """One stratified train/test split, group-aware when the dataset has groups (unless
    grouped=False: then the groups are ignored)."""
    from sklearn.model_selection import StratifiedGroupKFold, train_test_split

    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be in (0, 1), got {test_size}")
    labels = dataset.labels
    _require_per_class(labels, dataset.classes, minimum_per_class("holdout"), "A stratified holdout split")
    index = np.arange(len(labels))
    if grouped and dataset.groups is not None:
        k = max(2, int(round(1 / test_size)))
        train, test = next(StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(index, labels, dataset.groups))
    else:
        train, test = train_test_split(index, test_size=test_size, stratify=labels, random_state=seed)
    return [Split("holdout", np.sort(train), np.sort(test))]


def stratified_kfold(dataset: Dataset, k: int = 5, seed: int = 0) -> list[Split]:
    """k stratified folds, shuffled with `seed`."""
    from sklearn.model_selection import StratifiedKFold

    labels = dataset.labels
    _require_per_class(labels, dataset.classes, minimum_per_class("stratified", k), f"Stratified {k}-fold cross-validation")
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
    _require_per_class(labels, dataset.classes, minimum_per_class("group", k), f"Group-aware {k}-fold cross-validation")
    if len(set(groups)) < k:
        raise SplitError(f"group-aware {k}-fold cross-validation needs at least {k} groups; found {len(set(groups))}")
    index = np.arange(len(labels))
    folds = StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(index, labels, groups)
    return [Split(f"fold{i + 1}", train, test) for i, (train, test) in enumerate(folds)]


def predefined_folds(dataset: Dataset) -> list[Split]:
    """One split per fold value of the manifest: that fold is the test side."""
    values = _fold_values(dataset)
    if len(values) < 2:
        raise SplitError(f"predefined folds need at least 2 distinct folds; found only fold {values[0]}")
    _require_per_class(dataset.labels, dataset.classes, minimum_per_class("predefined"), "Cross-validation over predefined folds")
    return [fold_split(dataset, v) for v in values]


def _fold_values(dataset: Dataset) -> np.ndarray:
    """The manifest's distinct fold values, sorted; SplitError when it has no fold column."""
    if dataset.folds is None:
        raise SplitError("the dataset has no predefined folds (no fold column in its manifest)")
    return np.unique(dataset.folds)


def fold_split(dataset: Dataset, fold=None) -> Split:
    """The manifest's fold `fold` (default: the lowest) as the test side, every other fold as the
    training side. SplitError when no clip is in that fold."""
    values = _fold_values(dataset)
    fold = values[0] if fold is None else fold
    if fold not in values:
        raise SplitError(f"no clip is in fold {fold} (folds present: {values.tolist()})")
    folds = dataset.folds
    return Split(f"fold{fold}", np.flatnonzero(folds != fold), np.flatnonzero(folds == fold))


def validation_holdout(dataset: Dataset, strategy: str = "auto", *, fold=None, fraction: float = 0.2,
                       seed: int = 0) -> Split:
    """One train / validation split, as training holds it out (strategy: one of
    VALIDATION_SPLITS or an alias, resolved by `resolve_strategy`):

    "predefined": the manifest's fold `fold` (default: the lowest) held out (`fold_split`);
    "group": about `fraction` of the clips held out, no group on both sides;
    "stratified": `fraction` of the clips held out, class proportions kept, groups ignored.

    `fold` belongs to "predefined" only. Raises SplitError when the split cannot be made.
    """
    strategy = resolve_strategy(dataset, strategy)
    if strategy not in VALIDATION_SPLITS:
        raise ValueError(f"split strategy {strategy!r} holds out no validation set; choose one of {VALIDATION_SPLITS}")
    if strategy == "predefined":
        return fold_split(dataset, fold)
    if fold is not None:
        raise SplitError(f"a validation fold applies to the 'predefined' split, not {strategy!r}")
    if strategy == "group" and dataset.groups is None:
        raise SplitError("a group-aware split needs a group for every clip (a group column in the manifest)")
    # "stratified" leaves groups out of it, even when the clips have some.
    (split,) = holdout(dataset, fraction, seed, grouped=strategy == "group")
    return split


def make_splits(
    dataset: Dataset, strategy: str = "auto", k: int = 5, seed: int = 0, test_size: float = 0.2
) -> list[Split]:
    """Splits by strategy (see the module docstring; "auto" as `resolve_strategy` says)."""
    strategy = resolve_strategy(dataset, strategy)
    if strategy == "predefined":
        return predefined_folds(dataset)
    if strategy == "group":
        return group_kfold(dataset, k, seed)
    if strategy == "stratified":
        return stratified_kfold(dataset, k, seed)
    return holdout(dataset, test_size, seed)


def balanced_holdout(dataset: Dataset, indices: np.ndarray, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held out) int64 dataset indices: `fraction` of the clips at `indices` (at least
    one) held out, drawn with the seed, spread over the classes so every class is held out
    when it can be.

    Stratified without scikit-learn's minimum counts (a class of one clip is fine): the classes
    take turns, in a seeded order, each giving a seeded random clip, until enough are held out.
    The autoencoder stops early on such a validation set.
    """
    indices = np.asarray(indices, dtype=np.int64)
    rng = np.random.default_rng(seed)
    labels = dataset.labels[indices]
    wanted = max(1, int(round(fraction * len(indices))))
    held = []
    pools = [list(rng.permutation(indices[labels == c])) for c in np.unique(labels)]
    order = rng.permutation(len(pools))
    while len(held) < wanted:
        for k in order:
            if pools[k] and len(held) < wanted:
                held.append(pools[k].pop())
    held = np.sort(np.array(held, dtype=np.int64))
    return np.setdiff1d(indices, held), held
