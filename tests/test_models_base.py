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
