"""Calibration of predicted probabilities: expected calibration error and the reliability curve.

A classifier is calibrated when, of the clips it gives probability 0.8, 80 % are right. With
several classes this module measures **top-label** (confidence) calibration: each clip's
confidence is its highest predicted probability, and it counts as right when that class is the
true one. (Per-class calibration, each class's probability against one-vs-rest truth, is a
different and stricter question, not asked here.)

Binning: **equal-width** bins of confidence, [0, 0.1), [0.1, 0.2), ..., [0.9, 1.0] by default
(the last bin closed), as in Guo et al. (2017, "On calibration of modern neural networks").
Equal-width rather than equal-mass because the edges do not depend on the data: every run of a
comparison is drawn on the same bins, so reliability diagrams sit side by side, and a bootstrap
resample keeps each clip in its bin, which makes the interval cheap and exact. The price is that
some bins hold few clips; the ECE weighs each bin by its clips, and the diagram shows the counts.

    ECE = sum over bins b of (n_b / n) * |accuracy_b - mean confidence_b|

The same measure serves a binary detector (`calibrate_confidence` with each window's probability
of the positive class as the confidence and its label as "correct"): the reliability of p
against the positive rate, kind "binary". When clips come in groups that are not independent
(windows of one recording), the interval resamples whole groups.

With few clips the ECE is biased upward (a bin's accuracy is noisy, and its absolute gap never
averages out to zero), by up to about sqrt(bins / (2 pi n)) for n clips: 0.06 for 400 clips in 10
bins, less when most clips sit in a few confident bins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Bins of the ECE and of the reliability curve (equal-width over [0, 1]).
BINS = 10
#: At most this many resampled clip indices are held at once by the bootstrap (16 MB of int64).
_CHUNK_VALUES = 2_000_000


@dataclass(frozen=True)
class Calibration:
    """Top-label calibration of out-of-fold probabilities.

    ece: expected calibration error; ece_ci: its 95 % percentile bootstrap interval over clip
    resamples; mean_confidence / accuracy: over all clips (mean_confidence > accuracy:
    overconfident). Per bin, float [bins + 1] `edges` and [bins] each: `counts` (int64, clips in
    the bin), `confidence` (mean top-label probability) and `bin_accuracy` (share right), both
    NaN for an empty bin: the reliability curve is (confidence, bin_accuracy) over the bins
    that hold clips.
    """

    ece: float
    ece_ci: tuple[float, float]
    mean_confidence: float
    accuracy: float
    edges: np.ndarray
    counts: np.ndarray
    confidence: np.ndarray
    bin_accuracy: np.ndarray
    #: "top-label" (multi-class confidence against right/wrong) or "binary" (probability of the
    #: positive class against the label: `accuracy` and `bin_accuracy` are then positive rates).
    kind: str = "top-label"

    @property
    def overconfidence(self) -> float:
        """Mean confidence minus accuracy: > 0 overconfident, < 0 underconfident."""
        return self.mean_confidence - self.accuracy

    def to_dict(self) -> dict:
        """JSON-ready: the ECE, how it was measured, and the reliability curve's non-empty bins."""
        filled = np.flatnonzero(self.counts)
        return {
            "ece": self.ece, "ece_ci95": list(self.ece_ci), "mean_confidence": self.mean_confidence,
            "accuracy": self.accuracy, "kind": self.kind, "binning": f"{len(self.counts)} equal-width bins",
            "reliability": [{"bin": [float(self.edges[b]), float(self.edges[b + 1])], "clips": int(self.counts[b]),
                             "confidence": float(self.confidence[b]), "accuracy": float(self.bin_accuracy[b])}
                            for b in filled],
        }


def top_label(probabilities: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(confidence float64 [clips], correct bool [clips]) from probabilities float [clips,
    classes] (columns in label order) and true labels int [clips]. On a tie the first class
    wins, as numpy's argmax and scikit-learn's predict choose."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or len(probabilities) != len(y):
        raise ValueError(f"probabilities must be [clips, classes] for {len(y)} clips, got {probabilities.shape}")
    return probabilities.max(axis=1), probabilities.argmax(axis=1) == np.asarray(y)


def bin_index(confidence: np.ndarray, bins: int = BINS) -> np.ndarray:
    """int64 [clips]: the equal-width bin of each confidence, [k/bins, (k+1)/bins), 1.0 in the last."""
    return np.clip(np.floor(np.asarray(confidence) * bins).astype(np.int64), 0, bins - 1)


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS) -> float:
    """The ECE of confidences float [clips] against correct bool [clips] (see the module docstring)."""
    gap = np.bincount(bin_index(confidence, bins), weights=np.asarray(correct, np.float64) - confidence, minlength=bins)
    return float(np.abs(gap).sum() / len(confidence))


