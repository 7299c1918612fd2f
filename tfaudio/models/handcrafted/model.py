"""The hand-crafted baseline: one named vector per clip.

Per frame: MFCCs, their deltas and second deltas (``librosa.feature.mfcc`` / ``delta``
conventions) and the spectral descriptors of :mod:`tfaudio.frontend`. Per clip: the mean and
standard deviation of each over the clip's valid frames, so a clip zero-padded into a batch
gives the same vector as the clip alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from tfaudio.quiet import keras, tf  # TensorFlow imported without its start-up noise
from tfaudio.data.windows import Window, iter_clip_windows, kept_frames
from tfaudio.frontend import layers as frontend_layers
from tfaudio.frontend import ops as frontend
from tfaudio.frontend.pooling import pool_tensor
from tfaudio.models.base import FrameEmbeddings, FrameGraph, Representation, check_batch
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

    def frame_features(self, waveform, lengths=None, peak=None):
        """-> (float32 [batch, frames, len(frame_feature_names)], bool [batch, frames] mask of
        the frames each clip has on its own).

        peak: float32 [batch], for windows of longer clips: the mel power of the whole clip's
        loudest frame (`mel_peaks`), which top_db counts from instead of the window's own; NaN
        for a row that is a whole clip (it counts from its own, as without `peak`).
        """
        params = self.params
        frames = frontend.frame(waveform, params.stft)
        power = frontend.power_spectrum(frames, params.stft)
        total = tf.shape(frames)[1]
        if lengths is None:
            lengths = tf.fill(tf.shape(waveform)[:1], tf.shape(waveform)[1])
        valid = tf.minimum(frontend.num_frames(tf.cast(lengths, tf.int32), params.stft), total)
        mask = frontend.frame_mask(lengths, total, params.stft)

        mel = params.mfcc.mel
        if peak is None or mel.top_db is None:
            log_mel = frontend.mel_from_spectrogram(power, mel, mask)
        else:  # the operations of log_compress, with the peak given (bit for bit the same)
            unclipped = dataclasses.replace(mel, top_db=None)
            mel_power = tf.tensordot(power, frontend.mel_filterbank(mel), axes=1)
            own = tf.reduce_max(tf.where(mask[:, :, tf.newaxis], mel_power, -np.inf), axis=[1, 2], keepdims=True)
            peak = tf.reshape(peak, [-1, 1, 1])
            floor = frontend.log_compress(tf.where(tf.math.is_nan(peak), own, peak), unclipped) - mel.top_db
            log_mel = tf.maximum(frontend.log_compress(mel_power, unclipped), floor)
        mfcc = frontend.mfcc_from_log_mel(log_mel, params.mfcc, valid)
        descriptors = frontend.spectral_descriptors(frames, tf.sqrt(power), params.descriptors)
        return tf.concat([mfcc, descriptors], axis=-1) * self._scale, mask

    def mel_peaks(self, waveform, lengths=None):
        """-> float32 [batch, frames]: each frame's largest mel power (what top_db counts from)."""
        power = frontend.power_spectrum(frontend.frame(waveform, self.params.stft), self.params.stft)
        return tf.reduce_max(tf.tensordot(power, frontend.mel_filterbank(self.params.mfcc.mel), axes=1), axis=-1)

    def call(self, waveform, lengths=None):
        per_frame, mask = self.frame_features(waveform, lengths)
        return pool_tensor(per_frame, mask, "mean+std")


def _graph(params: HandcraftedParams):
    """One traced graph for any batch size and clip length (no retracing per batch)."""
    layer = HandcraftedFeatures(params)
    return tf.function(
        lambda waveform, clip_lengths: layer(waveform, clip_lengths),
        autograph=False,  # no Python control flow on tensors; AutoGraph would only slow the trace
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
        self.window_geometry = params.window_geometry
        layer = HandcraftedFeatures(params)
        self._layer = layer
        batch = [tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.int32)]
        # AutoGraph off: the features use no Python control flow on tensors, and rewriting their
        # source is most of the trace time.
        self._graph = tf.function(layer.frame_features, input_signature=batch, autograph=False)
        self._graph_with_peak = tf.function(
            layer.frame_features, input_signature=[*batch, tf.TensorSpec([None], tf.float32)], autograph=False
        )
        self._peaks = tf.function(layer.mel_peaks, input_signature=batch, autograph=False)

    def frames(self, waveforms: np.ndarray, lengths: np.ndarray) -> FrameEmbeddings:
        waveforms, lengths = check_batch(waveforms, lengths)  # a ValueError naming what is wrong
        per_frame, mask = self._graph(tf.constant(waveforms, tf.float32), tf.constant(lengths, tf.int32))
        return FrameEmbeddings(per_frame.numpy(), mask.numpy())

    def frame_graph(self) -> FrameGraph:
        """`HandcraftedFeatures.frame_features`, what `frames` runs (no variables). On a whole clip
        top_db counts from the clip's own loudest frame, as windows carrying clip_state do."""
        return FrameGraph(lambda waveforms, lengths: self._layer.frame_features(waveforms, lengths))

    def window_frames(self, waveforms: np.ndarray, lengths: np.ndarray,
                      states: Sequence[float | None]) -> FrameEmbeddings:
        """states: per row the whole clip's loudest frame power (`clip_state`), None for a whole
        clip, whose top_db counts from its own loudest frame as in `frames`."""
        if all(state is None for state in states):
            return self.frames(waveforms, lengths)  # the graph without peaks: `frames`'s bits exactly
        waveforms, lengths = check_batch(waveforms, lengths)
        peaks = np.array([np.nan if state is None else state for state in states], np.float32)
        per_frame, mask = self._graph_with_peak(tf.constant(waveforms, tf.float32), tf.constant(lengths, tf.int32),
                                                tf.constant(peaks, tf.float32))
        return FrameEmbeddings(per_frame.numpy(), mask.numpy())

    def clip_state(self, windows: Sequence[Window]) -> float:
        """The mel power of the clip's loudest frame, which top_db must count from for the
        windows' frames to equal the clip's. Decodes the clip once more, window by window (the
        memory of one window)."""
        peak = 0.0
        for window, samples in iter_clip_windows(windows):
            frame_peaks = self.mel_peaks(samples[np.newaxis], np.array([len(samples)], np.int32))[0]
            kept = kept_frames(window, frame_peaks[: 1 + len(samples) // self.params.hop_length])
            peak = max(peak, float(kept.max())) if len(kept) else peak
        return peak

    def mel_peaks(self, waveforms: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """float32 [batch, samples], int32 [batch] -> float32 [batch, frames], each frame's largest
        mel power; a long clip's reference is the largest over its frames."""
        return self._peaks(tf.constant(waveforms, tf.float32), tf.constant(lengths, tf.int32)).numpy()

    def identity(self) -> dict:
        return handcrafted_identity(self.params)
