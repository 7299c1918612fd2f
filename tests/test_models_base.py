"""The representation interface: pooling over valid frames."""

from __future__ import annotations

import numpy as np
import pytest

from tfaudio.models.base import pool


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


@pytest.mark.parametrize("rows", [0, 1, 7, 10, 23])
def test_in_groups_equals_one_call(rows):
    import tensorflow as tf

    from tfaudio.models.grouping import in_groups

    values = tf.reshape(tf.range(rows * 6, dtype=tf.float32), [rows, 2, 3])
    def fn(x):
        return tf.reduce_sum(x, axis=[1, 2]), x * 2.0

    sums, doubled = tf.function(lambda v: in_groups(fn, v, max_group=4))(values)
    np.testing.assert_array_equal(sums, tf.reduce_sum(values, axis=[1, 2]))
    np.testing.assert_array_equal(doubled, values * 2.0)
    assert sums.shape == (rows,) and doubled.shape == (rows, 2, 3)
