"""The representation interface's helpers: frames through a network in groups (pooling: test_pooling.py)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.parametrize("rows", [0, 1, 7, 10, 23])
def test_in_groups_equals_one_call(rows):
    import tensorflow as tf

    from tfaudio.models.grouping import in_groups

    values = tf.reshape(tf.range(rows * 6, dtype=tf.float32), [rows, 2, 3])
    def fn(x):
        return tf.reduce_sum(x, axis=[1, 2]), x * 2.0

    signature = (tf.TensorSpec([None], tf.float32), tf.TensorSpec([None, 2, 3], tf.float32))
    sums, doubled = tf.function(lambda v: in_groups(fn, v, max_group=4, signature=signature))(values)
    np.testing.assert_array_equal(sums, tf.reduce_sum(values, axis=[1, 2]))
    np.testing.assert_array_equal(doubled, values * 2.0)
    assert sums.shape == (rows,) and doubled.shape == (rows, 2, 3)


def test_configs_and_the_registry_import_no_tensorflow():
    """Every model's config.py, and the registry's model cards built from them, load without
    TensorFlow, Keras or transformers: `tfaudio models` and cached runs never pay for them."""
    import subprocess
    import sys
    from pathlib import Path

    import tfaudio.models

    configs = sorted(Path(tfaudio.models.__file__).parent.glob("*/config.py"))
    assert {c.parent.name for c in configs} >= {"handcrafted", "yamnet", "vggish", "wav2vec2", "autoencoder"}
    modules = [f"tfaudio.models.{c.parent.name}.config" for c in configs] + ["tfaudio.models.registry"]
    code = (f"import importlib, sys\nfor m in {modules!r}:\n    importlib.import_module(m)\n"
            "print(sorted({'tensorflow', 'keras', 'tf_keras', 'transformers'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
