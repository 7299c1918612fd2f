"""Statistics of a binary detector: Platt scaling, average precision, calibration, and the
precision / recall of a threshold, each with a 95 % interval.

Every interval is a percentile bootstrap that resamples **groups** (recordings), not windows:
neighbouring windows of one recording share the animal, the microphone and the weather, so they
are not independent, and resampling windows would give intervals that are too narrow. Without
groups each window is its own group. Statistics that are ratios of sums (precision, recall, the
ECE's bins) are computed from per-group sums, one matrix product per block of resamples
(`tfaudio.comparison.calibration.group_multiplicities`); average precision needs the ranking, so
it is recomputed per resample with the windows' weights set to their recording's multiplicity.

The threshold chosen for a target precision is chosen on the same held-out windows whose
precision the interval then describes, so that precision is slightly optimistic; the interval
does not include the choice. numpy and scipy only: no TensorFlow, no scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tfaudio.comparison.calibration import (
    BINS,
    Calibration,
    calibrate_confidence,
    group_codes,
    group_multiplicities,
    joined,
    percentile_interval,
)

#: At most this many window weights are held at once by the average-precision bootstrap.
_AP_CHUNK_VALUES = 2_000_000
#: Newton's method for Platt scaling stops when a step changes the parameters less than this.
_PLATT_TOLERANCE = 1e-10


@dataclass(frozen=True)
class OperatingPoint:
    """Precision and recall of the decision `probability >= threshold` on held-out windows.

    precision_ci / recall_ci: 95 % bootstrap intervals over recordings. positives: labelled
    positive windows; predicted: windows at or above the threshold. reached: whether precision
    reached the target when the threshold was chosen by target (True for a given threshold).
    precision is NaN when nothing is predicted, recall NaN when there are no positives.
    """

    threshold: float
    precision: float
    precision_ci: tuple[float, float]
    recall: float
    recall_ci: tuple[float, float]
    positives: int
    predicted: int
    reached: bool = True

    def to_dict(self) -> dict:
        """JSON-ready (NaN becomes None)."""
        return {
            "threshold": _json(self.threshold), "precision": _json(self.precision),
            "precision_ci95": [_json(v) for v in self.precision_ci], "recall": _json(self.recall),
            "recall_ci95": [_json(v) for v in self.recall_ci], "positives": int(self.positives),
            "predicted": int(self.predicted), "reached": bool(self.reached),
        }


def _json(value: float) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def _binary(y, p) -> tuple[np.ndarray, np.ndarray]:
    """(y float64 [n] in {0, 1}, p float64 [n]) checked alike."""
    y = np.asarray(y).astype(np.float64).ravel()
    p = np.asarray(p, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"y and p must have one value per window alike, got {y.shape} and {p.shape}")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("y must hold only 0 and 1")
    if np.isnan(p).any():
        raise ValueError("p holds NaN")
    return y, p


def fit_platt(scores, y, weights=None) -> tuple[float, float]:
    """(a, b) of p = 1 / (1 + exp(-(a * score + b))) for raw scores float [n] and y {0,1} [n].

    Weighted logistic regression on the one score, fitted by Newton's method with backtracking
    (Platt 1999; Lin, Lin & Weng 2007). The targets are Platt's smoothed ones, y+ = (N+ + 1) /
    (N+ + 2) and y- = 1 / (N- + 2), with N+ / N- the weighted counts of each class: on separable
    scores plain logistic regression drives the slope to infinity, the smoothed targets keep it
    finite and the probabilities short of 0 and 1. weights: float [n] (None: all 1). One class
    only (or no windows) gives (1.0, 0.0): the plain logistic of the score. So does a fit whose
    slope comes out negative or zero (held-out scores that rank the labels backwards, which few
    labels can give by chance): calibration must never reverse the heads' ranking, and did in the
    agile benchmark (one ESC-10 class fell from AP 0.98 to 0.06) before this rule.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(y).astype(np.float64).ravel()
    w = np.ones_like(scores) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if not scores.shape == y.shape == w.shape:
        raise ValueError(f"scores, y and weights must be [n] alike, got {scores.shape}, {y.shape}, {w.shape}")
    positives, negatives = float(w[y == 1].sum()), float(w[y == 0].sum())
    if positives <= 0 or negatives <= 0:
        return 1.0, 0.0
    target = np.where(y == 1, (positives + 1) / (positives + 2), 1 / (negatives + 2))
    # The score is centred and scaled for the fit so the Hessian is well conditioned whatever
    # the scale of the raw scores; (a, b) are mapped back at the end.
    centre, scale = float(np.average(scores, weights=w)), float(scores.std()) or 1.0
    x = (scores - centre) / scale
    params = np.array([0.0, np.log((positives + 1) / (negatives + 1))])

    def loss(theta):
        z = theta[0] * x + theta[1]
        return float(np.sum(w * (target * np.logaddexp(0, -z) + (1 - target) * np.logaddexp(0, z))))

    current = loss(params)
    for _ in range(100):
        z = params[0] * x + params[1]
        p = _sigmoid(z)
        gradient = np.array([np.sum(w * (p - target) * x), np.sum(w * (p - target))])
        curvature = w * p * (1 - p)
        hessian = np.array([[np.sum(curvature * x * x), np.sum(curvature * x)],
                            [np.sum(curvature * x), np.sum(curvature)]]) + 1e-12 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        size = 1.0
        while size > 1e-10:
            candidate = params - size * step
            value = loss(candidate)
            if value <= current + 1e-4 * size * float(gradient @ -step):
                break
            size /= 2
        else:
            break  # no descent along Newton's direction: at the optimum within rounding
        moved = float(np.abs(candidate - params).max())
        params, current = candidate, value
        if moved < _PLATT_TOLERANCE:
            break
    a = params[0] / scale
    if not a > 0:
        return 1.0, 0.0
    return float(a), float(params[1] - a * centre)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)) without overflow for large |z|."""
    from scipy.special import expit

    return expit(z)


def platt(scores, a, b) -> np.ndarray:
    """float32 probabilities 1 / (1 + exp(-(a * scores + b))), broadcasting: scores [n, C] with
    a, b [C] (one pair per label), or scores [n] with scalars. Stable for any score."""
    z = np.asarray(a, dtype=np.float64) * np.asarray(scores, dtype=np.float64) + np.asarray(b, dtype=np.float64)
    return _sigmoid(z).astype(np.float32)


def binary_calibration(p, y, groups=None, *, bins: int = BINS, resamples: int = 2000, seed: int = 0,
                       level: float = 0.95) -> Calibration:
    """Reliability of the probability of the positive class p float [n] against y {0,1} [n].

    ECE = sum over equal-width bins b of n_b / n * |mean y_b - mean p_b|; the result's
    `accuracy` / `bin_accuracy` are positive rates and its kind is "binary". groups: recording
    per window [n] (the interval resamples recordings) or None (windows)."""
    y, p = _binary(y, p)
    if ((p < 0) | (p > 1)).any():
        raise ValueError("p must be probabilities in [0, 1]")
    return calibrate_confidence(p, y, groups, bins, resamples=resamples, seed=seed, level=level, kind="binary")


def _ranked(y: np.ndarray, p: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows by decreasing p: (y [n], codes [n], ends [k]) with ends the last position of each
    run of equal p (a tie is one threshold, as in scikit-learn)."""
    order = np.argsort(-p, kind="stable")
    ranked = p[order]
    ends = np.flatnonzero(np.r_[ranked[1:] != ranked[:-1], True])
    return y[order], codes[order], ends


