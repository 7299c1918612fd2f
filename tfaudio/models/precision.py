"""A representation run at another numeric precision: the same network, its graphs rewritten to
bfloat16 (see `tfaudio.runtime`), and an identity that says so.

`with_precision(representation, "bfloat16")` is what the API and the CLI call. float32 returns
the representation itself, so float32 identities, and every vector cached under them, stay
exactly as they were. bfloat16 wraps it: the wrapper's identity is the wrapped one plus
``"precision": "bfloat16"``, so the embedding store keys bfloat16 vectors apart and never
serves float32 vectors for a bfloat16 run or the other way round.

Hand-crafted features stay float32: they are FFTs, filterbanks and element-wise statistics,
not matrix work that bfloat16 units speed up, and their value is parity with librosa.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tfaudio.models.base import FrameEmbeddings, LearnedRepresentation, Representation
from tfaudio.runtime import (
    PrecisionWarning,
    check_precision,
    check_rewrite_available,
    precision_scope,
    precision_warning,
)

if TYPE_CHECKING:
    from tfaudio.data.dataset import Dataset

#: Representations computed rather than learned, left at float32 whatever the precision asked.
FLOAT32_ONLY = ("handcrafted",)


#: What a precision wrapper takes over from the representation it wraps.
_DESCRIPTION = ("name", "sample_rate", "frame_hop_seconds", "dim", "default_pooling", "window_geometry")


def _describe_as(wrapper: Representation, inner: Representation) -> None:
    """Give `wrapper` the name, rate, hop, dim, pooling and window geometry of `inner`."""
    for attribute in _DESCRIPTION:
        setattr(wrapper, attribute, getattr(inner, attribute))


class Bfloat16(Representation):
    """`inner` with every network call in bfloat16 (oneDNN auto mixed precision, this thread only).

    Same name, rate, hop, dim, pooling and windows as `inner`; frames are float32 arrays as always.
    """

    precision = "bfloat16"

    def __init__(self, inner: Representation):
        self.inner = inner
        _describe_as(self, inner)
        if hasattr(inner, "source"):
            self.source = inner.source

    def frames(self, waveforms: np.ndarray, lengths: np.ndarray) -> FrameEmbeddings:
        with precision_scope(self.precision):
            return self.inner.frames(waveforms, lengths)

    def clip_state(self, windows):
        with precision_scope(self.precision):
            return self.inner.clip_state(windows)

    def window_frames(self, waveforms: np.ndarray, lengths: np.ndarray, states) -> FrameEmbeddings:
        with precision_scope(self.precision):
            return self.inner.window_frames(waveforms, lengths, states)

    def identity(self) -> dict:
        return {**self.inner.identity(), "precision": self.precision}


class LearnedBfloat16(LearnedRepresentation):
    """A learned representation whose fitted models embed in bfloat16.

    Fitting stays as the wrapped one does it (float32, and its fitted models kept under the same
    keys), so a bfloat16 comparison reuses a float32 one's fits and differs only in the vectors.
    """

    def __init__(self, inner: LearnedRepresentation):
        self.inner = inner
        _describe_as(self, inner)
        self.how_to_fit = inner.how_to_fit

    def configure(self, settings: Mapping[str, object]) -> LearnedBfloat16:
        return LearnedBfloat16(self.inner.configure(settings))

    def fit(self, dataset: Dataset, train_indices: np.ndarray, *, models_dir: Path | None = None,
            part: str = "the dataset", log: Callable[[str], None] | None = None) -> Representation:
        return Bfloat16(self.inner.fit(dataset, train_indices, models_dir=models_dir, part=part, log=log))

    def fitting_note(self, fits: int) -> str:
        return self.inner.fitting_note(fits)


def with_precision(representation: Representation, precision: str = "float32", *, warn: bool = True) -> Representation:
    """`representation` run at `precision`.

    float32, or a representation in FLOAT32_ONLY: `representation` itself (identity unchanged).
    bfloat16: a `Bfloat16` wrapper (a `LearnedBfloat16` for a LearnedRepresentation), unless
    it is one already; PrecisionError where oneDNN is switched off. warn: emit a
    PrecisionWarning (a TfaudioWarning, which the CLI prints as one `warning: ...` line) when
    bfloat16 will not be faster here: no bfloat16 instructions, or the networks run on a GPU.
    """
    if check_precision(precision) == "float32":
        return representation
    check_rewrite_available(precision)
    if representation.name in FLOAT32_ONLY or isinstance(representation, (Bfloat16, LearnedBfloat16)):
        return representation
    if warn and (message := precision_warning(precision)):
        warnings.warn(message, PrecisionWarning, stacklevel=2)
    if isinstance(representation, LearnedRepresentation):
        return LearnedBfloat16(representation)
    return Bfloat16(representation)
