"""The hand-crafted baseline: one named vector per clip.

Per frame: MFCCs, their deltas and second deltas (``librosa.feature.mfcc`` / ``delta``
conventions) and the spectral descriptors of :mod:`tfaudio.frontend`. Per clip: the mean and
standard deviation of each over the clip's valid frames, so a clip zero-padded into a batch
gives the same vector as the clip alone.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tfaudio.frontend import layers as frontend_layers
from tfaudio.frontend import ops as frontend
from tfaudio.models.base import FrameEmbeddings, Representation, check_batch
from tfaudio.models.handcrafted.config import (
    HandcraftedParams,
    feature_names,
    frame_feature_names,
    handcrafted_identity,
)

_HZ_DESCRIPTORS = ("centroid", "bandwidth", "rolloff")  # reported in kHz to keep scales close


@keras.saving.register_keras_serializable(package="tfaudio")
class HandcraftedFeatures(frontend_layers.ParamsLayer):
    """``waveform: float32 [batch, samples], lengths: int32 [batch] -> float32 [batch, features]``.

    ``lengths`` (optional) gives each clip's valid samples in a zero-padded batch; frames the
    clip would not have on its own are left out of the statistics. Columns follow
    :func:`feature_names`. A clip with no frames gives zeros.
    """

    params_class = HandcraftedParams

    def __init__(self, params: HandcraftedParams | None = None, **kwargs):
        super().__init__(params, **kwargs)
        scale = np.ones(len(frame_feature_names(self.params)), np.float32)
        for name in _HZ_DESCRIPTORS:
            scale[frame_feature_names(self.params).index(name)] = 1e-3
        self._scale = scale

    def frame_features(self, waveform, lengths=None):
        """-> (float32 [batch, frames, len(frame_feature_names)], bool [batch, frames] mask of
        the frames each clip has on its own)."""
        params = self.params
        frames = frontend.frame(waveform, params.stft)
        power = frontend.power_spectrum(frames, params.stft)
        total = tf.shape(frames)[1]
        if lengths is None:
            lengths = tf.fill(tf.shape(waveform)[:1], tf.shape(waveform)[1])
        valid = tf.minimum(frontend.num_frames(tf.cast(lengths, tf.int32), params.stft), total)
        mask = frontend.frame_mask(lengths, total, params.stft)

        log_mel = frontend.mel_from_spectrogram(power, params.mfcc.mel, mask)
        mfcc = frontend.mfcc_from_log_mel(log_mel, params.mfcc, valid)
        descriptors = frontend.spectral_descriptors(frames, tf.sqrt(power), params.descriptors)
        return tf.concat([mfcc, descriptors], axis=-1) * self._scale, mask

    def call(self, waveform, lengths=None):
        per_frame, mask = self.frame_features(waveform, lengths)
        weights = tf.cast(mask, tf.float32)[:, :, tf.newaxis]
        count = tf.maximum(tf.reduce_sum(weights, axis=1), 1.0)
        mean = tf.reduce_sum(per_frame * weights, axis=1) / count
        # Two passes: E[x^2] - E[x]^2 loses the spread of large-mean columns (c0) in float32.
        var = tf.reduce_sum(((per_frame - mean[:, tf.newaxis]) * weights) ** 2, axis=1) / count
        return tf.concat([mean, tf.sqrt(var)], axis=-1)


def _graph(params: HandcraftedParams):
    """One traced graph for any batch size and clip length (no retracing per batch)."""
    layer = HandcraftedFeatures(params)
    return tf.function(
        lambda waveform, clip_lengths: layer(waveform, clip_lengths),
        input_signature=[tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.int32)],
    )


def compute(
    waveforms: np.ndarray,
    lengths: np.ndarray | None = None,
    params: HandcraftedParams = HandcraftedParams(),
    batch_size: int = 64,
) -> np.ndarray:
    """float32 [clips, samples] (zero-padded) -> float32 [clips, len(feature_names(params))].

    ``lengths``: int [clips] valid samples per clip (default: all samples). Batches of
    ``batch_size`` clips run through one traced ``tf.function`` graph.
    """
    waveforms, lengths = check_batch(waveforms, lengths)
    run = _graph(params)
    out = [
        run(waveforms[i : i + batch_size], lengths[i : i + batch_size]).numpy()
        for i in range(0, len(waveforms), batch_size)
    ]
    return np.concatenate(out) if out else np.zeros((0, len(feature_names(params))), np.float32)


class HandcraftedRepresentation(Representation):
    """The baseline behind the common interface: frames are the per-frame MFCCs, deltas and
    descriptors (10 ms hop); the default "mean+std" pooling gives exactly the named vector of
    :func:`feature_names`."""

    name = "handcrafted"
    default_pooling = "mean+std"

    def __init__(self, params: HandcraftedParams = HandcraftedParams()):
        self.params = params
        self.sample_rate = params.sample_rate
        self.frame_hop_seconds = params.hop_length / params.sample_rate
        self.frame_names = frame_feature_names(params)
        self.dim = len(self.frame_names)
        layer = HandcraftedFeatures(params)
        self._graph = tf.function(
            layer.frame_features,
            input_signature=[tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.int32)],
        )

    def frames(self, waveforms: np.ndarray, lengths: np.ndarray) -> FrameEmbeddings:
        per_frame, mask = self._graph(tf.constant(waveforms, tf.float32), tf.constant(lengths, tf.int32))
        return FrameEmbeddings(per_frame.numpy(), mask.numpy())

    def identity(self) -> dict:
        return handcrafted_identity(self.params)
