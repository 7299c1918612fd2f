"""The hand-crafted baseline: one named vector per clip.

Per frame: MFCCs, their deltas and second deltas (``librosa.feature.mfcc`` / ``delta``
conventions) and the spectral descriptors of :mod:`tfaudio.frontend`. Per clip: the mean and
standard deviation of each over the clip's valid frames, so a clip zero-padded into a batch
gives the same vector as the clip alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from tfaudio import frontend
from tfaudio.audio import AudioError
from tfaudio.data import Dataset, Problem, iter_batches

_HZ_DESCRIPTORS = ("centroid", "bandwidth", "rolloff")  # reported in kHz to keep scales close


@dataclasses.dataclass(frozen=True)
class HandcraftedParams:
    """Settings of the baseline vector (defaults: 25 ms Hann window, 10 ms hop at 16 kHz).

    Frames are centred with zero padding (librosa's default), so even a clip shorter than one
    window has a frame, and a padded clip's frames equal its own.
    """

    sample_rate: int = 16000
    window_length: int = 400
    hop_length: int = 160
    fft_length: int = 512
    num_mel_bins: int = 64
    fmin: float = 0.0
    fmax: float | None = None
    num_mfcc: int = 13
    deltas: int = 2
    delta_width: int = 9

    @property
    def stft(self) -> frontend.STFTParams:
        """Framing shared by every per-frame feature (magnitude)."""
        return frontend.STFTParams(
            sample_rate=self.sample_rate,
            window_length=self.window_length,
            hop_length=self.hop_length,
            fft_length=self.fft_length,
            center=True,
        )

    @property
    def mfcc(self) -> frontend.MFCCParams:
        mel = frontend.MelParams(
            stft=dataclasses.replace(self.stft, power=2.0),
            num_mel_bins=self.num_mel_bins,
            fmin=self.fmin,
            fmax=self.fmax,
        )
        return frontend.MFCCParams(
            mel=mel, num_mfcc=self.num_mfcc, deltas=self.deltas, delta_width=self.delta_width
        )

    @property
    def descriptors(self) -> frontend.DescriptorParams:
        return frontend.DescriptorParams(stft=self.stft)


def frame_feature_names(params: HandcraftedParams) -> list[str]:
    """Names of the per-frame columns pooled by :class:`HandcraftedFeatures`, in order."""
    prefixes = ["mfcc", "dmfcc", "ddmfcc"][: 1 + params.deltas]
    mfcc = [f"{prefix}_{k:02d}" for prefix in prefixes for k in range(params.num_mfcc)]
    return mfcc + params.descriptors.names


def feature_names(params: HandcraftedParams = HandcraftedParams()) -> list[str]:
    """Column names of the clip vector: ``<frame feature>_mean``, ``<frame feature>_std`` pairs.

    Units: MFCCs from dB mel power; centroid, bandwidth and rolloff in kHz; flatness, zcr and
    rms as in :func:`tfaudio.frontend.spectral_descriptors`.
    """
    return [f"{name}_{stat}" for name in frame_feature_names(params) for stat in ("mean", "std")]


@keras.saving.register_keras_serializable(package="tfaudio")
class HandcraftedFeatures(frontend.ParamsLayer):
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

    def call(self, waveform, lengths=None):
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
        per_frame = tf.concat([mfcc, descriptors], axis=-1) * self._scale  # [batch, frames, cols]

        weights = tf.cast(mask, tf.float32)[:, :, tf.newaxis]
        count = tf.maximum(tf.cast(valid, tf.float32), 1.0)[:, tf.newaxis]
        mean = tf.reduce_sum(per_frame * weights, axis=1) / count
        # Two passes: E[x^2] - E[x]^2 loses the spread of large-mean columns (c0) in float32.
        var = tf.reduce_sum(((per_frame - mean[:, tf.newaxis]) * weights) ** 2, axis=1) / count
        pooled = tf.stack([mean, tf.sqrt(var)], axis=-1)  # [batch, columns, (mean, std)]
        return tf.reshape(pooled, [tf.shape(waveform)[0], 2 * len(self._scale)])


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
    waveforms = np.asarray(waveforms, np.float32)
    if waveforms.ndim != 2:
        raise ValueError(f"waveforms must be [clips, samples], got shape {waveforms.shape}")
    if lengths is None:
        lengths = np.full(len(waveforms), waveforms.shape[1], np.int32)
    lengths = np.asarray(lengths, np.int32)
    if (
        lengths.shape != (len(waveforms),)
        or np.any(lengths > waveforms.shape[1])
        or np.any(lengths < 0)
    ):
        raise ValueError(
            f"lengths must be [clips] = ({len(waveforms)},) values in 0..{waveforms.shape[1]}"
        )
    run = _graph(params)
    out = [
        run(waveforms[i : i + batch_size], lengths[i : i + batch_size]).numpy()
        for i in range(0, len(waveforms), batch_size)
    ]
    return np.concatenate(out) if out else np.zeros((0, len(feature_names(params))), np.float32)


# --------------------------------------------------------------------------- over a dataset


@dataclass(frozen=True)
class ExtractConfig:
    """How `extract` walks a dataset.

    max_duration: seconds of each clip to use (None: all of it); strict: stop at the first
    unreadable file instead of skipping it; workers: decoding threads.
    """

    batch_size: int = 32
    max_duration: float | None = None
    strict: bool = False
    workers: int = 4


@dataclass(frozen=True)
class FeatureTable:
    """frame: one row per readable clip: file, label, fold, group, then `feature_columns`.
    skipped: the clips that could not be decoded, with the reason."""

    frame: pd.DataFrame
    feature_columns: tuple[str, ...]
    skipped: tuple[Problem, ...]

    @property
    def matrix(self) -> np.ndarray:
        """float32 [clips, features]."""
        return self.frame[list(self.feature_columns)].to_numpy(np.float32)


def extract(
    dataset: Dataset,
    params: HandcraftedParams = HandcraftedParams(),
    config: ExtractConfig = ExtractConfig(),
    progress: Callable[[int], None] | None = None,
) -> FeatureTable:
    """The baseline vector of every clip, computed in batches in one TensorFlow graph.

    Clips are decoded in background threads while the previous batch runs; padded batches
    carry per-clip lengths, so padding never enters the statistics.
    """
    run = _graph(params)
    skipped: list[Problem] = []

    def on_error(err: AudioError) -> None:
        skipped.append(Problem(err.path, err.problem))
        if progress:
            progress(1)

    order, vectors = [], []
    batches = iter_batches(
        dataset.clips,
        params.sample_rate,
        config.batch_size,
        max_duration=config.max_duration,
        on_error=None if config.strict else on_error,
        workers=config.workers,
    )
    for batch in batches:
        vectors.append(run(tf.constant(batch.waveforms), tf.constant(batch.lengths)).numpy())
        order.extend(batch.indices.tolist())
        if progress:
            progress(len(batch.indices))
    names = tuple(feature_names(params))
    clips = [dataset.clips[i] for i in order]
    frame = pd.DataFrame(
        {
            "file": [dataset.relative(c) for c in clips],
            "label": [c.label for c in clips],
            "fold": pd.array([c.fold for c in clips], dtype="Int64"),
            "group": [c.group for c in clips],
        }
    )
    values = np.concatenate(vectors) if vectors else np.zeros((0, len(names)), np.float32)
    frame = pd.concat([frame, pd.DataFrame(values, columns=list(names))], axis=1)
    return FeatureTable(frame=frame, feature_columns=names, skipped=tuple(skipped))
