"""Work units: the windows each representation can embed a clip in, and the one function that embeds
a batch of them (the local runner and the Beam pipeline both call `embed_windows`).

What a window must hold for its frames to equal the whole clip's, per representation:

* YAMNet: patches of 0.975 s every 0.48 s from the clip's first sample. Window cores start on
  the 0.48 s grid and read 0.495 s past their end, so each kept patch sees exactly its samples.
* VGGish: examples of 0.975 s every 0.96 s; the same with 0.015 s of context.
* Hand-crafted: centred 32 ms frames every 10 ms, deltas over 9 frames: 60 ms of context on each
  side. Its decibels are clipped 80 dB below the clip's loudest frame, so a long clip is first
  read once to find that frame (`attach_reference`), and every window counts from it.
* Wav2Vec2 / Hugging Face encoders: the model itself runs 10 s windows from the clip's start,
  each normalised on its own; cores are whole multiples of them, without context.
* Other TF-Hub models and autoencoders have no known geometry: each clip is one window (their
  memory grows with the clip's length). Any representation may declare one (`window_geometry`).

Kept frames equal the whole clip's up to float rounding of batched arithmetic (~1e-6); files at
another sample rate add the resampler's block rounding (~1e-7 on samples).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tfaudio.data.batches import WindowBatch
from tfaudio.data.windows import Window, WindowGeometry, kept_frames, plan_windows
from tfaudio.models.base import Representation

#: Clips longer than this (seconds) are embedded in windows of this length.
WINDOW_SECONDS = 60.0


def geometry_of(representation: Representation) -> WindowGeometry | None:
    """How `representation` can embed a long clip window by window (None: it cannot, exactly).

    A representation of one's own may say it with a `window_geometry` attribute.
    """
    declared = getattr(representation, "window_geometry", None)
    if declared is not None:
        return declared
    identity = representation.identity()
    kind = identity.get("model")
    if kind == "yamnet":
        from tfaudio.models.yamnet.config import YamnetParams

        p = YamnetParams(**identity["params"])
        return WindowGeometry.patches(p.patch_hop_samples, p.patch_samples)
    if kind == "vggish":
        from tfaudio.models.vggish.config import VggishParams

        p = VggishParams(**identity["params"])
        return WindowGeometry.patches(p.example_hop_samples, p.example_samples)
    if kind == "handcrafted":
        from tfaudio.models.handcrafted.config import HandcraftedParams

        p = HandcraftedParams(**identity["params"])
        return WindowGeometry.centred(p.hop_length, p.fft_length, p.delta_width // 2, reference=True)
    window = getattr(representation, "window_samples", None)  # Hugging Face encoders
    if window:
        return WindowGeometry(step=window, span=getattr(representation, "receptive_field", 0))
    return None


def plan_clip(
    path: str,
    representation: Representation,
    *,
    digest: str | None = None,
    position: int = 0,
    window_seconds: float = WINDOW_SECONDS,
    max_duration: float | None = None,
    geometry: WindowGeometry | None = None,
) -> list[Window]:
    """The windows of one clip (from its header; raises `AudioError`). geometry: `geometry_of`
    computed once by the caller, else here."""
    return plan_windows(
        path,
        geometry if geometry is not None else geometry_of(representation),
        sample_rate=representation.sample_rate,
        window_seconds=window_seconds,
        digest=digest,
        position=position,
        duration=max_duration,
    )


def needs_reference(windows: Sequence[Window], geometry: WindowGeometry | None) -> bool:
    """Whether these windows of one clip must carry the clip's loudness reference first."""
    return bool(geometry and geometry.reference and len(windows) > 1)


def attach_reference(representation: Representation, windows: Sequence[Window]) -> list[Window]:
    """All windows of one long clip, with `reference` set to its loudest frame's mel power
    (decodes the clip once more; raises `AudioError`). Only for geometries with `reference`
    (the hand-crafted baseline)."""
    return _backend(representation).with_reference(list(windows))


def _backend(representation: Representation):
    """The loaded backend behind a lazy registry entry (or the representation itself)."""
    loaded = getattr(representation, "loaded", None)
    return loaded() if callable(loaded) else representation


def embed_windows(representation: Representation, batch: WindowBatch) -> list[np.ndarray]:
    """The frames each window of `batch` contributes to its clip: float32 [k_i, dim] per window.

    One `representation.frames` call per batch; context frames are dropped. Windows of long
    hand-crafted clips carry their clip's loudness reference (NaN for whole clips: their own).
    Same batch, same numbers, bit for bit.
    """
    if all(w.reference is None for w in batch.windows):
        return _cut(batch, representation.frames(batch.waveforms, batch.lengths))
    peaks = np.array([np.nan if w.reference is None else w.reference for w in batch.windows], np.float32)
    return _cut(batch, _backend(representation).frames(batch.waveforms, batch.lengths, peaks))


def _cut(batch: WindowBatch, out) -> list[np.ndarray]:
    return [kept_frames(w, out.embeddings[row][out.mask[row]]) for row, w in enumerate(batch.windows)]


def frame_starts(window: Window, count: int, frame_hop_seconds: float) -> np.ndarray:
    """float64 [count]: where each kept frame of `window` sits in its clip, in seconds (the frame's
    place on the model's grid: a YAMNet or VGGish patch's start, a hand-crafted frame's centre,
    a Wav2Vec2 frame counted from its 10 s window's start)."""
    return window.start_seconds + np.arange(count) * frame_hop_seconds
