"""Shallow classifiers on shared folds, their metrics, and the statistics that compare them.

Everything here works on plain arrays: clip vectors `X float32 [clips, dim]`, integer labels
`y int64 [clips]` and the dataset's splits. Scaling lives inside each classifier's pipeline, so
it is fitted on the training side of every split only (fitting it on all clips would leak the
test clips' statistics into training).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tfaudio.data.splits import Split

#: Classifier names accepted by `make_classifier`, with what they stand for in reports.
CLASSIFIERS = {
    "rf": "random forest",
    "mlp": "MLP",
    "logreg": "logistic regression (linear probe)",
}


#: Defaults chosen for a few hundred to a few thousand clips of 100–2000-d vectors.
_DEFAULTS = {
    "rf": {"n_estimators": 500, "max_features": "sqrt", "n_jobs": -1},
    "mlp": {
        "hidden_layer_sizes": (256,),
        "alpha": 1e-3,
        "learning_rate_init": 1e-3,
        "max_iter": 400,
        "early_stopping": False,
    },
    "logreg": {"C": 1.0, "max_iter": 3000},
}


@dataclass(frozen=True)
class ClassifierSpec:
    """A classifier and its hyperparameters (merged over `_DEFAULTS`); seed sets random_state."""

    name: str
    params: tuple[tuple[str, object], ...] = ()
    seed: int = 0

    def __post_init__(self):
        if self.name not in CLASSIFIERS:
            raise ValueError(f"unknown classifier {self.name!r}; choose one of {', '.join(CLASSIFIERS)}")

    def resolved(self) -> dict:
        """The hyperparameters actually used: defaults, then overrides, then the seed."""
        return {**_DEFAULTS[self.name], **dict(self.params), "random_state": self.seed}


def parse_params(pairs: Sequence[str]) -> dict[str, dict[str, object]]:
    """`["rf.n_estimators=300", "mlp.hidden_layer_sizes=128,64"]` -> {"rf": {...}, "mlp": {...}}.

    Values are read as int, float, a comma-separated int tuple, None/True/False, or kept as text.
    """
    out: dict[str, dict[str, object]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        name, dot, param = key.partition(".")
        if not sep or not dot or name not in CLASSIFIERS or not param:
            raise ValueError(
                f"cannot read hyperparameter {pair!r}: write CLASSIFIER.PARAM=VALUE with CLASSIFIER one of "
                f"{', '.join(CLASSIFIERS)} (e.g. rf.n_estimators=300)"
            )
        out.setdefault(name, {})[param] = _parse_value(value)
    return out


def _parse_value(text: str):
    named = {"none": None, "true": True, "false": False}
    if text.lower() in named:
        return named[text.lower()]
    if "," in text:
        return tuple(int(part) for part in text.split(",") if part)
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def make_classifier(spec: ClassifierSpec):
    """An unfitted scikit-learn pipeline: standardization, then the classifier."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    kinds = {"rf": RandomForestClassifier, "mlp": MLPClassifier, "logreg": LogisticRegression}
    try:
        model = kinds[spec.name](**spec.resolved())
    except TypeError as err:
        raise ValueError(f"bad hyperparameter for {spec.name}: {err}") from None
    return make_pipeline(StandardScaler(), model)


@dataclass(frozen=True)
class CVResult:
    """Out-of-fold predictions of one classifier on one representation.

    predictions: int64 [clips], each clip predicted by the model of the split it was tested in.
    fold_accuracy: float [splits]; fit_seconds / predict_seconds: float [splits].
    """

    predictions: np.ndarray
    fold_accuracy: np.ndarray
    fit_seconds: np.ndarray
    predict_seconds: np.ndarray
    warnings: tuple[str, ...] = ()


def _finite(X) -> np.ndarray:
    X = np.asarray(X, dtype=np.float32)
    if not np.all(np.isfinite(X)):
        bad = np.flatnonzero(~np.all(np.isfinite(X), axis=1))
        raise ValueError(f"{len(bad)} clip vectors hold NaN or infinite values (rows {bad[:10].tolist()})")
    return X


def cross_validate(
    X: np.ndarray | Sequence[np.ndarray], y: np.ndarray, splits: Sequence[Split], spec: ClassifierSpec
) -> CVResult:
    """Fit on each split's train side, predict its test side. Every clip must be tested once.

    X: float32 [clips, dim], or one such matrix per split for representations that are
    themselves learned on each split's training clips (the autoencoder).
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    if isinstance(X, (list, tuple)):
        if len(X) != len(splits):
            raise ValueError(f"got {len(X)} feature matrices for {len(splits)} splits")
        per_split = [_finite(x) for x in X]
    else:
        per_split = [_finite(X)] * len(splits)
    predictions = np.full(len(y), -1, dtype=np.int64)
    accuracy, fit_s, predict_s, notes = [], [], [], []
    for split, X in zip(splits, per_split):
        model = make_classifier(spec)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            start = time.perf_counter()
            model.fit(X[split.train], y[split.train])
            fit_s.append(time.perf_counter() - start)
        if any(issubclass(w.category, ConvergenceWarning) for w in caught):
            notes.append(f"{spec.name} did not converge on {split.name}; raise its max_iter")
        start = time.perf_counter()
        predicted = model.predict(X[split.test])
        predict_s.append(time.perf_counter() - start)
        predictions[split.test] = predicted
        accuracy.append(float(np.mean(predicted == y[split.test])))
    if np.any(predictions < 0):
        raise ValueError(f"{int(np.sum(predictions < 0))} clips are in no test split; the splits must cover every clip")
    return CVResult(predictions, np.array(accuracy), np.array(fit_s), np.array(predict_s), tuple(notes))
