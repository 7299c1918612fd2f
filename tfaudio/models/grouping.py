"""Running a network over many patches in bounded groups, inside one graph."""

from __future__ import annotations

from collections.abc import Callable

from tfaudio.quiet import tf  # TensorFlow imported without its start-up noise


def in_groups(fn: Callable, inputs: tf.Tensor, max_group: int, signature):
    """fn(inputs) computed over at most `max_group` rows at a time, results concatenated.

    inputs: [n, ...]; fn maps [k, ...] to a tensor or tuple of tensors with leading dim k, as
    `signature` (a tf.TensorSpec, or a tuple of them, with leading dim None) describes. The
    signature is given rather than found by calling fn on an empty batch, which would trace the
    whole network a second time (0.3 s of YAMNet's first call).
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
    results = tf.map_fn(fn, grouped, fn_output_signature=signature, parallel_iterations=1)

    def ungroup(t):
        return tf.reshape(t, tf.concat([[steps * size], tf.shape(t)[2:]], axis=0))[:n]

    return tf.nest.map_structure(ungroup, results)


def waveform_graph(forward: Callable) -> Callable:
    """`forward(waveforms, lengths)` as a tf.function traced once for any batch size and length:
    waveforms float32 [batch, samples], lengths int32 [batch].

    AutoGraph is off: `forward` has no Python control flow on tensors, and rewriting its source
    (and every function it calls) took 1.1 s of YAMNet's 1.6 s first call on the 2-core machines.
    """
    return tf.function(
        forward,
        autograph=False,
        input_signature=(
            tf.TensorSpec([None, None], tf.float32, name="waveforms"),
            tf.TensorSpec([None], tf.int32, name="lengths"),
        ),
    )


def leading_mask(items: tf.Tensor, counts: tf.Tensor) -> tf.Tensor:
    """bool [batch, n]: True for the first `counts[b]` of clip b's n items ([batch, n, ...])."""
    return tf.range(tf.shape(items)[1])[tf.newaxis, :] < counts[:, tf.newaxis]


def over_masked(fn: Callable, items: tf.Tensor, mask: tf.Tensor, max_group: int, widths):
    """fn over the items [batch, n, ...] where `mask` (bool [batch, n]) is True, `max_group` at a
    time (:func:`in_groups`); each float32 result [valid, width] back at its place in [batch, n, width],
    zeros elsewhere. `widths`: an int, or a tuple of ints when fn returns a tuple.

    Only the clips' own items go through the network, so a short clip in a batch of long ones
    costs its own items, and padding never reaches the network.
    """
    where = tf.where(mask)  # int64 [valid, 2]
    signature = tf.nest.map_structure(lambda width: tf.TensorSpec([None, width], tf.float32), widths)
    results = in_groups(fn, tf.gather_nd(items, where), max_group, signature)
    grid = tf.shape(mask, out_type=tf.int64)
    return tf.nest.map_structure(
        lambda result, width: tf.scatter_nd(where, result, tf.concat([grid, [width]], axis=0)), results, widths
    )
