"""Index windows: a file's frame embeddings grouped every `hop` seconds into unit vectors.

The one function that turns a model's frames into what the index holds, used by the build (over
the frames the embedding pipeline wrote) and by the query side (`SearchIndex.embed`), so a query
window and an indexed window are the same thing computed the same way.

A window groups `frames` consecutive frames (the hop divided by the model's frame hop; 1 at the
default hop, when a window is a frame): its vector is their mean, L2-normalised, so cosine
similarity is a dot product. Window i starts where its first frame starts (`i * hop` seconds, the
frame start `tfaudio embed --frames` writes) and ends where the audio its last frame saw ends
(`frame_span` seconds later), cut at the end of the file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tfaudio.errors import TfaudioError


class HopError(TfaudioError, ValueError):
    """A --hop the model's frames cannot give (shorter than a frame hop, or not a multiple of it)."""


@dataclass(frozen=True)
class WindowSpec:
    """How an index cuts frames into windows.

    frame_hop: seconds between the model's frames; frame_span: seconds of audio one frame sees;
    frames: frames per window (>= 1), so the index's hop is `frames * frame_hop`.
    """

    frame_hop: float
    frame_span: float
    frames: int = 1

    @property
    def hop(self) -> float:
        return self.frames * self.frame_hop

    @property
    def length(self) -> float:
        """Seconds of audio a whole window covers."""
        return (self.frames - 1) * self.frame_hop + self.frame_span


def window_spec(representation, hop: float | None = None) -> WindowSpec:
    """The windows of `representation` (a tfaudio Representation) at `hop` seconds (None: one
    window per frame). Raises HopError for a hop that is not a whole number of frame hops."""
    frame_hop = float(representation.frame_hop_seconds)
    geometry = representation.window_geometry
    span = geometry.span / representation.sample_rate if geometry is not None and geometry.span else frame_hop
    frames = 1
    if hop is not None:
        frames = int(round(hop / frame_hop))
        if frames < 1 or abs(frames * frame_hop - hop) > 1e-6 * max(hop, 1.0):
            raise HopError(f"--hop {hop:g}: {representation.name}'s frames come every {frame_hop:g} s; give a "
                           f"multiple of it (e.g. {max(frames, 1) * frame_hop:g})")
    return WindowSpec(frame_hop=frame_hop, frame_span=max(span, frame_hop), frames=frames)


def file_windows(frames: np.ndarray, spec: WindowSpec, duration: float | None = None):
    """One file's windows.

    frames: float32 [n, dim], the file's frame embeddings in time order (frame j starts at
    `j * spec.frame_hop` s); duration: the file's length in seconds (None: unknown, ends not cut).
    Returns (vectors float32 [m, dim] with unit L2 norm (a window whose frames sum to zero stays
    zero), starts float64 [m], ends float64 [m]), m = ceil(n / spec.frames): a last window of fewer
    frames is kept, but not a window that would start at or after the end of the file (front ends
    that pad the signal give a frame there; as a window it would hold no audio). `kept_windows`
    says how many stay.
    """
    frames = np.asarray(frames, dtype=np.float32)
    count = len(frames)
    if count == 0:
        return np.zeros((0, frames.shape[-1] if frames.ndim == 2 else 0), np.float32), np.zeros(0), np.zeros(0)
    k = spec.frames
    if k == 1:
        vectors = frames.copy()
    else:
        firsts = np.arange(0, count, k)
        sums = np.add.reduceat(frames.astype(np.float64), firsts, axis=0)
        vectors = (sums / np.diff(np.append(firsts, count))[:, None]).astype(np.float32)
    normalize(vectors)
    windows = len(vectors)
    starts = np.arange(windows, dtype=np.float64) * spec.hop
    last_frames = np.minimum(np.arange(windows) * k + k, count) - 1
    ends = last_frames * spec.frame_hop + spec.frame_span
    if duration is not None:
        ends = np.maximum(np.minimum(ends, duration), starts)
        kept = kept_windows(windows, spec.hop, duration)
        vectors, starts, ends = vectors[:kept], starts[:kept], ends[:kept]
    return vectors, starts, ends


def kept_windows(windows: int, hop: float, duration: float) -> int:
    """How many of a file's first `windows` windows start before its end (at least one): the
    rule `file_windows` applies, written once so the exported graph applies it alike. The
    tolerance (a thousandth of a hop) keeps a window starting exactly at the end out in
    float32 as in float64."""
    return min(windows, max(1, math.ceil(duration / hop - 1e-3)))


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Scale the rows of float32 [n, dim] to unit L2 norm in place (zero rows stay zero); returns it."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    np.divide(vectors, norms, out=vectors, where=norms > 0)
    return vectors
