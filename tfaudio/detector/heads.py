"""One-vs-rest heads on window embeddings: a score (logit) per label, in numpy and as TF ops.

The heads can see the embeddings standardised (each dimension minus its mean, over its standard
deviation, measured on the windows the heads were fitted on; `DetectorConfig.standardize`, off by
default: the index's unit vectors are used as they are, mean 0 and scale 1). The mean and scale are part of
the heads (`arrays`) and applied by `scores` and `tf_scores` alike, so an exported graph
normalises exactly as training did: an exported classifier that skipped the normalisation of
its training scored ~100 % on plain noise (BirdNET-Analyzer #823). The standardisation is one
for all labels and is applied explicitly, not folded into the weights: folding divides weights
by scales of ~0.03 (unit vectors in 1024 dimensions) and then cancels large sums in float32.

Fits are weighted: positives and negatives weigh the same in total, a weak negative counting
`weak_negative_weight` of a labelled one, so a label with 10 positives is not drowned by 2000
unlabelled windows, and the weak-negative weight keeps its meaning whatever the label counts.

- linear: logistic regression per label (scikit-learn, lbfgs, L2 with C = regularization).
- mlp: one hidden layer of `hidden` ReLU units per label, a logistic output, the same loss and
  L2 penalty as the linear head, minimised by L-BFGS (scipy; at most 300 iterations) from a
  seeded start. Written here
  rather than with scikit-learn's MLPClassifier, whose `fit` takes sample weights only from
  1.7 on (tfaudio allows 1.5) and which trains by stochastic minibatches.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tfaudio.detector.config import CLASSIFIERS, DetectorConfig

#: A dimension whose spread is below this is not scaled (it carries nothing, and would explode).
_MIN_SCALE = 1e-6
#: Iterations of the linear head's optimiser: enough for it to converge on a few thousand windows.
_MAX_ITER = 1000
#: Iterations of the MLP's L-BFGS. On separable data (most detectors' labels) its weak L2 lets
#: the weights grow for thousands of iterations; stopping early regularises, as for any net,
#: and bounds the time: about 13 ms an iteration for 2,000 windows of 1024 values, 64 units.
_MLP_ITER = 300

#: The arrays each kind of head holds, besides mean [dim] and scale [dim].
ARRAYS = {"linear": ("coef", "intercept"),
          "mlp": ("hidden_weights", "hidden_bias", "output_weights", "output_bias")}


@dataclass(frozen=True, eq=False)
class Heads:
    """Heads of `labels`, one per label, of one kind.

    arrays (saved to heads.npz as they are), C labels, dim embedding values, H hidden units:
    mean float32 [dim], scale float32 [dim] (the standardisation); linear: coef float32 [C, dim],
    intercept float32 [C]; mlp: hidden_weights float32 [C, dim, H], hidden_bias [C, H],
    output_weights [C, H], output_bias [C].
    """

    kind: str
    labels: tuple[str, ...]
    arrays: dict[str, np.ndarray]

    def __post_init__(self):
        problem = self.problem()
        if problem:
            raise ValueError(problem)

    def problem(self) -> str | None:
        """What makes these heads unusable (None: nothing): a kind or array missing or of the
        wrong shape (a damaged heads.npz)."""
        if self.kind not in ARRAYS:
            return f"unknown head kind {self.kind!r}"
        missing = [name for name in ("mean", "scale", *ARRAYS[self.kind]) if name not in self.arrays]
        if missing:
            return f"{self.kind} heads lack {', '.join(missing)}"
        a, count = self.arrays, len(self.labels)
        dim = a["mean"].shape[0] if a["mean"].ndim == 1 else -1
        if self.kind == "linear":
            shapes = {"coef": (count, dim), "intercept": (count,)}
        else:
            hidden = a["hidden_bias"].shape[-1] if a["hidden_bias"].ndim == 2 else -1
            shapes = {"hidden_weights": (count, dim, hidden), "hidden_bias": (count, hidden),
                      "output_weights": (count, hidden), "output_bias": (count,)}
        shapes["scale"] = (dim,)
        wrong = [f"{name} {a[name].shape} (expected {shape})" for name, shape in shapes.items()
                 if a[name].shape != shape]
        return f"{self.kind} heads of {count} labels: {', '.join(wrong)}" if wrong or dim < 0 else None

    @property
    def dim(self) -> int:
        return int(self.arrays["mean"].shape[0])

    def scores(self, vectors) -> np.ndarray:
        """vectors: float32 [n, dim] unit-norm window embeddings -> float32 [n, C] raw scores
        (logits: > 0 leans positive)."""
        x = np.asarray(vectors, np.float32).reshape(-1, self.dim)
        a = {name: np.asarray(value, np.float32) for name, value in self.arrays.items()}
        z = (x - a["mean"]) / a["scale"]
        if self.kind == "linear":
            return (z @ a["coef"].T + a["intercept"]).astype(np.float32)
        count, dim, hidden = a["hidden_weights"].shape
        weights = a["hidden_weights"].transpose(1, 0, 2).reshape(dim, count * hidden)
        h = np.maximum(z @ weights + a["hidden_bias"].reshape(-1), 0).reshape(-1, count, hidden)
        return (np.einsum("nch,ch->nc", h, a["output_weights"]) + a["output_bias"]).astype(np.float32)

    def tf_scores(self, vectors):
        """`scores` as TF ops: tf.Tensor float32 [n, dim] -> float32 [n, C]; the arrays become
        constants of the graph (used by the waveform-in export)."""
        from tfaudio.quiet import tf

        a = {name: tf.constant(np.asarray(value, np.float32)) for name, value in self.arrays.items()}
        z = (tf.cast(vectors, tf.float32) - a["mean"]) / a["scale"]
        if self.kind == "linear":
            return tf.matmul(z, a["coef"], transpose_b=True) + a["intercept"]
        count, dim, hidden = self.arrays["hidden_weights"].shape
        weights = tf.reshape(tf.transpose(a["hidden_weights"], [1, 0, 2]), [dim, count * hidden])
        h = tf.nn.relu(tf.matmul(z, weights) + tf.reshape(a["hidden_bias"], [-1]))
        h = tf.reshape(h, [-1, count, hidden])
        return tf.reduce_sum(h * a["output_weights"], axis=-1) + a["output_bias"]

    def select(self, labels: Sequence[str]) -> Heads:
        """The heads of some labels only, in that order."""
        rows = [self.labels.index(label) for label in labels]
        arrays = {name: (value if name in ("mean", "scale") else value[rows]) for name, value in self.arrays.items()}
        return Heads(self.kind, tuple(labels), arrays)


def standardisation(vectors: np.ndarray, standardize: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(mean float32 [dim], scale float32 [dim]) of float [m, dim]; a flat dimension scales by 1.
    standardize False (DetectorConfig's default): mean 0 and scale 1, the vectors as they are."""
    if not standardize:
        dim = np.shape(vectors)[1]
        return np.zeros(dim, np.float32), np.ones(dim, np.float32)
    x = np.asarray(vectors, np.float64)
    scale = x.std(axis=0)
    return x.mean(axis=0).astype(np.float32), np.where(scale > _MIN_SCALE, scale, 1.0).astype(np.float32)


