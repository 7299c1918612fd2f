"""Metrics of out-of-fold predictions: accuracy with a bootstrap CI, per-class P/R/F1, the
calibration of the predicted probabilities (ECE with a bootstrap CI), McNemar."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tfaudio.comparison.calibration import Calibration, calibrate
from tfaudio.comparison.classifiers import CVResult


@dataclass(frozen=True)
class Metrics:
    """Scores of pooled out-of-fold predictions.

    accuracy: of the pooled out-of-fold predictions (what the interval, the ranking and McNemar
    describe; with unequal folds it differs from the fold mean). fold_mean / fold_std: spread of
    the per-split accuracies. accuracy_ci: 95 % bootstrap interval of `accuracy`; per_class: precision, recall,
    f1, support per class (float [classes] each); confusion: int64 [classes, classes], rows are
    true classes, columns predicted. calibration: top-label calibration of the out-of-fold
    probabilities (`tfaudio.comparison.calibration`), None for a classifier without them.
    """

    accuracy: float
    fold_mean: float
    fold_std: float
    accuracy_ci: tuple[float, float]
    macro_precision: float
    macro_recall: float
    macro_f1: float
    per_class: dict[str, np.ndarray] = field(repr=False)
    confusion: np.ndarray = field(repr=False)
    calibration: Calibration | None = None

    @property
    def confusion_normalized(self) -> np.ndarray:
        """Rows divided by their totals (recall on the diagonal); empty rows stay zero."""
        totals = self.confusion.sum(axis=1, keepdims=True)
        return np.divide(self.confusion, totals, out=np.zeros(self.confusion.shape), where=totals > 0)


def bootstrap_ci(correct: np.ndarray, resamples: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the mean of `correct` (bool [clips]) over clip resamples.

    Resampling n clips with replacement and counting the correct ones is a Binomial(n, p̂) draw,
    so the resamples are drawn that way: the same distribution in O(resamples) memory (the
    explicit [resamples, n] index matrix would take gigabytes for 60,000 clips)."""
    rng = np.random.default_rng(seed)
    correct = np.asarray(correct, dtype=np.float64)
    n = len(correct)
    means = rng.binomial(n, correct.mean(), size=resamples) / n
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def score(y: np.ndarray, result: CVResult, num_classes: int, seed: int = 0) -> Metrics:
    """Metrics of the pooled out-of-fold predictions (fold spread from `fold_accuracy`)."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels = np.arange(num_classes)
    precision, recall, f1, support = precision_recall_fscore_support(
        y, result.predictions, labels=labels, zero_division=0
    )
    return Metrics(
        accuracy=float(np.mean(result.predictions == y)),
        fold_mean=float(np.mean(result.fold_accuracy)),
        fold_std=float(np.std(result.fold_accuracy)),
        accuracy_ci=bootstrap_ci(result.predictions == y, seed=seed),
        macro_precision=float(np.mean(precision)),
        macro_recall=float(np.mean(recall)),
        macro_f1=float(np.mean(f1)),
        per_class={"precision": precision, "recall": recall, "f1": f1, "support": support.astype(np.int64)},
        confusion=confusion_matrix(y, result.predictions, labels=labels),
        calibration=None if result.probabilities is None else calibrate(result.probabilities, y, seed=seed),
    )


@dataclass(frozen=True)
class McNemar:
    """Exact McNemar test of two classifiers' predictions on the same clips.

    only_a: clips A gets right and B wrong; only_b: the reverse; p_value: two-sided exact
    binomial p of that split under "equally accurate" (the discordant clips are coin flips).
    """

    only_a: int
    only_b: int
    p_value: float


def mcnemar(y: np.ndarray, predictions_a: np.ndarray, predictions_b: np.ndarray) -> McNemar:
    """The exact test (binomial on the discordant pairs): valid for small counts too, where
    the chi-squared approximation is not."""
    from scipy.stats import binomtest

    right_a, right_b = predictions_a == y, predictions_b == y
    only_a, only_b = int(np.sum(right_a & ~right_b)), int(np.sum(~right_a & right_b))
    discordant = only_a + only_b
    p_value = 1.0 if discordant == 0 else float(binomtest(only_a, discordant, 0.5).pvalue)
    return McNemar(only_a, only_b, p_value)


def difference_ci(test: McNemar, clips: int, resamples: int = 2000, seed: int = 0,
                  level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of accuracy(A) - accuracy(B) over paired clip resamples.

    Only the discordant clips move the difference (+1 where only A is right, -1 where only B
    is), so resampling `clips` clips with replacement draws the three kinds of clip
    multinomially from the counts in `test`: the same distribution as resampling the clips
    themselves, in O(resamples) memory. (0.0, 0.0) when A and B are right on the same clips.
    """
    if clips <= 0:
        raise ValueError(f"clips must be positive, got {clips}")
    rng = np.random.default_rng(seed)
    shares = np.array([test.only_a, test.only_b, clips - test.only_a - test.only_b], dtype=np.float64) / clips
    counts = rng.multinomial(clips, shares, size=resamples)
    differences = (counts[:, 0] - counts[:, 1]) / clips
    tail = (1 - level) / 2
    return float(np.quantile(differences, tail)), float(np.quantile(differences, 1 - tail))
