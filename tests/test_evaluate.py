"""Classifiers, metrics and statistics on arrays with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from tfaudio.comparison.classifiers import ClassifierSpec, cross_validate, parse_params
from tfaudio.comparison.metrics import bootstrap_ci, mcnemar, score
from tfaudio.data.splits import Split


def _blobs(n_per_class=30, classes=3, dim=5, spread=0.3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, size=(classes, dim))
    X = np.concatenate([centres[k] + spread * rng.normal(size=(n_per_class, dim)) for k in range(classes)])
    y = np.repeat(np.arange(classes), n_per_class)
    return X.astype(np.float32), y


def _kfold(n, k=5):
    folds = np.arange(n) % k
    return [Split(f"fold{i + 1}", np.flatnonzero(folds != i), np.flatnonzero(folds == i)) for i in range(k)]


def test_mcnemar_exact_values():
    y = np.zeros(20, dtype=int)
    a = np.zeros(20, dtype=int)  # always right
    b = a.copy()
    b[:10] = 1  # wrong on 10 clips where a is right
    test = mcnemar(y, a, b)
    assert (test.only_a, test.only_b) == (10, 0)
    assert test.p_value == pytest.approx(2 * 0.5**10)  # two-sided exact binomial
    assert mcnemar(y, a, a).p_value == 1.0
    right_first = np.r_[np.zeros(10), np.ones(10)].astype(int)  # right on the first 10 clips only
    right_last = 1 - right_first  # right exactly where the other is wrong: 10 against 10
    balanced = mcnemar(y, right_first, right_last)
    assert (balanced.only_a, balanced.only_b) == (10, 10)
    assert balanced.p_value == pytest.approx(1.0)


def test_bootstrap_interval_brackets_the_mean_and_narrows_with_more_clips():
    rng = np.random.default_rng(1)
    small = rng.random(50) < 0.8
    large = rng.random(2000) < 0.8
    low, high = bootstrap_ci(small)
    assert low < small.mean() < high
    low2, high2 = bootstrap_ci(large)
    assert high2 - low2 < (high - low) / 3
    assert bootstrap_ci(small, seed=3) == bootstrap_ci(small, seed=3)


def test_cross_validation_separates_blobs_and_pools_out_of_fold_predictions():
    X, y = _blobs()
    splits = _kfold(len(y))
    for name in ("rf", "mlp", "logreg"):
        result = cross_validate(X, y, splits, ClassifierSpec(name))
        assert result.predictions.shape == y.shape
        assert result.fold_accuracy.shape == (5,)
        assert np.mean(result.predictions == y) > 0.95, name
        metrics = score(y, result, 3)
        assert metrics.confusion.sum() == len(y)
        assert metrics.confusion_normalized.sum(axis=1) == pytest.approx(np.ones(3))
        assert metrics.accuracy_ci[0] <= np.mean(result.predictions == y) <= metrics.accuracy_ci[1]


def test_noise_features_score_near_chance():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 10)).astype(np.float32)
    y = np.repeat(np.arange(4), 30)
    result = cross_validate(X, y, _kfold(120), ClassifierSpec("logreg"))
    assert np.mean(result.predictions == y) < 0.45  # chance is 0.25


def test_same_seed_same_predictions_and_overrides_apply():
    X, y = _blobs(spread=2.0)
    splits = _kfold(len(y))
    spec = ClassifierSpec("rf", (("n_estimators", 20),), seed=4)
    assert spec.resolved()["n_estimators"] == 20 and spec.resolved()["random_state"] == 4
    first = cross_validate(X, y, splits, spec)
    second = cross_validate(X, y, splits, spec)
    np.testing.assert_array_equal(first.predictions, second.predictions)


def test_per_split_feature_matrices():
    X, y = _blobs()
    splits = _kfold(len(y))
    shuffled = [X if i else np.random.default_rng(0).permutation(X) for i in range(5)]
    result = cross_validate(shuffled, y, splits, ClassifierSpec("logreg"))
    assert result.fold_accuracy[1:].min() > 0.9
    assert result.fold_accuracy[0] < 0.8  # the scrambled split's features were used for that split
    with pytest.raises(ValueError, match="2 feature matrices for 5 splits"):
        cross_validate([X, X], y, splits, ClassifierSpec("logreg"))


def test_bad_inputs_are_named():
    X, y = _blobs()
    X[7, 2] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinite.*rows \[7\]"):
        cross_validate(X, y, _kfold(len(y)), ClassifierSpec("rf"))
    with pytest.raises(ValueError, match="unknown classifier 'svm'"):
        ClassifierSpec("svm")
    with pytest.raises(ValueError, match="bad hyperparameter for rf"):
        cross_validate(_blobs()[0], y, _kfold(len(y)), ClassifierSpec("rf", (("trees", 3),)))
    assert parse_params(["rf.n_estimators=300", "mlp.hidden_layer_sizes=128,64", "logreg.C=0.5"]) == {
        "rf": {"n_estimators": 300}, "mlp": {"hidden_layer_sizes": (128, 64)}, "logreg": {"C": 0.5}}
    with pytest.raises(ValueError, match="CLASSIFIER.PARAM=VALUE"):
        parse_params(["n_estimators=3"])
