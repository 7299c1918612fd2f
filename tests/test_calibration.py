"""Calibration in `compare`: the ECE and reliability curve against hand-computed answers, the
out-of-fold probabilities they are computed on, and the discussion's reading of them. (The
report's calibration table, figure and metrics.json fields are checked in test_compare.py, on
the comparison it already runs.)"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from tfaudio.comparison.calibration import bin_index, calibrate, expected_calibration_error, top_label
from tfaudio.comparison.classifiers import ClassifierSpec, CVResult, cross_validate
from tfaudio.comparison.config import CompareConfig
from tfaudio.comparison.discussion import paragraphs
from tfaudio.comparison.metrics import mcnemar, score
from tfaudio.comparison.result import ComparisonResult, RepresentationInfo, Run
from tfaudio.data.splits import Split


def probabilities_for(confidence: np.ndarray, correct: np.ndarray, y: np.ndarray, classes: int = 3) -> np.ndarray:
    """float [clips, classes] whose top label has probability `confidence` and is the true class
    exactly where `correct` (else the next class); the rest is shared by the other classes."""
    predicted = np.where(correct, y, (y + 1) % classes)
    rest = (1 - confidence) / (classes - 1)
    probabilities = np.repeat(rest[:, None], classes, axis=1)
    probabilities[np.arange(len(y)), predicted] = confidence
    return probabilities


def test_perfectly_calibrated_probabilities_have_an_ece_of_zero():
    # Exactly calibrated: in each bin the share right equals the confidence given.
    confidence = np.repeat([0.45, 0.65, 0.85, 0.95], 20)
    correct = np.concatenate([np.arange(20) < k for k in (9, 13, 17, 19)])
    y = np.arange(80) % 3
    result = calibrate(probabilities_for(confidence, correct, y), y)
    assert result.ece == pytest.approx(0.0, abs=1e-12)
    filled = result.counts > 0
    np.testing.assert_allclose(result.bin_accuracy[filled], result.confidence[filled])
    # Sampled: right with probability equal to the confidence, so ECE only shows sampling noise.
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.34, 1.0, 100_000)
    correct = rng.random(100_000) < confidence
    assert expected_calibration_error(confidence, correct) < 0.01


def test_overconfident_probabilities_give_the_known_ece_with_an_interval_around_it():
    # Half the clips at 0.95 confidence, 75 % right; half at 0.65, 55 % right:
    # ECE = 0.5 * |0.75 - 0.95| + 0.5 * |0.55 - 0.65| = 0.15, and 0.15 overconfident on average.
    confidence = np.repeat([0.95, 0.65], 200)
    correct = np.concatenate([np.arange(200) < 150, np.arange(200) < 110])
    y = np.arange(400) % 4
    result = calibrate(probabilities_for(confidence, correct, y, classes=4), y, seed=3)
    assert result.ece == pytest.approx(0.15)
    assert result.overconfidence == pytest.approx(0.15)
    low, high = result.ece_ci
    assert low < 0.15 < high and high - low < 0.1
    assert calibrate(probabilities_for(confidence, correct, y, classes=4), y, seed=3).ece_ci == (low, high)


def test_reliability_points_equal_hand_computed_bin_accuracies():
    # Top-label: confidence is the row's maximum, right when its column is the true class.
    probabilities = np.array([
        [0.10, 0.90, 0.00],  # bin [0.9, 1.0], predicts 1, true 1: right
        [1.00, 0.00, 0.00],  # 1.0 belongs to the last bin; predicts 0, true 2: wrong
        [0.30, 0.35, 0.35],  # bin [0.3, 0.4); a tie goes to the first class (1), true 1: right
        [0.20, 0.42, 0.38],  # bin [0.4, 0.5), predicts 1, true 2: wrong
        [0.05, 0.05, 0.90],  # bin [0.9, 1.0], predicts 2, true 2: right
    ])
    y = np.array([1, 2, 1, 2, 2])
    confidence, correct = top_label(probabilities, y)
    assert correct.tolist() == [True, False, True, False, True]
    assert bin_index(confidence).tolist() == [9, 9, 3, 4, 9]
    result = calibrate(probabilities, y)
    assert result.counts.tolist() == [0, 0, 0, 1, 1, 0, 0, 0, 0, 3]
    assert result.bin_accuracy[9] == pytest.approx(2 / 3) and result.confidence[9] == pytest.approx(2.8 / 3)
    assert result.bin_accuracy[3] == 1.0 and result.bin_accuracy[4] == 0.0
    assert np.isnan(result.bin_accuracy[0]) and np.isnan(result.confidence[5])
    expected = (3 * abs(2 / 3 - 2.8 / 3) + abs(1 - 0.35) + abs(0 - 0.42)) / 5
    assert result.ece == pytest.approx(expected)
    curve = result.to_dict()["reliability"]  # only the bins that hold clips, in order
    assert [(b["bin"], b["clips"], b["accuracy"]) for b in curve] == [
        ([pytest.approx(0.3), pytest.approx(0.4)], 1, 1.0), ([pytest.approx(0.4), pytest.approx(0.5)], 1, 0.0),
        ([pytest.approx(0.9), 1.0], 3, pytest.approx(2 / 3))]


def test_cross_validation_keeps_out_of_fold_probabilities_and_scores_their_calibration():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 20)
    X = (rng.normal(size=(60, 4)) + 1.5 * np.eye(3, 4)[y]).astype(np.float32)
    # Each split's training side lacks a class (0, then 2): that column is 0 on its test clips.
    splits = [Split("a", np.arange(30, 60), np.arange(30)), Split("b", np.arange(30), np.arange(30, 60))]
    result = cross_validate(X, y, splits, ClassifierSpec("logreg"))
    assert result.probabilities.shape == (60, 3)
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, rtol=1e-6)
    assert np.all(result.probabilities[:30, 0] == 0) and np.all(result.probabilities[30:, 2] == 0)
    assert np.all(result.probabilities[:30, 1:] > 0) and np.all(result.probabilities[30:, :2] > 0)
    np.testing.assert_array_equal(result.probabilities.argmax(axis=1), result.predictions)
    metrics = score(y, result, 3)
    assert metrics.calibration.ece == pytest.approx(calibrate(result.probabilities, y).ece)
    assert metrics.calibration.accuracy == pytest.approx(metrics.accuracy)
    # A classifier without probabilities has no calibration, and says nothing about it.
    assert score(y, CVResult(result.predictions, result.fold_accuracy, np.zeros(2), np.zeros(2)), 3).calibration is None


def test_discussion_names_a_badly_calibrated_classifier():
    y = np.arange(200) % 2
    splits = [Split("fold1", np.arange(100, 200), np.arange(100)), Split("fold2", np.arange(100), np.arange(100, 200))]
    correct = np.arange(200) % 10 < 7  # both runs right on 70 % of the clips
    runs = []
    for representation, confidence in (("handcrafted", 0.7), ("yamnet", 0.99)):  # calibrated; overconfident
        probabilities = probabilities_for(np.full(200, confidence), correct, y, classes=2)
        cv = CVResult(probabilities.argmax(axis=1), np.array([0.7, 0.7]), np.zeros(2), np.zeros(2), (), probabilities)
        runs.append(Run(representation, "logreg", cv, score(y, cv, 2), None))
    versus = mcnemar(y, runs[1].cv.predictions, runs[0].cv.predictions)
    runs[1] = Run("yamnet", "logreg", runs[1].cv, runs[1].metrics, versus)
    result = ComparisonResult(
        config=CompareConfig(models=("handcrafted", "yamnet"), classifiers=("logreg",)),
        dataset=SimpleNamespace(classes=("a", "b"), labels=y), summary={"duration_seconds": {"median": 1.0}},
        splits=splits, split_strategy="stratified", runs=runs, vectors={},
        representations=[RepresentationInfo("handcrafted", 104, "mean+std", {}),
                         RepresentationInfo("yamnet", 1024, "mean", {})])
    text = next(p for p in paragraphs(result) if p.startswith("Calibration"))
    assert "Badly calibrated (ECE >= 0.10): yamnet + logistic regression (linear probe) (ECE 0.290, overconfident by " \
           "29.0 points)" in text
    assert "handcrafted + logistic regression (linear probe) (ECE" not in text  # calibrated: not named as bad
    assert "the winner's probabilities (handcrafted + logistic regression (linear probe)) have ECE 0.000" in text
    assert "With 200 clips even perfectly calibrated probabilities can show an ECE up to about 0.09" in text
    assert list(result.ranking["ece"]) == [pytest.approx(0.0, abs=1e-12), pytest.approx(0.29)]