def _average_precision(y: np.ndarray, weights: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """AP of ranked windows for weights float [r, n] (one row a resample): the sum over
    thresholds of the recall gained times the precision there; NaN for a row without positives."""
    hits = np.cumsum(weights * y, axis=1)[:, ends]
    taken = np.cumsum(weights, axis=1)[:, ends]
    gained = np.diff(hits, axis=1, prepend=0.0)
    precision = np.divide(hits, taken, out=np.zeros_like(hits), where=taken > 0)
    total = hits[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (gained * precision).sum(axis=1) / total, np.nan)


def average_precision(y, p, groups=None, *, resamples: int = 2000, seed: int = 0,
                      level: float = 0.95) -> tuple[float, tuple[float, float]]:
    """(AP, 95 % interval) of scores p float [n] against y {0,1} [n]; equal to scikit-learn's
    `average_precision_score`. The interval resamples groups [n] (None: windows). NaN and
    (nan, nan) when there is no positive."""
    y, p = _binary(y, p)
    if not (y == 1).any():
        return float("nan"), (float("nan"), float("nan"))
    codes, count = group_codes(groups, len(y))
    y, codes, ends = _ranked(y, p, codes)
    value = float(_average_precision(y, np.ones((1, len(y))), ends)[0])
    # The weights of a block of resamples are [rows, windows]: float32 holds the integer counts
    # exactly and halves the memory.
    y32 = y.astype(np.float32)
    values = []
    rows = max(1, _AP_CHUNK_VALUES // len(y))
    for m in group_multiplicities(count, resamples, seed):
        for start in range(0, len(m), rows):
            block = m[start:start + rows].astype(np.float32)
            values.append(_average_precision(y32, block[:, codes], ends))
    return value, percentile_interval(joined(values), level)


def operating_point(y, p, threshold: float, groups=None, *, resamples: int = 2000, seed: int = 0,
                    level: float = 0.95, reached: bool = True) -> OperatingPoint:
    """Precision and recall of `p >= threshold` for p float [n] against y {0,1} [n], with
    intervals resampling groups [n] (None: windows): per group the true positives, the
    predicted and the positives, summed per resample."""
    y, p = _binary(y, p)
    codes, count = group_codes(groups, len(y))
    predicted = p >= threshold
    sums = np.zeros((count, 3))
    np.add.at(sums, codes, np.stack([predicted * y, predicted, y], axis=1))
    precisions, recalls = [], []
    with np.errstate(invalid="ignore", divide="ignore"):
        for m in group_multiplicities(count, resamples, seed):
            totals = m @ sums
            precisions.append(totals[:, 0] / totals[:, 1])
            recalls.append(totals[:, 0] / totals[:, 2])
        hit, taken, positives = sums.sum(axis=0)
        return OperatingPoint(
            threshold=float(threshold),
            precision=float(hit / taken) if taken else float("nan"),
            precision_ci=percentile_interval(joined(precisions), level),
            recall=float(hit / positives) if positives else float("nan"),
            recall_ci=percentile_interval(joined(recalls), level),
            positives=int(positives), predicted=int(taken), reached=bool(reached),
        )


def pr_curve(y, p) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, thresholds), float64 [k] each over the k distinct values of p in
    decreasing order (recall rising): the decision `p >= thresholds[i]` has precision[i] and
    recall[i]. Recall is NaN without positives. (scikit-learn's curve also appends the point
    (precision 1, recall 0); plots add it themselves.)"""
    y, p = _binary(y, p)
    if len(y) == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    order = np.argsort(-p, kind="stable")
    ranked = p[order]
    ends = np.flatnonzero(np.r_[ranked[1:] != ranked[:-1], True])
    hits = np.cumsum(y[order])[ends]
    taken = (ends + 1).astype(np.float64)
    positives = hits[-1]
    recall = hits / positives if positives else np.full(len(ends), np.nan)
    return hits / taken, recall, ranked[ends]


def threshold_at_precision(y, p, target: float, groups=None, *, resamples: int = 2000, seed: int = 0,
                           level: float = 0.95) -> OperatingPoint:
    """The operating point at the LOWEST threshold (among the values of p) whose precision is at
    least `target`: of the thresholds that reach the target, the one with the most recall. When
    none does, the threshold with the highest precision (ties: the most recall, i.e. the lowest)
    with reached=False. Intervals as in `operating_point`; see the module docstring on choosing
    and measuring on the same windows."""
    y, p = _binary(y, p)
    if len(y) == 0:
        raise ValueError("no windows to choose a threshold on")
    precision, _, thresholds = pr_curve(y, p)
    reaching = np.flatnonzero(precision >= target)
    if len(reaching):
        index, reached = reaching[-1], True
    else:
        # Thresholds run from high to low, so the last of the best is the lowest (most recall).
        index, reached = np.flatnonzero(precision == precision.max())[-1], False
    return operating_point(y, p, float(thresholds[index]), groups, resamples=resamples, seed=seed, level=level,
                           reached=reached)