def _bootstrap(which: np.ndarray, gap: np.ndarray, bins: int, resamples: int, seed: int,
               level: float) -> tuple[float, float]:
    """Percentile interval of the ECE over resamples of the clips. A clip keeps its bin in every
    resample (the edges are fixed), so each resample is one weighted bincount; the resamples are
    drawn a chunk at a time to bound memory on large datasets."""
    rng = np.random.default_rng(seed)
    n = len(gap)
    rows = max(1, min(resamples, _CHUNK_VALUES // n))
    values = []
    for start in range(0, resamples, rows):
        count = min(rows, resamples - start)
        drawn = rng.integers(0, n, size=(count, n))
        keys = which[drawn] + bins * np.arange(count)[:, None]
        sums = np.bincount(keys.ravel(), weights=gap[drawn].ravel(), minlength=count * bins).reshape(count, bins)
        values.append(np.abs(sums).sum(axis=1) / n)
    return percentile_interval(joined(values), level)


def group_codes(groups, n: int) -> tuple[np.ndarray, int]:
    """(codes int64 [n] in 0..G-1, G) numbering the distinct groups (any hashable labels, e.g.
    recording keys) in order of first appearance; None: every item its own group."""
    if groups is None:
        return np.arange(n, dtype=np.int64), n
    import pandas as pd

    groups = np.asarray(groups, dtype=object)
    if groups.shape != (n,):
        raise ValueError(f"groups must be [{n}], one per item, got {groups.shape}")
    codes, uniques = pd.factorize(pd.Series(groups).astype(str))
    return codes.astype(np.int64), len(uniques)


def group_multiplicities(groups: int, resamples: int, seed: int, max_values: int = _CHUNK_VALUES):
    """Yield float64 [count, groups] blocks (counts summing to `resamples`): how often each group
    is drawn in each bootstrap resample of `groups` groups with replacement.

    A statistic that is a ratio of sums over items (ECE bins, precision, recall) is then
    `multiplicities @ per_group_sums`: one matrix product per block instead of a pass over items,
    which is what keeps 2000 resamples of 10k windows in 500 recordings well under a second.
    Blocks bound the memory to `max_values` draws at a time."""
    rng = np.random.default_rng(seed)
    rows = max(1, min(resamples, max_values // max(groups, 1)))
    for start in range(0, resamples, rows):
        count = min(rows, resamples - start)
        drawn = rng.integers(0, groups, size=(count, groups))
        keys = drawn + groups * np.arange(count)[:, None]
        yield np.bincount(keys.ravel(), minlength=count * groups).reshape(count, groups).astype(np.float64)


def joined(blocks: list[np.ndarray]) -> np.ndarray:
    """The bootstrap values of all blocks as one array (empty for 0 resamples)."""
    return np.concatenate(blocks) if blocks else np.zeros(0)


def percentile_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval of bootstrap values, ignoring NaN (resamples where the statistic is
    undefined, e.g. no positives drawn); (nan, nan) when every value is NaN or there are none."""
    values = np.asarray(values, dtype=np.float64)
    if not np.isfinite(values).any():
        return float("nan"), float("nan")
    tail = (1 - level) / 2
    return float(np.nanquantile(values, tail)), float(np.nanquantile(values, 1 - tail))


def _group_bootstrap(which: np.ndarray, gap: np.ndarray, codes: np.ndarray, groups: int, bins: int,
                     resamples: int, seed: int, level: float) -> tuple[float, float]:
    """Percentile interval of the ECE over resamples of whole groups: per group and bin the sum
    of gaps, per group its size; a resample's bin sums and size are multiplicities times those."""
    gaps = np.zeros((groups, bins))
    np.add.at(gaps, (codes, which), gap)
    sizes = np.bincount(codes, minlength=groups).astype(np.float64)
    values = [np.abs(m @ gaps).sum(axis=1) / (m @ sizes) for m in group_multiplicities(groups, resamples, seed)]
    return percentile_interval(joined(values), level)


def calibrate_confidence(confidence: np.ndarray, correct: np.ndarray, groups=None, bins: int = BINS, *,
                         resamples: int = 2000, seed: int = 0, level: float = 0.95,
                         kind: str = "top-label") -> Calibration:
    """Calibration of confidences float [n] in [0, 1] against outcomes bool/{0,1} [n].

    groups: None (the interval resamples items) or labels [n] (it resamples whole groups, for
    items that are not independent, such as the windows of one recording). kind names what was
    measured ("top-label" or "binary") in `Calibration.kind` and `to_dict`."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct).astype(np.float64)
    if confidence.ndim != 1 or confidence.shape != correct.shape:
        raise ValueError(f"confidence and correct must be [n] alike, got {confidence.shape} and {correct.shape}")
    if len(confidence) == 0:
        raise ValueError("no clips to measure calibration on")
    which = bin_index(confidence, bins)
    counts = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):  # empty bins become NaN, by design
        mean_confidence = np.bincount(which, weights=confidence, minlength=bins) / counts
        bin_accuracy = np.bincount(which, weights=correct, minlength=bins) / counts
    gap = correct - confidence
    if groups is None:
        interval = _bootstrap(which, gap, bins, resamples, seed, level)
    else:
        codes, count = group_codes(groups, len(confidence))
        interval = _group_bootstrap(which, gap, codes, count, bins, resamples, seed, level)
    return Calibration(
        ece=expected_calibration_error(confidence, correct, bins),
        ece_ci=interval,
        mean_confidence=float(confidence.mean()),
        accuracy=float(correct.mean()),
        edges=np.linspace(0.0, 1.0, bins + 1),
        counts=counts.astype(np.int64),
        confidence=mean_confidence,
        bin_accuracy=bin_accuracy,
        kind=kind,
    )


def calibrate(probabilities: np.ndarray, y: np.ndarray, bins: int = BINS, *, resamples: int = 2000, seed: int = 0,
              level: float = 0.95) -> Calibration:
    """Top-label calibration of probabilities float [clips, classes] against labels int [clips]."""
    confidence, correct = top_label(probabilities, y)
    return calibrate_confidence(confidence, correct, bins=bins, resamples=resamples, seed=seed, level=level)
