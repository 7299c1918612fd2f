"""How a detector is trained: one frozen setting for heads, weak negatives, cross-validation and
thresholds (no TensorFlow, no scikit-learn: the CLI reads it before anything heavy loads)."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

#: The heads a detector can put on the embeddings.
CLASSIFIERS = ("linear", "mlp")


@dataclass(frozen=True)
class DetectorConfig:
    """Settings of `train_detector`.

    classifier: "linear" (one-vs-rest logistic regression) or "mlp" (one hidden layer of
    `hidden` ReLU units per label). weak_negative_weight: the weight of one unlabelled window
    used as a negative, relative to a labelled one (0: weak negatives ignored); weak_negatives:
    at most this many per label (a seeded sample). target_precision: the threshold per label is
    the lowest calibrated probability whose held-out precision reaches it. folds: cross-validation
    folds, grouped by recording (fewer when fewer recordings hold positives or negatives).
    regularization: inverse L2 strength (scikit-learn's C) of either head. min_overlap: how much
    of the shorter of a label and a window must overlap for the window to take the label.
    resamples: bootstrap resamples of every interval. seed: every random choice.
    standardize: fit the heads on embeddings standardised per dimension (off by default: with the
    tens of labels of an agile round, scales measured on them amplify dimensions that carry
    nothing; benchmarks/agile.py measured ESC-10 mean AP 0.89 with it, 0.98 without, margin
    strategy, 41 labels a class).
    """

    classifier: str = "linear"
    weak_negative_weight: float = 0.1
    weak_negatives: int = 2000
    target_precision: float = 0.9
    folds: int = 5
    hidden: int = 64
    regularization: float = 1.0
    min_overlap: float = 0.5
    resamples: int = 2000
    seed: int = 0
    standardize: bool = False

    def __post_init__(self):
        if self.classifier not in CLASSIFIERS:
            raise ValueError(f"classifier must be one of {', '.join(CLASSIFIERS)}, got {self.classifier!r}")
        _number("weak_negative_weight", self.weak_negative_weight, low=0.0)
        _whole("weak_negatives", self.weak_negatives, low=0)
        _number("target_precision", self.target_precision, low=0.0, high=1.0, open_low=True)
        _whole("folds", self.folds, low=2)
        _whole("hidden", self.hidden, low=1)
        _number("regularization", self.regularization, low=0.0, open_low=True)
        _number("min_overlap", self.min_overlap, low=0.0, high=1.0, open_low=True)
        _whole("resamples", self.resamples, low=0)
        _whole("seed", self.seed, low=0)
        if not isinstance(self.standardize, bool):
            raise ValueError(f"standardize must be True or False, got {self.standardize!r}")


def _whole(name: str, value, *, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be a whole number >= {low}, got {value!r}")


def _number(name: str, value, *, low: float, high: float | None = None, open_low: bool = False) -> None:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if open_low else value >= low) and (high is None or value <= high)
    if not ok:
        bounds = f"{'>' if open_low else '>='} {low:g}" + (f" and <= {high:g}" if high is not None else "")
        raise ValueError(f"{name} must be a number {bounds}, got {value!r}")
