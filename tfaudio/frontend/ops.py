"""Audio front end as Keras 3 layers over ``tf.signal``.

The front end lives inside the model graph, so training, embedding and an exported SavedModel
compute features the same way and a whole batch runs as one graph.

Every layer takes ``waveform: float32 [batch, samples]`` (mono, at ``sample_rate``) and is
configured by a frozen dataclass passed explicitly.

Conventions (chosen so that each feature equals its librosa 0.11 counterpart):

* Framing follows ``librosa.stft``: frame ``t`` covers ``fft_length`` samples starting at
  ``t * hop_length`` (after padding by ``fft_length // 2`` on each side when ``center``), and
  the ``window_length`` window sits in the middle of it, zero elsewhere. A frame is therefore
  centred on sample ``t * hop_length`` when ``center`` is true.
* Mel filterbanks are built in numpy to match ``librosa.filters.mel`` (HTK or Slaney scale,
  optional Slaney area normalisation). ``tf.signal.linear_to_mel_weight_matrix`` is not used:
  it only knows the HTK scale, spaces its triangles differently and always zeroes the DC bin.
* ``log="db"`` is ``librosa.power_to_db(S, ref=1.0, amin, top_db)``; MFCCs are a type-II DCT
  with orthonormal scaling of that, as ``librosa.feature.mfcc`` computes them.
* Spectral descriptors follow the ``librosa.feature.spectral_*`` definitions on the magnitude
  spectrogram; zero-crossing rate and RMS are computed on the same (unwindowed) frames.
"""

from __future__ import annotations

import math

import numpy as np

from tfaudio.quiet import tf  # TensorFlow imported without its start-up noise
from tfaudio.frontend.params import DescriptorParams, MelParams, MFCCParams, STFTParams


def num_frames(num_samples, params: STFTParams):
    """Frames produced for ``num_samples`` samples: an int, or int32 for a tensor."""
    if params.center:
        return 1 + num_samples // params.hop_length
    count = 1 + (num_samples - params.frame_length) // params.hop_length
    return tf.maximum(count, 0) if tf.is_tensor(count) else max(int(count), 0)


def frame_mask(lengths, total_frames, params: STFTParams) -> tf.Tensor:
    """bool [batch, total_frames]: frames a clip of ``lengths`` samples would have on its own.

    ``lengths``: int [batch] valid samples per clip of a zero-padded batch. With
    ``pad_mode="constant"`` these frames are bit-identical to those of the unpadded clip.
    """
    valid = num_frames(tf.cast(lengths, tf.int32), params)
    return tf.range(total_frames)[tf.newaxis, :] < valid[:, tf.newaxis]


def frame(waveform: tf.Tensor, params: STFTParams) -> tf.Tensor:
    """float32 [batch, samples] -> float32 [batch, frames, frame_length] (unwindowed)."""
    if params.center:
        pad = params.frame_length // 2
        waveform = tf.pad(waveform, [[0, 0], [pad, pad]], mode=params.pad_mode.upper())
    return tf.signal.frame(waveform, params.frame_length, params.hop_length, axis=-1)


def power_spectrum(frames: tf.Tensor, params: STFTParams) -> tf.Tensor:
    """float32 [batch, frames, frame_length] -> float32 [batch, frames, num_bins], |STFT|^2."""
    spectrum = tf.signal.rfft(frames * params.window_array(), fft_length=[params.frame_length])
    # re^2 + im^2 rather than tf.abs: complex abs goes through an overflow-safe hypot that costs
    # more than the FFT itself, and audio-scale values cannot overflow float32 here.
    return tf.math.real(spectrum) ** 2 + tf.math.imag(spectrum) ** 2


def magnitude(frames: tf.Tensor, params: STFTParams) -> tf.Tensor:
    """float32 [batch, frames, frame_length] -> float32 [batch, frames, num_bins], |STFT|."""
    return tf.sqrt(power_spectrum(frames, params))


