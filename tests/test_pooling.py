"""Masked pooling: known values, and the numpy and TensorFlow versions computing the same thing."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tfaudio.frontend.pooling import POOLING, pool, pool_tensor, pooled_dim


def test_pool_over_valid_frames_known_values():
    values = np.array([[[1.0], [3.0], [100.0]], [[5.0], [-7.0], [2.0]]], np.float32)
    mask = np.array([[True, True, False], [True, True, True]])
    np.testing.assert_allclose(pool(values, mask, "mean"), [[2.0], [0.0]])
    np.testing.assert_allclose(pool(values, mask, "max"), [[3.0], [5.0]])
    np.testing.assert_allclose(pool(values, mask, "mean+std"), [[2.0, 1.0], [0.0, np.sqrt(26.0)]], rtol=1e-6)
    with pytest.raises(ValueError, match="no valid frame"):
        pool(values, np.zeros((2, 3), bool))
    with pytest.raises(ValueError, match="unknown pooling"):
        pool(values, mask, "median")


@pytest.mark.parametrize("method", POOLING)
def test_numpy_and_tensorflow_pooling_agree_with_masks(method):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    # Large offsets make a one-pass variance visibly wrong; padding frames hold huge values
    # that must not leak into any statistic.
    values = (rng.normal(0, 1, (5, 9, 4)) + rng.uniform(-1000, 1000, (1, 1, 4))).astype(np.float32)
    lengths = np.array([9, 1, 4, 7, 2])
    mask = np.arange(9)[np.newaxis] < lengths[:, np.newaxis]
    values[~mask] = 1e30
    mask[3, 0] = False  # a hole, not only a padded tail
    with np.errstate(over="ignore"):  # squaring the padding overflows, and is then left out
        expected = pool(values, mask, method)
    assert expected.shape == (5, pooled_dim(4, method))

    graph = tf.function(lambda v, m: pool_tensor(v, m, method))
    for got in (pool_tensor(tf.constant(values), tf.constant(mask), method), graph(values, mask)):
        assert got.dtype == tf.float32
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-4)
    # The numbers themselves, computed by hand for one clip.
    clip = values[2, :4].astype(np.float64)
    by_hand = {"mean": clip.mean(0), "max": clip.max(0), "mean+std": np.concatenate([clip.mean(0), clip.std(0)])}
    np.testing.assert_allclose(expected[2], by_hand[method], rtol=1e-5, atol=1e-4)


def test_unknown_pooling_is_refused_by_both():
    import tensorflow as tf

    with pytest.raises(ValueError, match="unknown pooling"):
        pool_tensor(tf.zeros([1, 2, 3]), tf.ones([1, 2], tf.bool), "median")


def test_numpy_pooling_does_not_import_tensorflow():
    code = "import sys; import tfaudio.frontend.pooling; import tfaudio.models.base; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
