"""How well labels separate, in the original space and in the 2-D picture.

Two figures per space:

* silhouette score of the labels (-1..1; above 0 means clips sit closer to their own class
  than to the nearest other class);
* k-nearest-neighbour accuracy under cross-validation on the dataset's splits (its manifest
  folds, else group-aware or stratified folds: `tfaudio.data.splits`' "auto").

In the original space distances are cosine distances after the projection's scaling (fitted
on each training side only): cosine is what nearest-neighbour search over learned embeddings
uses. In 2-D they are Euclidean: that is the distance the eye reads off the picture. The 2-D
points come from a projection fitted on every clip without labels, so the 2-D accuracy says how
well the picture separates classes, not how a model would do on unseen clips.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tfaudio.data.dataset import Dataset
from tfaudio.viz.points import VizError


@dataclass(frozen=True)
class SeparabilityConfig:
    """neighbors: k of the k-NN classifier (fewer when a training side is smaller);
    folds, seed: for stratified / group folds when the dataset has no folds of its own."""

    neighbors: int = 5
    folds: int = 5
    seed: int = 0

    def __post_init__(self):
        if self.neighbors < 1:
            raise VizError(f"k-NN needs k >= 1, got {self.neighbors}")
        if self.folds < 2:
            raise VizError(f"cross-validation needs at least 2 folds, got {self.folds}")


@dataclass(frozen=True)
class SpaceScores:
    """silhouette: None when undefined; knn_accuracy / knn_std: mean and standard deviation
    over the splits (None when cross-validation was impossible)."""

    silhouette: float | None
    knn_accuracy: float | None
    knn_std: float | None


@dataclass(frozen=True)
class Separability:
    """Scores in the original space and in 2-D, how they were measured, and why a figure is
    missing when one is (in notes)."""

    original: SpaceScores
    projected: SpaceScores
    neighbors: int
    splits: str
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict:
        def space(s: SpaceScores) -> dict:
            return {"silhouette": s.silhouette, "knn_accuracy": s.knn_accuracy, "knn_std": s.knn_std}

        return {"original": space(self.original), "2d": space(self.projected), "neighbors": self.neighbors,
                "splits": self.splits, "notes": list(self.notes)}


def _silhouette(features: np.ndarray, labels: np.ndarray, metric: str) -> float | None:
    from sklearn.metrics import silhouette_score

    if not 2 <= len(np.unique(labels)) <= len(labels) - 1:
        return None
    return float(silhouette_score(features, labels, metric=metric))


def _knn_scores(features: np.ndarray, labels: np.ndarray, splits, k: int, metric: str, scaling: str) -> tuple[float, float]:
    from sklearn.neighbors import KNeighborsClassifier

    from tfaudio.viz.projection import scale

    scores = []
    for split in splits:
        train, test = features[split.train], features[split.test]
        if scaling == "standard":  # statistics of the training side only: nothing leaks from the test side
            mean, std = train.mean(axis=0), train.std(axis=0)
            std = np.where(std > 0, std, 1.0)
            train, test = (train - mean) / std, (test - mean) / std
        else:
            train, test = scale(train, "none"), scale(test, "none")
        model = KNeighborsClassifier(n_neighbors=min(k, len(train)), metric=metric)
        model.fit(train, labels[split.train])
        scores.append(float(np.mean(model.predict(test) == labels[split.test])))
    return float(np.mean(scores)), float(np.std(scores))


def measure(
    vectors: np.ndarray,
    coords: np.ndarray,
    dataset: Dataset,
    config: SeparabilityConfig = SeparabilityConfig(),
    scaling: str = "standard",
) -> Separability:
    """vectors float [clips, dim] and coords float [clips, 2] of `dataset`'s clips (same order)."""
    from tfaudio.data.splits import SplitError, make_splits, resolve_strategy
    from tfaudio.viz.projection import scale

    labels = dataset.labels
    notes: list[str] = []
    original = scale(vectors, scaling)
    sil_original = _silhouette(original, labels, "cosine") if np.linalg.norm(original, axis=1).min() > 0 else None
    sil_projected = _silhouette(np.asarray(coords, np.float64), labels, "euclidean")
    if sil_original is None or sil_projected is None:
        notes.append("silhouette is undefined here (it needs 2 to clips - 1 classes and no all-zero vector)")
    strategy = resolve_strategy(dataset, "auto")
    try:
        splits = make_splits(dataset, strategy, k=config.folds, seed=config.seed)
    except SplitError as err:
        notes.append(f"no k-NN accuracy: {err}")
        empty = (None, None)
        return Separability(
            SpaceScores(sil_original, *empty), SpaceScores(sil_projected, *empty), config.neighbors, "none", tuple(notes)
        )
    described = {
        "predefined": f"{len(splits)} manifest folds",
        "group": f"{len(splits)} group-aware folds",
        "stratified": f"stratified {len(splits)}-fold",
    }[strategy]
    smallest = min(len(s.train) for s in splits)
    k = min(config.neighbors, smallest)
    if k < config.neighbors:
        notes.append(f"k-NN uses k={k}: the smallest training side has only {smallest} clips")
    acc_original = _knn_scores(np.asarray(vectors, np.float64), labels, splits, k, "cosine", scaling)
    acc_projected = _knn_scores(np.asarray(coords, np.float64), labels, splits, k, "euclidean", "none")
    return Separability(
        SpaceScores(sil_original, *acc_original), SpaceScores(sil_projected, *acc_projected), k, described, tuple(notes)
    )