def stft(waveform: tf.Tensor, params: STFTParams) -> tf.Tensor:
    """float32 [batch, samples] -> float32 [batch, frames, num_bins], |STFT| ** power."""
    power = power_spectrum(frame(waveform, params), params)
    if params.power == 2.0:
        return power
    if params.power == 1.0:
        return tf.sqrt(power)
    return power ** (params.power / 2.0)


def hz_to_mel(hz, scale: str = "slaney"):
    """Hz -> mel on the HTK scale or Slaney's (linear to 1 kHz, logarithmic above)."""
    hz = np.asarray(hz, dtype=np.float64)
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + hz / 700.0)
    linear = hz * 3.0 / 200.0  # 1 kHz -> 15 mel
    logarithmic = 15.0 + np.log(np.maximum(hz, 1e-12) / 1000.0) * 27.0 / np.log(6.4)
    return np.where(hz >= 1000.0, logarithmic, linear)


def mel_to_hz(mel, scale: str = "slaney"):
    """Inverse of :func:`hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    linear = mel * 200.0 / 3.0
    logarithmic = 1000.0 * np.exp((mel - 15.0) * np.log(6.4) / 27.0)
    return np.where(mel >= 15.0, logarithmic, linear)


def mel_filterbank(params: MelParams) -> np.ndarray:
    """float32 [num_bins, num_mel_bins]: triangles over linear FFT bins (librosa.filters.mel.T).

    Filter ``m`` rises from edge ``m`` to edge ``m + 1`` and falls to edge ``m + 2``, the edges
    being ``num_mel_bins + 2`` points evenly spaced in mel between fmin and fmax.
    """
    edges_mel = np.linspace(
        hz_to_mel(params.fmin, params.mel_scale),
        hz_to_mel(params.upper_edge, params.mel_scale),
        params.num_mel_bins + 2,
    )
    edges = mel_to_hz(edges_mel, params.mel_scale)
    freqs = params.stft.bin_frequencies()
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None, :] - lower) / (centre - lower)
    falling = (upper - freqs[None, :]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    if params.norm == "slaney":
        weights *= 2.0 / (upper - lower)
    return weights.T.astype(np.float32)


def _masked_max(values: tf.Tensor, mask: tf.Tensor | None) -> tf.Tensor:
    """float32 [batch, frames, k] -> [batch, 1, 1]: max over the valid frames of each clip."""
    if mask is not None:
        values = tf.where(mask[:, :, tf.newaxis], values, -np.inf)
    return tf.reduce_max(values, axis=[1, 2], keepdims=True)


def log_compress(spectrogram: tf.Tensor, params: MelParams, mask=None) -> tf.Tensor:
    """Apply ``params.log`` to a non-negative float32 [batch, frames, bins] tensor.

    ``mask``: optional bool [batch, frames]; ``top_db`` is measured from the loudest valid frame,
    so zero padding after a clip does not change its values.
    """
    if params.log is None:
        return spectrogram
    if params.log == "natural":
        return tf.math.log(spectrogram + params.log_offset)

    def decibels(power):
        return (10.0 / math.log(10.0)) * tf.math.log(tf.maximum(power, params.amin))

    db = decibels(spectrogram)
    if params.top_db is not None:
        # The log is monotonic: find the peak before taking it, so the log runs once.
        db = tf.maximum(db, decibels(_masked_max(spectrogram, mask)) - params.top_db)
    return db


def mel_from_spectrogram(spectrogram: tf.Tensor, params: MelParams, mask=None) -> tf.Tensor:
    """float32 [batch, frames, num_bins] (|STFT| ** stft.power) -> [batch, frames, num_mel_bins]."""
    mel = tf.tensordot(spectrogram, mel_filterbank(params), axes=1)
    return log_compress(mel, params, mask)


def savgol_coefficients(width: int, order: int) -> np.ndarray:
    """float64 [width]: ``h`` with ``d^order x / dt^order [t] = sum_n h[n] x[t - width // 2 + n]``.

    The ``order``-th derivative at the centre of a least-squares polynomial of degree ``order``
    fitted to ``width`` frames: ``scipy.signal.savgol_filter(polyorder=order, deriv=order)``,
    which is what ``librosa.feature.delta`` applies.
    """
    offsets = np.arange(width) - width // 2
    vandermonde = offsets[:, None] ** np.arange(order + 1)[None, :]
    return math.factorial(order) * np.linalg.pinv(vandermonde)[order]


def delta(features: tf.Tensor, width: int = 9, order: int = 1, valid_frames=None) -> tf.Tensor:
    """float32 [batch, frames, channels] -> same shape, ``librosa.feature.delta`` along frames.

    Inside each clip's valid frames the filter is applied where it fits; the first and last
    ``width // 2`` frames repeat the nearest full-window value, which is what savgol's
    ``mode="interp"`` gives when the polynomial degree equals the derivative order.
    ``valid_frames``: optional int32 [batch] so a zero-padded clip gets the same deltas as the
    clip alone. A clip shorter than ``width`` frames fills the window by repeating its last
    frame (librosa refuses such input), never with the batch's padding frames.
    """
    half = width // 2
    total = tf.shape(features)[1]
    if valid_frames is None:
        valid_frames = tf.fill(tf.shape(features)[:1], total)
    # Frames past each clip's end repeat its last valid frame, so what fills a short clip's
    # window does not depend on how much padding the batch added.
    span = tf.maximum(total, width)
    ends = tf.maximum(tf.minimum(valid_frames, total), 1)[:, tf.newaxis] - 1
    padded = tf.gather(features, tf.minimum(tf.range(span)[tf.newaxis, :], ends), batch_dims=1)
    valid = span - 2 * half
    centre = tf.add_n(
        [
            float(h) * padded[:, k : k + valid, :]
            for k, h in enumerate(savgol_coefficients(width, order))
        ]
    )  # centre[:, j] is the derivative at frame j + half
    last = tf.maximum(tf.minimum(valid_frames, total) - width, 0)
    index = tf.minimum(tf.maximum(tf.range(total)[tf.newaxis, :] - half, 0), last[:, tf.newaxis])
    return tf.gather(centre, index, batch_dims=1)


def dct_matrix(num_inputs: int, num_outputs: int, norm: str | None = "ortho") -> np.ndarray:
    """float32 [num_inputs, num_outputs]: the first ``num_outputs`` DCT-II basis vectors.

    ``x @ dct_matrix(n, k, norm)`` equals ``scipy.fft.dct(x, type=2, norm=norm)[..., :k]``.
    Only ``num_mfcc`` of the ``num_mel_bins`` coefficients are kept, so one small matrix product
    is cheaper than ``tf.signal.dct`` (a padded FFT of the full length followed by a slice).
    """
    n = np.arange(num_inputs)[:, None]
    k = np.arange(num_outputs)[None, :]
    basis = 2.0 * np.cos(np.pi * k * (2 * n + 1) / (2 * num_inputs))
    if norm == "ortho":
        basis *= np.where(k == 0, np.sqrt(1.0 / (4 * num_inputs)), np.sqrt(1.0 / (2 * num_inputs)))
    return basis.astype(np.float32)


def mfcc_from_log_mel(log_mel: tf.Tensor, params: MFCCParams, valid_frames=None) -> tf.Tensor:
    """float32 [batch, frames, num_mel_bins] -> float32 [batch, frames, num_features].

    Columns: ``num_mfcc`` coefficients, then their deltas, then their second derivatives
    (as many as ``params.deltas`` asks for).
    """
    basis = dct_matrix(params.mel.num_mel_bins, params.num_mfcc, params.dct_norm)
    mfcc = tf.tensordot(log_mel, basis, axes=1)
    derivatives = [
        delta(mfcc, params.delta_width, order, valid_frames)
        for order in range(1, params.deltas + 1)
    ]
    return tf.concat([mfcc, *derivatives], axis=-1)


def _contrast_bands(params: DescriptorParams) -> list[tuple[np.ndarray, int]]:
    """(bins averaged, how many sorted bins make the peak / valley) per band, as librosa picks.

    Band k spans [edge_k, edge_k+1] with edges 0, fmin, 2 fmin, ... plus the bin just below;
    every band but the top one then drops its highest bin, the top band runs to Nyquist. The
    quantile count is taken before the drop, as librosa does.
    """
    freqs = params.stft.bin_frequencies()
    edges = [0.0] + [params.contrast_fmin * 2.0**k for k in range(params.contrast_bands + 1)]
    bands = []
    for k in range(params.contrast_bands + 1):
        members = np.flatnonzero((freqs >= edges[k]) & (freqs <= edges[k + 1]))
        start = members[0] - 1 if k > 0 else members[0]
        stop = len(freqs) if k == params.contrast_bands else members[-1] + 1
        count = max(int(np.rint(params.contrast_quantile * (stop - start))), 1)
        if k < params.contrast_bands:
            stop -= 1
        bands.append((np.arange(start, stop), count))
    return bands


def spectral_descriptors(frames: tf.Tensor, mag: tf.Tensor, params: DescriptorParams) -> tf.Tensor:
    """Per-frame descriptors, columns named by ``params.names``.

    Args:
        frames: float32 [batch, frames, frame_length], unwindowed (from :func:`frame`).
        mag: float32 [batch, frames, num_bins], |STFT| of those frames.
    Returns:
        float32 [batch, frames, len(params.names)]. Frequencies in Hz, contrast in librosa's
        units (``10 log10`` of magnitude ratios), zcr as crossings per sample, rms linear.
        Silent frames give centroid = bandwidth = rolloff = contrast = zcr = rms = 0 and
        flatness = 1.
    """
    freqs = tf.constant(params.stft.bin_frequencies(), tf.float32)
    total = tf.reduce_sum(mag, axis=-1, keepdims=True)
    weights = tf.math.divide_no_nan(mag, total)  # silent frames stay all-zero
    centroid = tf.reduce_sum(weights * freqs, axis=-1, keepdims=True)
    bandwidth = tf.sqrt(tf.reduce_sum(weights * (freqs - centroid) ** 2, axis=-1, keepdims=True))

    cumulative = tf.cumsum(mag, axis=-1)
    below = tf.cast(cumulative < params.rolloff_percent * cumulative[..., -1:], tf.float32)
    rolloff = tf.reduce_sum(below, axis=-1, keepdims=True) * (
        params.stft.sample_rate / params.stft.frame_length
    )

    power = tf.maximum(mag**2, params.amin)
    flatness = tf.exp(tf.reduce_mean(tf.math.log(power), axis=-1, keepdims=True)) / tf.reduce_mean(
        power, axis=-1, keepdims=True
    )

    contrast = []
    for bins, count in _contrast_bands(params):
        ordered = tf.sort(tf.gather(mag, bins, axis=-1), axis=-1)
        valley = tf.reduce_mean(ordered[..., :count], axis=-1, keepdims=True)
        peak = tf.reduce_mean(ordered[..., -count:], axis=-1, keepdims=True)
        # librosa applies power_to_db to magnitudes: 10 log10(peak / valley).
        contrast.append(
            (10.0 / math.log(10.0))
            * (
                tf.math.log(tf.maximum(peak, params.amin))
                - tf.math.log(tf.maximum(valley, params.amin))
            )
        )

    negative = frames < -params.zcr_threshold
    crossings = tf.cast(tf.not_equal(negative[..., 1:], negative[..., :-1]), tf.float32)
    zcr = tf.reduce_sum(crossings, axis=-1, keepdims=True) / params.stft.frame_length
    rms = tf.sqrt(tf.reduce_mean(frames**2, axis=-1, keepdims=True))
    return tf.concat([centroid, bandwidth, rolloff, flatness, *contrast, zcr, rms], axis=-1)
