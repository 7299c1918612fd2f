"""Front-end configuration: frozen dataclasses only, no TensorFlow.

Kept apart from the TensorFlow code so that anything needing only the settings (the embedding
store computing a cache key, the CLI listing models) can import them without TensorFlow.
"""

from __future__ import annotations

import dataclasses
import typing

import numpy as np

_WINDOWS = {"hann": 0.5, "hamming": 0.54}  # a in w[n] = a - (1 - a) cos(2 pi n / N)


class SecondsFraming:
    """Sample counts derived from settings given in seconds, as YAMNet's and VGGish's releases
    give them. For frozen dataclasses with fields sample_rate, stft_window_seconds,
    stft_hop_seconds, mel_min_hz and mel_max_hz (the numbers in the docstrings are those
    models' values)."""

    @property
    def stft_window_samples(self) -> int:
        """400: samples per STFT frame."""
        return round(self.sample_rate * self.stft_window_seconds)

    @property
    def stft_hop_samples(self) -> int:
        """160: samples between STFT frames."""
        return round(self.sample_rate * self.stft_hop_seconds)

    @property
    def fft_length(self) -> int:
        """512: the next power of two at or above the window (as both releases compute it)."""
        return 1 << (self.stft_window_samples - 1).bit_length()

    @property
    def num_spectrogram_bins(self) -> int:
        """257: rfft bins of one frame."""
        return self.fft_length // 2 + 1

    def frames_in(self, seconds: float) -> int:
        """STFT frames in `seconds` (96 in 0.96 s): how a window or hop given in seconds is counted."""
        return round(seconds / self.stft_hop_seconds)

    def samples_for_frames(self, frames: int) -> int:
        """The shortest waveform giving `frames` STFT frames, ``(frames - 1) * hop + window``.

        Counting in samples gives the releases' ``window + stft_window - stft_hop`` seconds
        without float truncation.
        """
        return (frames - 1) * self.stft_hop_samples + self.stft_window_samples

    def check_mel_range(self) -> None:
        """Raises ValueError unless 0 <= mel_min_hz < mel_max_hz <= sample_rate / 2."""
        if not 0 <= self.mel_min_hz < self.mel_max_hz <= self.sample_rate / 2:
            raise ValueError(
                f"need 0 <= mel_min_hz < mel_max_hz <= sample_rate / 2, got {self.mel_min_hz}, "
                f"{self.mel_max_hz}, {self.sample_rate}"
            )