def balanced(y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """float64 [m]: `weights` scaled so positives (y == 1) and negatives weigh the same in total,
    the total staying the sum of `weights`."""
    weights = np.asarray(weights, np.float64)
    positive = np.asarray(y) == 1
    total, mass = weights.sum(), weights[positive].sum()
    return weights * np.where(positive, total / (2 * mass), total / (2 * (total - mass)))


def fit_label(kind: str, z: np.ndarray, y: np.ndarray, weights: np.ndarray, config: DetectorConfig) -> dict:
    """One label's head on standardised embeddings z float [m, dim], y int [m] 0/1 (both
    present), base weights float [m]: its arrays without the label axis (linear: coef [dim],
    intercept scalar; mlp: hidden_weights [dim, H], hidden_bias [H], output_weights [H],
    output_bias scalar), float32."""
    from threadpoolctl import threadpool_limits

    y = np.asarray(y, np.float64)
    if not (y == 1).any() or not (y == 0).any():
        raise ValueError("a head needs positives and negatives")
    w = balanced(y, weights)
    if kind == "linear":
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=config.regularization, solver="lbfgs", max_iter=_MAX_ITER)
        # One BLAS thread: faster on these machines and the same numbers whatever the thread
        # settings (DESIGN.md, BLAS threads).
        with threadpool_limits(limits=1), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(np.asarray(z, np.float64), y, sample_weight=w)
        return {"coef": model.coef_[0].astype(np.float32), "intercept": np.float32(model.intercept_[0])}
    if kind == "mlp":
        with threadpool_limits(limits=1):
            return _fit_mlp(np.asarray(z, np.float64), y, w, config)
    raise ValueError(f"classifier must be one of {', '.join(CLASSIFIERS)}, got {kind!r}")


