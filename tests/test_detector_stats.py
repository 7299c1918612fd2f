"""The detector's statistics against known answers: Platt scaling recovers a known logistic
model, AP and the precision-recall curve match scikit-learn, the threshold for a target precision
is the lowest that reaches it, and the bootstrap intervals cover the truth and widen when the
windows of a recording move together."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from tfaudio.comparison.calibration import calibrate_confidence
from tfaudio.detector.stats import (
    OperatingPoint,
    average_precision,
    binary_calibration,
    fit_platt,
    operating_point,
    platt,
    pr_curve,
    threshold_at_precision,
)


def logistic_sample(n: int, a: float, b: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(scores [n], y [n]) with P(y = 1 | score) = 1 / (1 + exp(-(a * score + b)))."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(0.0, 2.0, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(a * scores + b)))).astype(np.int8)
    return scores, y


def test_platt_recovers_a_known_logistic_model_and_stays_finite_on_separable_scores():
    scores, y = logistic_sample(50_000, 1.7, -0.8)
    a, b = fit_platt(scores, y)
    assert a == pytest.approx(1.7, abs=0.06) and b == pytest.approx(-0.8, abs=0.06)
    # The same on scores a thousand times larger: the fit does not depend on their scale.
    a_big, b_big = fit_platt(scores * 1000, y)
    assert a_big * 1000 == pytest.approx(a, rel=1e-5) and b_big == pytest.approx(b, rel=1e-5)
    # Scores that rank the labels backwards: no reversal, the plain logistic of the score.
    assert fit_platt(-scores, y) == (1.0, 0.0)
    # Separable: plain logistic regression would diverge; Platt's smoothed targets keep the
    # extreme probabilities near (N+ + 1) / (N+ + 2) and 1 / (N- + 2), never exactly 0 or 1.
    separable = np.r_[np.linspace(-3, -1, 20), np.linspace(1, 3, 20)]
    labels = np.r_[np.zeros(20), np.ones(20)]
    a, b = fit_platt(separable, labels)
    assert np.isfinite(a) and 0 < a < 20
    p = platt(separable, a, b)
    assert 0.9 < p[-1] < 1 and 0 < p[0] < 0.1
    # Weights count like repeated windows.
    scores, y = logistic_sample(400, 1.0, 0.3, seed=1)
    weights = np.where(np.arange(400) % 2 == 0, 2.0, 1.0)
    repeated = np.r_[scores, scores[::2]], np.r_[y, y[::2]]
    np.testing.assert_allclose(fit_platt(scores, y, weights), fit_platt(*repeated), rtol=1e-6)


def test_platt_of_one_class_is_the_identity_logistic_and_platt_broadcasts_stably():
    assert fit_platt([0.1, 2.0, -1.0], [1, 1, 1]) == (1.0, 0.0)
    assert fit_platt([], []) == (1.0, 0.0)
    assert fit_platt([0.1, 2.0], [1, 0], weights=[1.0, 0.0]) == (1.0, 0.0)
    scores = np.array([[-1000.0, 0.0, 3.0], [1000.0, 1.0, -3.0]])
    with np.errstate(all="raise"):
        p = platt(scores, np.array([1.0, 2.0, -1.0]), np.array([0.0, -2.0, 0.5]))
    assert p.dtype == np.float32 and p.shape == (2, 3)
    expected = 1 / (1 + np.exp(-(np.array([[0.0, -2.0, -2.5], [1.0, 0.0, 3.5]]))))
    np.testing.assert_allclose(p[:, 1:], expected[:, 1:], rtol=1e-6)
    assert p[0, 0] == 0.0 and p[1, 0] == 1.0


def test_calibrated_probabilities_have_an_ece_near_zero_and_a_known_gap_is_measured():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 20_000)
    y = (rng.random(20_000) < p).astype(int)
    groups = np.repeat(np.arange(400), 50)
    result = binary_calibration(p, y, groups, resamples=500)
    assert result.kind == "binary" and result.to_dict()["kind"] == "binary"
    assert result.ece < 0.02
    low, high = result.ece_ci
    assert low <= result.ece <= high < 0.03
    assert result.accuracy == pytest.approx(y.mean())  # the positive rate
    # Windows at 0.9 of which 60 % are positive, and at 0.2 of which 20 %: ECE = 0.5 * 0.3.
    p = np.repeat([0.9, 0.2], 100)
    y = np.r_[np.arange(100) < 60, np.arange(100) < 20].astype(int)
    result = binary_calibration(p, y, np.arange(200) // 10, resamples=500)
    assert result.ece == pytest.approx(0.15)
    assert result.ece_ci[0] < 0.15 < result.ece_ci[1]
    assert binary_calibration(p, y, np.arange(200) // 10, resamples=500).ece_ci == result.ece_ci
    with pytest.raises(ValueError, match="probabilities"):
        binary_calibration(p * 2, y)


def test_average_precision_is_one_for_perfect_scores_and_matches_scikit_learn():
    from sklearn.metrics import average_precision_score, precision_recall_curve

    y = np.array([0, 1, 0, 1, 1, 0, 0, 0])
    value, (low, high) = average_precision(y, y.astype(float), np.arange(8) // 2, resamples=200)
    assert value == 1.0 and low == high == 1.0
    rng = np.random.default_rng(3)
    y = (rng.random(500) < 0.3).astype(int)
    p = np.round(rng.random(500) * 0.5 + 0.4 * y, 2)  # rounded: many ties
    value, (low, high) = average_precision(y, p, rng.integers(0, 50, 500).astype(str), resamples=300)
    assert value == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert low < value < high
    precision, recall, thresholds = pr_curve(y, p)
    reference = precision_recall_curve(y, p)
    # scikit-learn returns the curve with rising thresholds plus the end point (1, 0).
    np.testing.assert_allclose(precision, reference[0][:-1][::-1])
    np.testing.assert_allclose(recall, reference[1][:-1][::-1])
    np.testing.assert_allclose(thresholds, reference[2][::-1])
    value, interval = average_precision(np.zeros(5), np.linspace(0, 1, 5))
    assert np.isnan(value) and all(np.isnan(interval))


def test_threshold_at_precision_picks_the_lowest_threshold_that_reaches_the_target():
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    y = np.array([1, 1, 0, 1, 1, 0, 0, 1])
    # Precision of p >= t: 1, 1, 2/3, 3/4, 4/5, 4/6, 4/7, 5/8 down the thresholds.
    point = threshold_at_precision(y, p, 0.75, resamples=200)
    assert point.threshold == 0.5 and point.reached
    assert point.precision == pytest.approx(0.8) and point.recall == pytest.approx(0.8)
    assert point.positives == 5 and point.predicted == 5
    assert threshold_at_precision(y, p, 0.85, resamples=200).threshold == 0.8
    # Out of reach: the best precision (1.0 at 0.9 and 0.8), the one with more recall, flagged.
    point = threshold_at_precision(y, p, 1.01, resamples=200)
    assert point.threshold == 0.8 and not point.reached and point.precision == 1.0
    assert json.loads(json.dumps(point.to_dict()))["reached"] is False


def test_operating_point_counts_and_undefined_values():
    y = np.array([1, 0, 1, 1, 0, 0])
    p = np.array([0.9, 0.8, 0.3, 0.7, 0.1, 0.6])
    point = operating_point(y, p, 0.65, resamples=100)
    assert (point.precision, point.recall, point.predicted, point.positives) == (2 / 3, 2 / 3, 3, 3)
    assert point.reached and isinstance(point, OperatingPoint)
    point = operating_point(y, p, 0.95, resamples=100)
    assert np.isnan(point.precision) and point.recall == 0 and point.predicted == 0
    assert point.to_dict()["precision"] is None  # JSON has no NaN
    point = operating_point(np.zeros(4), np.linspace(0, 1, 4), 0.5, resamples=100)
    assert np.isnan(point.recall) and all(np.isnan(point.recall_ci)) and point.precision == 0
    # No resamples (DetectorConfig allows 0): the values without intervals.
    point = operating_point(y, p, 0.65, y, resamples=0)
    assert point.precision == 2 / 3 and all(np.isnan(point.precision_ci))
    assert all(np.isnan(average_precision(y, p, resamples=0)[1]))
    assert all(np.isnan(binary_calibration(p, y, y, resamples=0).ece_ci))


def _recordings(rng: np.random.Generator, groups: int, per_group: int) -> tuple[np.ndarray, ...]:
    """A known model with recordings that differ: y ~ Bernoulli(sigmoid(u - 1)), score = 1.5 y
    + 0.5 u + noise, u ~ N(0, 1) per recording. Returns (y, score, group)."""
    u = np.repeat(rng.normal(size=groups), per_group)
    y = (rng.random(len(u)) < 1 / (1 + np.exp(1 - u))).astype(int)
    return y, 1.5 * y + 0.5 * u + rng.normal(size=len(u)), np.repeat(np.arange(groups), per_group)


def test_precision_and_recall_intervals_cover_the_truth():
    rng = np.random.default_rng(11)
    threshold = 1.0
    # The truth: precision and recall of the population, from a large sample of recordings.
    y, score, _ = _recordings(rng, 200_000, 5)
    truth_precision = (y * (score >= threshold)).sum() / (score >= threshold).sum()
    truth_recall = (y * (score >= threshold)).sum() / y.sum()
    covered = np.zeros(2)
    for repeat in range(100):
        y, score, group = _recordings(rng, 40, 10)
        point = operating_point(y, score, threshold, group, resamples=500, seed=repeat)
        covered += [point.precision_ci[0] <= truth_precision <= point.precision_ci[1],
                    point.recall_ci[0] <= truth_recall <= point.recall_ci[1]]
    assert (covered >= 85).all(), covered


def test_recording_intervals_are_wider_when_windows_of_a_recording_move_together():
    rng = np.random.default_rng(5)
    # 30 recordings of 20 identical windows: 30 observations, not 600.
    y = np.repeat(rng.random(30) < 0.5, 20).astype(int)
    p = np.repeat(rng.random(30), 20) * 0.6 + 0.4 * y
    group = np.repeat(np.arange(30), 20)

    def width(interval):
        return interval[1] - interval[0]

    by_recording = operating_point(y, p, 0.5, group, resamples=1000)
    by_window = operating_point(y, p, 0.5, resamples=1000)
    assert width(by_recording.precision_ci) > 2.5 * width(by_window.precision_ci)
    assert width(by_recording.recall_ci) > 2.5 * width(by_window.recall_ci)
    assert width(average_precision(y, p, group, resamples=500)[1]) > 2.5 * width(average_precision(
        y, p, resamples=500)[1])
    assert width(binary_calibration(p, y, group, resamples=500).ece_ci) > 2 * width(
        binary_calibration(p, y, resamples=500).ece_ci)
    # The shared helper gives the same interval whatever the group labels are called.
    names = np.array([f"rec-{g}.wav" for g in group], dtype=object)
    assert calibrate_confidence(p, y, names, resamples=300).ece_ci == calibrate_confidence(
        p, y, group, resamples=300).ece_ci


def test_bootstrap_over_many_windows_is_fast_and_seeded():
    rng = np.random.default_rng(0)
    y = (rng.random(10_000) < 0.2).astype(int)
    p = 1 / (1 + np.exp(-(2 * y - 1 + rng.normal(size=10_000))))
    group = rng.integers(0, 500, 10_000)
    started = time.perf_counter()
    point = operating_point(y, p, 0.6, group, resamples=2000, seed=1)
    calibration = binary_calibration(p, y, group, resamples=2000, seed=1)
    assert time.perf_counter() - started < 1.0
    assert operating_point(y, p, 0.6, group, resamples=2000, seed=1) == point
    assert binary_calibration(p, y, group, resamples=2000, seed=1).ece_ci == calibration.ece_ci
    assert operating_point(y, p, 0.6, group, resamples=2000, seed=2).precision_ci != point.precision_ci
