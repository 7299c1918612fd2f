"""The hand-crafted baseline's configuration (never imports TensorFlow)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from tfaudio.frontend.params import DescriptorParams, MelParams, MFCCParams, STFTParams

if TYPE_CHECKING:
    from tfaudio.data.windows import WindowGeometry


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
    def stft(self) -> STFTParams:
        """Framing shared by every per-frame feature (magnitude)."""
        return STFTParams(
            sample_rate=self.sample_rate,
            window_length=self.window_length,
            hop_length=self.hop_length,
            fft_length=self.fft_length,
            center=True,
        )

    @property
    def mfcc(self) -> MFCCParams:
        mel = MelParams(
            stft=dataclasses.replace(self.stft, power=2.0),
            num_mel_bins=self.num_mel_bins,
            fmin=self.fmin,
            fmax=self.fmax,
        )
        return MFCCParams(
            mel=mel, num_mfcc=self.num_mfcc, deltas=self.deltas, delta_width=self.delta_width
        )

    @property
    def descriptors(self) -> DescriptorParams:
        return DescriptorParams(stft=self.stft)

    @property
    def window_geometry(self) -> WindowGeometry:
        """Centred frames every hop, deltas over `delta_width` frames: windows read that context
        on each side. Its decibels are clipped `top_db` below the clip's loudest frame, so a clip
        cut in windows first gets that frame's power as its clip state (`clip_state`)."""
        from tfaudio.data.windows import WindowGeometry  # here: reading the settings needs no audio decoder

        return WindowGeometry.centred(self.hop_length, self.fft_length, self.delta_width // 2, clip_state=True)


#: Bump when a hand-crafted formula changes, so vectors cached under the old ones are not reused.
HANDCRAFTED_IMPLEMENTATION = 1


def frame_feature_names(params: HandcraftedParams) -> list[str]:
    """Names of the per-frame columns pooled by :class:`HandcraftedFeatures`, in order."""
    prefixes = ["mfcc", "dmfcc", "ddmfcc"][: 1 + params.deltas]
    mfcc = [f"{prefix}_{k:02d}" for prefix in prefixes for k in range(params.num_mfcc)]
    return mfcc + params.descriptors.names


def feature_names(params: HandcraftedParams = HandcraftedParams()) -> list[str]:
    """Column names of the clip vector: every ``<frame feature>_mean``, then every ``_std``
    (the order of ``pool(frames, mask, "mean+std")`` over :func:`frame_feature_names`).

    Units: MFCCs from dB mel power; centroid, bandwidth and rolloff in kHz; flatness, zcr and
    rms as in :func:`tfaudio.frontend.spectral_descriptors`.
    """
    return [f"{name}_{stat}" for stat in ("mean", "std") for name in frame_feature_names(params)]


def handcrafted_identity(params: HandcraftedParams) -> dict:
    """What determines the hand-crafted vectors (the embedding store's key)."""
    return {"model": "handcrafted", "implementation": HANDCRAFTED_IMPLEMENTATION, "params": dataclasses.asdict(params)}
