"""Shallow classifiers on shared folds, their metrics, and the statistics that compare them.

Everything here works on plain arrays: clip vectors `X float32 [clips, dim]`, integer labels
`y int64 [clips]` and the dataset's splits. Scaling lives inside each classifier's pipeline, so
it is fitted on the training side of every split only (fitting it on all clips would leak the
test clips' statistics into training).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tfaudio.comparison.settings import parse_overrides
from tfaudio.data.splits import Split


def _random_forest(params: dict):
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(**params)


def _mlp(params: dict):
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(**params)


def _logistic_regression(params: dict):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(**params)


@dataclass(frozen=True)
class Classifier:
    """One classifier a comparison can run: everything about it lives in this one record.

    name: what `--classifier` and `--param NAME.x=...` take ("rf"); label: how reports and the
    ranking name it; short: the label inside a sentence; factory: hyperparameters -> an
    unfitted scikit-learn estimator (imported only then); defaults: its hyperparameters unless
    overridden, ((name, value), ...); parallel_splits: whether its splits gain from running in
    parallel processes (`cross_validate`); linear: a linear probe, whose accuracy close to the
    best classifier's says the classes are close to linearly separable (the discussion says so).
    """

    name: str
    label: str
    short: str
    factory: Callable[[dict], object]
    defaults: tuple[tuple[str, object], ...]
    parallel_splits: bool
    linear: bool = False


#: Every classifier, by name, in the order comparisons run them. Defaults are chosen for a few
#: hundred to a few thousand clips of 100-2000-d vectors. The random forest already spreads its
#: trees over every core with threads (no BLAS), so its splits run one after the other; the MLP's
#: and the linear probe's fits are one-threaded BLAS work once limited (`_fit_split`), so
#: independent splits gain from parallel processes.
CLASSIFIERS: dict[str, Classifier] = {c.name: c for c in (
    Classifier("rf", "random forest", "random forest", _random_forest,
               (("n_estimators", 500), ("max_features", "sqrt"), ("n_jobs", -1)), parallel_splits=False),
    Classifier("mlp", "MLP", "MLP", _mlp,
               (("hidden_layer_sizes", (256,)), ("alpha", 1e-3), ("learning_rate_init", 1e-3), ("max_iter", 400),
                ("early_stopping", False)), parallel_splits=True),
    Classifier("logreg", "logistic regression (linear probe)", "logistic regression", _logistic_regression,
               (("C", 1.0), ("max_iter", 3000)), parallel_splits=True, linear=True),
)}


@dataclass(frozen=True)
class ClassifierSpec:
    """A classifier and its hyperparameters (merged over its defaults); seed sets random_state."""

    name: str
    params: tuple[tuple[str, object], ...] = ()
    seed: int = 0

    def __post_init__(self):
        if self.name not in CLASSIFIERS:
            raise ValueError(f"unknown classifier {self.name!r}; choose one of {', '.join(CLASSIFIERS)}")

    def resolved(self) -> dict:
        """The hyperparameters actually used: defaults, then overrides, then the seed."""
        return {**dict(CLASSIFIERS[self.name].defaults), **dict(self.params), "random_state": self.seed}


def parse_params(pairs: Sequence[str]) -> dict[str, dict[str, object]]:
    """`["rf.n_estimators=300", "mlp.hidden_layer_sizes=128,64"]` -> {"rf": {...}, "mlp": {...}}
    (values read by `tfaudio.comparison.settings.parse_value`); ValueError for an unknown
    classifier or a pair that is not CLASSIFIER.PARAM=VALUE."""
    return parse_overrides(pairs, CLASSIFIERS, "hyperparameter", "CLASSIFIER.PARAM=VALUE", "rf.n_estimators=300")


def make_classifier(spec: ClassifierSpec):
    """An unfitted scikit-learn pipeline: standardization, then the classifier."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    try:
        model = CLASSIFIERS[spec.name].factory(spec.resolved())
    except TypeError as err:
        raise ValueError(f"bad hyperparameter for {spec.name}: {err}") from None
    return make_pipeline(StandardScaler(), model)


@dataclass(frozen=True)
class CVResult:
    """Out-of-fold predictions of one classifier on one representation.

    predictions: int64 [clips], each clip predicted by the model of the split it was tested in.
    fold_accuracy: float [splits]; fit_seconds / predict_seconds: float [splits].
    probabilities: float [clips, classes], out-of-fold predicted probabilities (columns in label
    order; 0 for a class absent from a split's training side), None for a classifier without
    predict_proba.
    """

    predictions: np.ndarray
    fold_accuracy: np.ndarray
    fit_seconds: np.ndarray
    predict_seconds: np.ndarray
    warnings: tuple[str, ...] = ()
    probabilities: np.ndarray | None = None


