"""What one label's head learns from: the index windows people labelled, and weak negatives.

A window takes the kind of the label's annotations that cover it (tfaudio.labels.windows): a
positive or a negative is a labelled example, an unsure one is left out. Most of an archive is
never labelled; a sample of those windows joins as *weak* negatives (most windows of an archive
are not the sound sought), each weighing `weak_negative_weight` of a labelled one. Only windows
of recordings that hold no positive of the label are taken: the window next to a labelled call
is too often the same call's tail, or its neighbour, to be a safe negative.

Positives of another label say nothing about this one (a window may hold two sounds): a window
is a negative for "owl" only when someone labelled it so, and a window labelled positive for
another label is not taken as a weak negative either.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from tfaudio.detector.config import DetectorConfig


@dataclass(frozen=True)
class TrainingSet:
    """One label's examples, all index windows.

    ids: int64 [m] window ids of the index; y: int8 [m], 1 positive, 0 negative; weights:
    float32 [m], 1 for a labelled window and `weak_negative_weight` for a weak negative (the
    head balances positives against negatives on top of these); groups: object [m], the
    recording of each window (its sha256, or its path when it has none), which cross-validation
    and bootstrap intervals keep together; labelled: bool [m], False for a weak negative.
    Labelled windows come first, in id order, then weak negatives in id order. unsure: how
    many windows were judged unsure and left out (for reports).
    """

    label: str
    ids: np.ndarray
    y: np.ndarray
    weights: np.ndarray
    groups: np.ndarray
    labelled: np.ndarray
    unsure: int = 0

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def positives(self) -> int:
        return int(np.sum(self.y[self.labelled] == 1))

    @property
    def negatives(self) -> int:
        """Labelled negatives (weak ones not counted)."""
        return int(np.sum(self.y[self.labelled] == 0))

    @property
    def weak_negatives(self) -> int:
        return int(np.sum(~self.labelled))

    def subset(self, rows) -> TrainingSet:
        """The examples at `rows` (a bool mask or positions), in that order."""
        return TrainingSet(self.label, self.ids[rows], self.y[rows], self.weights[rows], self.groups[rows],
                           self.labelled[rows], self.unsure)


def recordings(windows) -> np.ndarray:
    """object [len(windows)]: each window's recording key, its sha256, else (none known) its path."""
    digests = windows["sha256"].fillna("").astype(str).to_numpy(dtype=object)
    files = windows["file"].astype(str).to_numpy(dtype=object)
    return np.where(digests != "", digests, files)


def label_seed(seed: int, label: str) -> list[int]:
    """A seed for one label's random choices: the same every run, different between labels."""
    return [int(seed), zlib.crc32(label.encode("utf-8"))]


def training_set(index, store, label: str, config: DetectorConfig = DetectorConfig()) -> TrainingSet:
    """The examples of `label` in `index` (a SearchIndex) by the annotations in `store` (a
    LabelStore; its latest judgement of each span counts).

    Windows covered by a positive annotation are positives, by a negative one negatives (a
    positive wins where both cover a window), by an unsure one left out. Then at most
    `config.weak_negatives` windows (a sample seeded by config.seed and the label) that no
    annotation of the label covers and whose recording holds no positive of it join as weak
    negatives, none when `config.weak_negative_weight` is 0; windows that are positives of
    other labels are not among them.
    """
    from tfaudio.labels.windows import window_kinds

    windows = index.windows
    annotations = store.query(label=label, latest=True)
    kinds = window_kinds(windows, annotations, min_overlap=config.min_overlap)
    groups = recordings(windows)
    positive = kinds == "positive"
    labelled = np.flatnonzero(positive | (kinds == "negative"))
    weak = np.zeros(0, np.int64)
    if config.weak_negative_weight > 0 and config.weak_negatives > 0:
        # Filtered here, not by query(kind=...): that filter applies before `latest`, so it
        # would bring back a positive judged otherwise since.
        others = [a for a in store.query(latest=True) if a.kind == "positive" and a.label != label]
        elsewhere = _unlabelled_elsewhere(windows, kinds, annotations, groups, positive)
        taken = window_kinds(windows, others, min_overlap=config.min_overlap) == "positive"
        candidates = np.flatnonzero(elsewhere & ~taken)
        if len(candidates) > config.weak_negatives:
            rng = np.random.default_rng(label_seed(config.seed, label))
            candidates = np.sort(rng.choice(candidates, config.weak_negatives, replace=False))
        weak = candidates
    ids = np.concatenate([labelled, weak]).astype(np.int64)
    y = np.concatenate([positive[labelled], np.zeros(len(weak), bool)]).astype(np.int8)
    weights = np.concatenate([np.ones(len(labelled)), np.full(len(weak), config.weak_negative_weight)])
    return TrainingSet(label=label, ids=ids, y=y, weights=weights.astype(np.float32), groups=groups[ids],
                       labelled=np.arange(len(ids)) < len(labelled), unsure=int(np.sum(kinds == "unsure")))


def _unlabelled_elsewhere(windows, kinds, annotations, groups, positive) -> np.ndarray:
    """bool [windows]: no annotation of the label covers the window, and its recording holds no
    positive (by a positive window, or by a positive annotation naming the recording, which
    may cover no window fully enough to make one)."""
    import pandas as pd

    with_positive = pd.Series(groups).isin(set(groups[positive])).to_numpy()
    hashes = {a.sha256 for a in annotations if a.kind == "positive" and a.sha256}
    paths = {a.file for a in annotations if a.kind == "positive" and not a.sha256}
    named = windows["sha256"].isin(hashes).to_numpy() | windows["file"].isin(paths).to_numpy()
    return (kinds == None) & ~named & ~with_positive  # noqa: E711 (object array)