def _fit_mlp(z: np.ndarray, y: np.ndarray, w: np.ndarray, config: DetectorConfig) -> dict:
    """Minimise sum_i w_i * logloss_i + |W|^2 / (2 C) (the linear head's objective, C the
    regularization; biases not penalised) over one hidden ReLU layer, by at most _MLP_ITER
    iterations of L-BFGS from a Glorot-uniform start seeded by config.seed."""
    from scipy.optimize import minimize

    m, dim = z.shape
    hidden = config.hidden
    rng = np.random.default_rng(config.seed)
    start = np.concatenate([
        rng.uniform(-1, 1, dim * hidden) * np.sqrt(6 / (dim + hidden)), np.zeros(hidden),
        rng.uniform(-1, 1, hidden) * np.sqrt(6 / (hidden + 1)), np.zeros(1)])
    penalty = 1.0 / config.regularization
    scale = 1.0 / w.sum()  # the objective per unit of weight: the same step sizes for any set size

    def unpack(theta):
        first = dim * hidden
        return (theta[:first].reshape(dim, hidden), theta[first:first + hidden],
                theta[first + hidden:first + 2 * hidden], theta[-1])

    z32 = z.astype(np.float32)

    def objective(theta):
        w1, b1, w2, b2 = unpack(theta)
        # The two [m, dim] x [dim, H] products are nearly all the work: in float32, twice as
        # fast, and the sums that L-BFGS steers by stay in float64.
        a = (z32 @ w1.astype(np.float32)).astype(np.float64) + b1
        h = np.maximum(a, 0)
        logit = h @ w2 + b2
        loss = np.sum(w * (np.logaddexp(0, logit) - y * logit)) + 0.5 * penalty * (np.sum(w1 ** 2) + np.sum(w2 ** 2))
        d_logit = w * (_sigmoid(logit) - y)
        d_a = np.outer(d_logit, w2) * (a > 0)
        d_w1 = (z32.T @ d_a.astype(np.float32)).astype(np.float64)
        grad = np.concatenate([(d_w1 + penalty * w1).ravel(), d_a.sum(axis=0), h.T @ d_logit + penalty * w2,
                               [d_logit.sum()]])
        return loss * scale, grad * scale

    result = minimize(objective, start, jac=True, method="L-BFGS-B", options={"maxiter": _MLP_ITER})
    w1, b1, w2, b2 = unpack(result.x)
    return {"hidden_weights": w1.astype(np.float32), "hidden_bias": b1.astype(np.float32),
            "output_weights": w2.astype(np.float32), "output_bias": np.float32(b2)}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0, -x))


def stack(kind: str, labels: Sequence[str], mean: np.ndarray, scale: np.ndarray, parts: Sequence[dict]) -> Heads:
    """Heads from each label's `fit_label` arrays (in `labels` order) and the standardisation."""
    arrays = {"mean": np.asarray(mean, np.float32), "scale": np.asarray(scale, np.float32)}
    for name in ARRAYS[kind]:
        arrays[name] = np.stack([np.asarray(part[name], np.float32) for part in parts])
    return Heads(kind, tuple(labels), arrays)


def fit_heads(kind: str, labels: Sequence[str], sets, config: DetectorConfig,
              vectors: Callable[[np.ndarray], np.ndarray] | Sequence[np.ndarray]) -> Heads:
    """Fit one head per label on its TrainingSet (`sets`, in `labels` order).

    vectors: the embeddings, either a function of window ids (e.g. `index.vectors`: int64 [m]
    -> float32 [m, dim]) or one float32 [len(set), dim] array per set, in its order. The
    standardisation (config.standardize) is measured on every window of every set (each window
    once).
    """
    if len(sets) != len(labels) or not labels:
        raise ValueError(f"one training set per label: {len(labels)} labels, {len(sets)} sets")
    if callable(vectors):
        ids = np.unique(np.concatenate([s.ids for s in sets]))
        every = np.asarray(vectors(ids), np.float32)
        matrices = [every[np.searchsorted(ids, s.ids)] for s in sets]
    else:
        matrices = [np.asarray(v, np.float32) for v in vectors]
        every = np.concatenate(matrices) if len(matrices) == 1 else _unique_rows(sets, matrices)
    mean, scale = standardisation(every, config.standardize)
    parts = [fit_label(kind, (x - mean) / scale, s.y, s.weights, config) for s, x in zip(sets, matrices)]
    return stack(kind, labels, mean, scale, parts)


def _unique_rows(sets, matrices) -> np.ndarray:
    """The rows of several sets' matrices, each window (by id) once."""
    ids = np.concatenate([s.ids for s in sets])
    _, first = np.unique(ids, return_index=True)
    return np.concatenate(matrices)[first]