def _finite(X) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    if not np.all(np.isfinite(X)):
        bad = np.flatnonzero(~np.all(np.isfinite(X), axis=1))
        raise ValueError(f"{len(bad)} clip vectors hold NaN or infinite values (rows {bad[:10].tolist()})")
    return X


#: Below this many values (clips x dim) all splits fit in about a CPU second (ESC-10's 400 x 104
#: hand-crafted vectors: logistic regression 0.16 s for 5 splits, the MLP 2.8 s), about what
#: starting the worker processes costs the first time, so the splits run in this process.
_PARALLEL_MIN_VALUES = 20_000


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _workers(spec: ClassifierSpec, per_split: Sequence[np.ndarray], n_jobs: int | None) -> int:
    """Processes for the splits: n_jobs if given, else parallel only where it is faster."""
    if n_jobs is not None:
        return max(1, min(n_jobs if n_jobs > 0 else _cores(), len(per_split)))
    if not CLASSIFIERS[spec.name].parallel_splits or per_split[0].size < _PARALLEL_MIN_VALUES:
        return 1
    return max(1, min(_cores(), len(per_split)))


def _fit_split(spec: ClassifierSpec, X_train, y_train, X_test) -> tuple[np.ndarray, float, float, bool, tuple]:
    """One split: (predictions int64 [test clips], fit seconds, predict seconds, converged,
    probabilities: (float [test clips, trained classes], their labels) or () without predict_proba).

    The fit and the prediction run with one BLAS / OpenMP thread: numpy's and scipy's OpenBLAS
    pools otherwise take every core each, oversubscribe them (logistic regression on 1024-d
    vectors took 2.4-9 s per fit on 2 cores instead of 0.22 s), and make the floating-point
    sums, hence the metrics, depend on the OPENBLAS_NUM_THREADS / OMP_NUM_THREADS the user set.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    # Built first: importing scikit-learn loads scipy's BLAS, which the limits must see.
    model = make_classifier(spec)
    with threadpool_limits(limits=1), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        start = time.perf_counter()
        model.fit(X_train, y_train)
        fit_seconds = time.perf_counter() - start
        start = time.perf_counter()
        predicted = np.asarray(model.predict(X_test), dtype=np.int64)
        predict_seconds = time.perf_counter() - start
        probabilities = (model.predict_proba(X_test), model.classes_) if hasattr(model, "predict_proba") else ()
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return predicted, fit_seconds, predict_seconds, converged, probabilities


def cross_validate(
    X: np.ndarray | Sequence[np.ndarray],
    y: np.ndarray,
    splits: Sequence[Split],
    spec: ClassifierSpec,
    *,
    n_jobs: int | None = None,
) -> CVResult:
    """Fit on each split's train side, predict its test side. Every clip must be tested once.

    X: float32 [clips, dim], or one such matrix per split for representations that are
    themselves learned on each split's training clips (the autoencoder).
    n_jobs: processes for the splits (None: parallel for the MLP and the linear probe when the
    data is large enough to pay for starting them; -1: one per core). Every fit runs with one
    BLAS thread, so the results are identical whatever n_jobs and the thread settings.
    """
    if isinstance(X, (list, tuple)):
        if len(X) != len(splits):
            raise ValueError(f"got {len(X)} feature matrices for {len(splits)} splits")
        per_split = [_finite(x) for x in X]
    else:
        per_split = [_finite(X)] * len(splits)
    make_classifier(spec)  # a bad hyperparameter fails here, before any worker starts
    # A generator: each split's copies of the rows are made when its fit starts, not all at once.
    jobs = ((spec, x[split.train], y[split.train], x[split.test]) for split, x in zip(splits, per_split))
    workers = _workers(spec, per_split, n_jobs) if splits else 1
    if workers > 1:
        from joblib import Parallel, delayed

        outputs = Parallel(n_jobs=workers, backend="loky")(delayed(_fit_split)(*job) for job in jobs)
    else:
        outputs = [_fit_split(*job) for job in jobs]
    predictions = np.full(len(y), -1, dtype=np.int64)
    probabilities = np.zeros((len(y), int(y.max()) + 1)) if outputs and all(o[4] for o in outputs) else None
    accuracy, notes = [], []
    for split, (predicted, _, _, converged, proba) in zip(splits, outputs):
        if not converged:
            notes.append(f"{spec.name} did not converge on {split.name}; raise its max_iter")
        predictions[split.test] = predicted
        if probabilities is not None:
            probabilities[np.ix_(split.test, proba[1])] = proba[0]
        accuracy.append(float(np.mean(predicted == y[split.test])))
    if np.any(predictions < 0):
        raise ValueError(f"{int(np.sum(predictions < 0))} clips are in no test split; the splits must cover every clip")
    fit_s = np.array([output[1] for output in outputs])
    predict_s = np.array([output[2] for output in outputs])
    return CVResult(predictions, np.array(accuracy), fit_s, predict_s, tuple(notes), probabilities)