@dataclasses.dataclass(frozen=True)
class STFTParams:
    """Framing and short-time Fourier transform.

    Attributes:
        sample_rate: Hz of the incoming waveform.
        window_length: samples in the analysis window (400 = 25 ms at 16 kHz).
        hop_length: samples between frame starts (160 = 10 ms at 16 kHz).
        fft_length: frame and FFT size; ``None`` means the next power of two >= window_length.
        window: "hann" or "hamming", periodic (``scipy.signal.get_window`` default).
        center: pad ``fft_length // 2`` samples on both sides so frame ``t`` is centred on
            sample ``t * hop_length`` (librosa's default); otherwise frames start at sample 0.
        pad_mode: "constant" (zeros, librosa's default) or "reflect" (needs more than
            ``fft_length // 2`` samples). Only "constant" makes a zero-padded clip's frames
            identical to the clip's own frames, which masked pooling relies on.
        power: 1.0 for magnitude, 2.0 for power.
    """

    sample_rate: int = 16000
    window_length: int = 400
    hop_length: int = 160
    fft_length: int | None = None
    window: str = "hann"
    center: bool = False
    pad_mode: str = "constant"
    power: float = 1.0

    def __post_init__(self):
        if self.window not in _WINDOWS:
            raise ValueError(f"window must be one of {sorted(_WINDOWS)}, got {self.window!r}")
        if self.pad_mode not in ("constant", "reflect"):
            raise ValueError(f"pad_mode must be 'constant' or 'reflect', got {self.pad_mode!r}")
        if self.frame_length < self.window_length:
            raise ValueError(
                f"fft_length={self.fft_length} is shorter than window_length={self.window_length}"
            )

    @property
    def frame_length(self) -> int:
        """Samples per frame, which is also the FFT size."""
        if self.fft_length is not None:
            return self.fft_length
        return 1 << max(self.window_length - 1, 0).bit_length()

    @property
    def num_bins(self) -> int:
        return self.frame_length // 2 + 1

    def bin_frequencies(self) -> np.ndarray:
        """float64 [num_bins]: centre frequency of each FFT bin in Hz."""
        return np.arange(self.num_bins) * (self.sample_rate / self.frame_length)

    def window_array(self) -> np.ndarray:
        """float32 [frame_length]: the periodic window, zero-padded on both sides to the frame."""
        a = _WINDOWS[self.window]
        n = np.arange(self.window_length)
        window = a - (1.0 - a) * np.cos(2.0 * np.pi * n / self.window_length)
        left = (self.frame_length - self.window_length) // 2
        right = self.frame_length - self.window_length - left
        return np.pad(window, (left, right)).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class MelParams:
    """Mel spectrogram and its logarithm.

    Attributes:
        stft: framing; ``stft.power`` says what the filterbank sums (2.0: power, librosa's
            default for ``melspectrogram``).
        num_mel_bins: number of triangular filters.
        fmin, fmax: lowest and highest filter edges in Hz; ``fmax=None`` means sample_rate / 2.
        mel_scale: "slaney" (librosa's default, linear below 1 kHz) or "htk".
        norm: "slaney" scales each triangle to unit area (librosa's default) or ``None``.
        log: "db" for ``10 * log10(max(S, amin))`` clipped at ``top_db`` below the clip's
            maximum (``librosa.power_to_db`` with ref=1.0), "natural" for ``log(S + log_offset)``
            (the YAMNet / VGGish convention), or ``None`` for the linear mel spectrogram.
        amin, top_db: floor and dynamic range for ``log="db"``; ``top_db=None`` disables the clip.
        log_offset: offset for ``log="natural"``.
    """

    stft: STFTParams = STFTParams(power=2.0)
    num_mel_bins: int = 64
    fmin: float = 125.0
    fmax: float | None = 7500.0
    mel_scale: str = "slaney"
    norm: str | None = "slaney"
    log: str | None = "db"
    amin: float = 1e-10
    top_db: float | None = 80.0
    log_offset: float = 1e-6

    def __post_init__(self):
        if self.mel_scale not in ("slaney", "htk"):
            raise ValueError(f"mel_scale must be 'slaney' or 'htk', got {self.mel_scale!r}")
        if self.norm not in ("slaney", None):
            raise ValueError(f"norm must be 'slaney' or None, got {self.norm!r}")
        if self.log not in ("db", "natural", None):
            raise ValueError(f"log must be 'db', 'natural' or None, got {self.log!r}")
        if not 0.0 <= self.fmin < self.upper_edge <= self.stft.sample_rate / 2:
            raise ValueError(
                f"need 0 <= fmin < fmax <= sample_rate / 2, got fmin={self.fmin}, "
                f"fmax={self.upper_edge}, sample_rate={self.stft.sample_rate}"
            )

    @property
    def upper_edge(self) -> float:
        """fmax in Hz with ``None`` resolved to the Nyquist frequency."""
        return self.stft.sample_rate / 2 if self.fmax is None else self.fmax


def centred_power_mel(sample_rate: int, window_length: int, hop_length: int, **mel) -> MelParams:
    """MelParams over centred frames of power (librosa's ``melspectrogram`` conventions);
    `mel`: the other MelParams fields (num_mel_bins, fmin, fmax, top_db, ...)."""
    stft = STFTParams(
        sample_rate=sample_rate, window_length=window_length, hop_length=hop_length, center=True, power=2.0
    )
    return MelParams(stft=stft, **mel)


