"""VGGish's configuration (never imports TensorFlow)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tfaudio.frontend.params import SecondsFraming

if TYPE_CHECKING:
    from tfaudio.data.windows import WindowGeometry

#: Values per frame vector: the width of the network's embedding layer, fixed by the released weights.
EMBEDDING_SIZE = 128


@dataclass(frozen=True)
class VggishParams(SecondsFraming):
    """VGGish's hyper-parameters (``vggish_params.py``), with the sample counts derived.

    The network's input size (96 x 64) is fixed by the released weights; the front-end fields
    exist to make the derivations explicit.
    """

    sample_rate: int = 16000
    stft_window_seconds: float = 0.025
    stft_hop_seconds: float = 0.010
    mel_bands: int = 64
    mel_min_hz: float = 125.0
    mel_max_hz: float = 7500.0
    log_offset: float = 0.01
    example_window_seconds: float = 0.96
    example_hop_seconds: float = 0.96
    embedding_relu: bool = False
    quantize_min: float = -2.0
    quantize_max: float = 2.0

    def __post_init__(self):
        self.check_mel_range()
        if (self.example_frames, self.mel_bands) != (96, 64):
            raise ValueError(
                f"VGGish takes examples of 96 frames x 64 bands, these params give {self.example_frames} x "
                f"{self.mel_bands}"
            )
        if not 0 < self.example_hop_frames:
            raise ValueError(f"example_hop_seconds must be positive, got {self.example_hop_seconds}")
        if not self.quantize_min < self.quantize_max:
            raise ValueError("quantize_min must be below quantize_max")

    @property
    def example_frames(self) -> int:
        """96: STFT frames per example."""
        return self.frames_in(self.example_window_seconds)

    @property
    def example_hop_frames(self) -> int:
        """96: STFT frames between example starts."""
        return self.frames_in(self.example_hop_seconds)

    @property
    def example_samples(self) -> int:
        """15600 (0.975 s): the shortest waveform giving one example, ``(96 - 1) * 160 + 400``."""
        return self.samples_for_frames(self.example_frames)

    @property
    def example_hop_samples(self) -> int:
        """15360 (0.96 s): waveform samples between example starts."""
        return self.example_hop_frames * self.stft_hop_samples

    @property
    def window_geometry(self) -> WindowGeometry:
        """Examples of 0.975 s every 0.96 s from the clip's first sample: window cores start on
        the 0.96 s grid and read 0.015 s past their end."""
        from tfaudio.data.windows import WindowGeometry  # here: reading the settings needs no audio decoder

        return WindowGeometry.patches(self.example_hop_samples, self.example_samples)
