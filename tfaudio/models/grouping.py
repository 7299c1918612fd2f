"""Running a network over many patches in bounded groups, inside one graph."""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf


def in_groups(fn: Callable, inputs: tf.Tensor, max_group: int):
    """fn(inputs) computed over at most `max_group` rows at a time, results concatenated.

    inputs: [n, ...]; fn maps [k, ...] to a tensor or tuple of tensors with leading dim k.
    A batch of ordinary clips fits in one group and costs nothing extra; an hour-long file
    (7,500 YAMNet patches) would otherwise hold every patch's activations at once: several GB
    for the first convolutions. Groups are equal-sized (n split into ceil(n / max_group)
    parts, the last padded by at most one row per group) and run one after the other.
    """
    n = tf.shape(inputs)[0]
    steps = tf.maximum((n + max_group - 1) // max_group, 1)
    size = (n + steps - 1) // steps
    padded = tf.pad(inputs, [[0, steps * size - n]] + [[0, 0]] * (len(inputs.shape) - 1))
    grouped = tf.reshape(padded, tf.concat([[steps, size], tf.shape(inputs)[1:]], axis=0))
    sample = fn(inputs[:0])
    signature = tf.nest.map_structure(lambda t: tf.TensorSpec([None, *t.shape[1:]], t.dtype), sample)
    results = tf.map_fn(fn, grouped, fn_output_signature=signature, parallel_iterations=1)

    def ungroup(t):
        return tf.reshape(t, tf.concat([[steps * size], tf.shape(t)[2:]], axis=0))[:n]

    return tf.nest.map_structure(ungroup, results)