@dataclasses.dataclass(frozen=True)
class MFCCParams:
    """MFCCs from the log-mel spectrogram, optionally with their time derivatives.

    Attributes:
        mel: the log-mel spectrogram the DCT is taken over (``mel.log`` must not be None).
        num_mfcc: coefficients kept, from c0 upwards.
        dct_norm: "ortho" (librosa's default) or ``None`` (unscaled DCT-II).
        deltas: 0, 1 (append first derivatives) or 2 (also append second derivatives).
        delta_width: odd number of frames in the Savitzky-Golay window of ``librosa.feature.delta``.
    """

    mel: MelParams = MelParams()
    num_mfcc: int = 13
    dct_norm: str | None = "ortho"
    deltas: int = 0
    delta_width: int = 9

    def __post_init__(self):
        if self.mel.log is None:
            raise ValueError("MFCCs need a logarithmic mel spectrogram: set mel.log")
        if not 0 < self.num_mfcc <= self.mel.num_mel_bins:
            raise ValueError(f"num_mfcc must be in 1..{self.mel.num_mel_bins}, got {self.num_mfcc}")
        if self.dct_norm not in ("ortho", None):
            raise ValueError(f"dct_norm must be 'ortho' or None, got {self.dct_norm!r}")
        if self.deltas not in (0, 1, 2):
            raise ValueError(f"deltas must be 0, 1 or 2, got {self.deltas}")
        if self.delta_width < 3 or self.delta_width % 2 == 0:
            raise ValueError(f"delta_width must be odd and >= 3, got {self.delta_width}")

    @property
    def num_features(self) -> int:
        return self.num_mfcc * (1 + self.deltas)


@dataclasses.dataclass(frozen=True)
class DescriptorParams:
    """Per-frame spectral descriptors (librosa's defaults).

    Attributes:
        stft: framing; descriptors are defined on the magnitude, so ``stft.power`` must be 1.0.
        rolloff_percent: fraction of the magnitude sum below the roll-off frequency.
        contrast_fmin: upper edge of the lowest contrast band; each band above is an octave.
        contrast_bands: octave bands; the output has ``contrast_bands + 1`` contrast columns.
        contrast_quantile: fraction of a band's bins averaged for its peak and its valley.
        amin: floor under the power for flatness and under the magnitude for contrast.
        zcr_threshold: samples with ``|x| <= zcr_threshold`` count as zero (non-negative).

    Two deliberate differences from librosa, both so that a frame's values depend only on that
    frame (a padded clip then pools exactly like the clip alone):

    * contrast: librosa also clips peak and valley (in its ``10 log10`` of magnitude units) at
      80 below the clip's maximum; we don't. Equal unless a band is that far below the loudest,
      e.g. digital silence inside a loud clip.
    * zcr: librosa pads centred frames with copies of the edge sample, we use the STFT's padding;
      only the frames overlapping the padding can differ.
    """

    stft: STFTParams = STFTParams()
    rolloff_percent: float = 0.85
    contrast_fmin: float = 200.0
    contrast_bands: int = 6
    contrast_quantile: float = 0.02
    amin: float = 1e-10
    zcr_threshold: float = 1e-10

    def __post_init__(self):
        if self.stft.power != 1.0:
            raise ValueError(f"descriptors need stft.power=1.0 (magnitude), got {self.stft.power}")
        top = self.contrast_fmin * 2.0 ** (self.contrast_bands - 1)
        if top >= self.stft.sample_rate / 2:
            raise ValueError(
                f"contrast band starting at {top} Hz is above Nyquist: reduce contrast_fmin or "
                "contrast_bands"
            )

    @property
    def names(self) -> list[str]:
        """Column names of the ``SpectralDescriptors`` output, in order."""
        contrast = [f"contrast_{k}" for k in range(self.contrast_bands + 1)]
        return ["centroid", "bandwidth", "rolloff", "flatness", *contrast, "zcr", "rms"]


def params_to_dict(params) -> dict:
    """A JSON-ready dict of a params dataclass, nested dataclasses included."""
    return dataclasses.asdict(params)


def params_from_dict(cls, values: dict):
    """Rebuild ``cls`` from :func:`params_to_dict` output."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in values.items():
        kind = hints[name]
        kwargs[name] = params_from_dict(kind, value) if dataclasses.is_dataclass(kind) else value
    return cls(**kwargs)
