"""YAMNet's hyper-parameters, apart from the TensorFlow code (as the reference's params.py).

Importing this module does not import TensorFlow, so the embedding store can compute YAMNet's
cache key, and the CLI list models, without paying for a TensorFlow import.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tfaudio.frontend.params import SecondsFraming

if TYPE_CHECKING:
    from tfaudio.data.windows import WindowGeometry

#: Values per frame vector: the channels of the network's last block, fixed by the released weights.
EMBEDDING_SIZE = 1024
#: (kind, stride, filters) per block; every kernel is 3x3 (pointwise convolutions are 1x1).
#: MobileNet v1's body, as its paper's table gives it ("5x" the stride-1 512-filter block).
BLOCKS = (
    ("conv", 2, 32),
    ("separable", 1, 64),
    ("separable", 2, 128),
    ("separable", 1, 128),
    ("separable", 2, 256),
    ("separable", 1, 256),
    ("separable", 2, 512),
    *5 * [("separable", 1, 512)],
    ("separable", 2, EMBEDDING_SIZE),
    ("separable", 1, EMBEDDING_SIZE),
)


@dataclass(frozen=True)
class YamnetParams(SecondsFraming):
    """YAMNet's hyper-parameters (the reference ``params.py``), with the sample counts derived.

    Changing a front-end field gives a different model that the released weights do not fit;
    the fields exist so that the derivations below are explicit, and for training from scratch.
    """

    sample_rate: int = 16000
    stft_window_seconds: float = 0.025
    stft_hop_seconds: float = 0.010
    mel_bands: int = 64
    mel_min_hz: float = 125.0
    mel_max_hz: float = 7500.0
    log_offset: float = 0.001
    patch_window_seconds: float = 0.96
    patch_hop_seconds: float = 0.48
    num_classes: int = 521
    batchnorm_center: bool = True
    batchnorm_scale: bool = False
    batchnorm_epsilon: float = 1e-4
    classifier_activation: str = "sigmoid"

    def __post_init__(self):
        self.check_mel_range()
        if not 0 < self.patch_hop_frames <= self.patch_frames:
            raise ValueError(
                f"patch_hop_seconds={self.patch_hop_seconds} must be positive and at most "
                f"patch_window_seconds={self.patch_window_seconds}"
            )
        if self.stft_window_samples < self.stft_hop_samples:
            raise ValueError("stft_window_seconds must be at least stft_hop_seconds")

    @property
    def patch_frames(self) -> int:
        """96: STFT frames per patch."""
        return self.frames_in(self.patch_window_seconds)

    @property
    def patch_hop_frames(self) -> int:
        """48: STFT frames between patch starts."""
        return self.frames_in(self.patch_hop_seconds)

    @property
    def patch_bands(self) -> int:
        """64: mel bands per patch."""
        return self.mel_bands

    @property
    def patch_samples(self) -> int:
        """15600 (0.975 s): the shortest waveform giving one patch, ``(96 - 1) * 160 + 400``."""
        return self.samples_for_frames(self.patch_frames)

    @property
    def patch_hop_samples(self) -> int:
        """7680 (0.48 s): waveform samples between patch starts."""
        return self.patch_hop_frames * self.stft_hop_samples

    @property
    def window_geometry(self) -> WindowGeometry:
        """Patches of 0.975 s every 0.48 s from the clip's first sample: window cores start on
        the 0.48 s grid and read 0.495 s past their end, so each kept patch sees exactly its samples."""
        from tfaudio.data.windows import WindowGeometry  # here: reading the settings needs no audio decoder

        return WindowGeometry.patches(self.patch_hop_samples, self.patch_samples)


#: Bump when the front end or inference changes, so vectors cached under the old code are not reused.
YAMNET_IMPLEMENTATION = 1


def yamnet_identity(weights_sha256: str, params: YamnetParams) -> dict:
    """What determines YAMNet's vectors (the embedding store's key)."""
    return {
        "model": "yamnet",
        "implementation": YAMNET_IMPLEMENTATION,
        "weights_sha256": weights_sha256,
        "params": dataclasses.asdict(params),
    }
