"""Masked pooling: frame vectors -> one vector per clip, over each clip's valid frames only.

Written once, twice over: `pool` in numpy (what `Representation.embed` applies to frame
embeddings) and `pool_tensor`, its TensorFlow twin for graphs that pool inside the model (the
hand-crafted layer, the exported autoencoder). tests/test_pooling.py holds them equal.

Importing this module does not import TensorFlow: `pool_tensor` imports it when called, so the
embedding store and the CLI can name and check poolings without paying for TensorFlow.
"""

from __future__ import annotations

import numpy as np

#: How frame embeddings can be reduced to one vector per clip.
POOLING = ("mean", "max", "mean+std")


def pooled_dim(dim: int, method: str) -> int:
    """Values per clip vector when frames of `dim` values are pooled by `method`."""
    return 2 * dim if method == "mean+std" else dim


def _check_method(method: str) -> None:
    if method not in POOLING:
        raise ValueError(f"unknown pooling {method!r}; choose one of {POOLING}")


def pool(values: np.ndarray, mask: np.ndarray, method: str = "mean") -> np.ndarray:
    """Reduce frame vectors to clip vectors over each clip's valid frames only.

    values: float32 [batch, frames, dim]; mask: bool [batch, frames] with at least one True
    per clip. Returns float32 [batch, dim], or [batch, 2 * dim] for "mean+std" (mean, then
    population standard deviation).
    """
    _check_method(method)
    values = np.asarray(values, dtype=np.float32)
    weights = np.asarray(mask, dtype=bool)[:, :, np.newaxis]
    counts = weights.sum(axis=1, dtype=np.float32)
    if np.any(counts == 0):
        raise ValueError(f"clips {np.flatnonzero(counts[:, 0] == 0).tolist()} have no valid frame")
    if method == "max":
        return np.where(weights, values, -np.inf).max(axis=1).astype(np.float32)
    mean = np.where(weights, values, 0.0).sum(axis=1) / counts
    if method == "mean":
        return mean.astype(np.float32)
    variance = np.where(weights, (values - mean[:, np.newaxis]) ** 2, 0.0).sum(axis=1) / counts
    return np.concatenate([mean, np.sqrt(variance)], axis=1).astype(np.float32)


def pool_tensor(values, mask, method: str = "mean"):
    """TensorFlow twin of `pool`, for use inside a graph.

    values: float32 tensor [batch, frames, dim]; mask: bool tensor [batch, frames]. Returns
    float32 [batch, dim], or [batch, 2 * dim] for "mean+std". Padding frames never reach a
    statistic, whatever they hold (as in `pool`). A clip without a valid frame gives zeros
    (mean, std) or -inf (max) instead of an error: a graph cannot raise per clip.
    """
    from tfaudio.quiet import tf

    _check_method(method)
    valid = tf.cast(mask, tf.bool)[:, :, tf.newaxis]
    count = tf.maximum(tf.reduce_sum(tf.cast(valid, values.dtype), axis=1), 1.0)
    if method == "max":
        return tf.reduce_max(tf.where(valid, values, tf.fill(tf.shape(values), -np.inf)), axis=1)
    zeros = tf.zeros_like(values)
    mean = tf.reduce_sum(tf.where(valid, values, zeros), axis=1) / count
    if method == "mean":
        return mean
    # Two passes: E[x^2] - E[x]^2 loses the spread of large-mean columns (MFCC c0) in float32.
    variance = tf.reduce_sum(tf.where(valid, tf.square(values - mean[:, tf.newaxis]), zeros), axis=1) / count
    return tf.concat([mean, tf.sqrt(variance)], axis=1)
