"""The one interface every representation implements, and pooling over valid frames.

Downstream code (the embedding store, comparisons, plots) sees only `Representation`: it hands
over a zero-padded batch of waveforms with per-clip lengths and gets frame embeddings with a
validity mask, or pooled clip vectors. Whether the frames come from YAMNet patches, VGGish
examples, Wav2Vec2 hidden states or hand-crafted statistics is the backend's business.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tfaudio.quiet import import_tensorflow_quietly

#: How frame embeddings can be reduced to one vector per clip.
POOLING = ("mean", "max", "mean+std")


@dataclass(frozen=True)
class FrameEmbeddings:
    """embeddings: float32 [batch, frames, dim]; mask: bool [batch, frames], the frames each
    clip has on its own (padding frames are False and their values are meaningless)."""

    embeddings: np.ndarray
    mask: np.ndarray


def pool(values: np.ndarray, mask: np.ndarray, method: str = "mean") -> np.ndarray:
    """Reduce frame vectors to clip vectors over each clip's valid frames only.

    values: float32 [batch, frames, dim]; mask: bool [batch, frames] with at least one True
    per clip. Returns float32 [batch, dim], or [batch, 2 * dim] for "mean+std" (mean, then
    population standard deviation).
    """
    if method not in POOLING:
        raise ValueError(f"unknown pooling {method!r}; choose one of {POOLING}")
    values = np.asarray(values, dtype=np.float32)
    weights = np.asarray(mask, dtype=bool)[:, :, np.newaxis]
    counts = weights.sum(axis=1, dtype=np.float32)
    if np.any(counts == 0):
        raise ValueError(f"clips {np.flatnonzero(counts[:, 0] == 0).tolist()} have no valid frame")
    if method == "max":
        return np.where(weights, values, -np.inf).max(axis=1).astype(np.float32)
    mean = np.where(weights, values, 0.0).sum(axis=1) / counts
    if method == "mean":
        return mean.astype(np.float32)
    variance = np.where(weights, (values - mean[:, np.newaxis]) ** 2, 0.0).sum(axis=1) / counts
    return np.concatenate([mean, np.sqrt(variance)], axis=1).astype(np.float32)


def check_batch(waveforms, lengths=None) -> tuple[np.ndarray, np.ndarray]:
    """Validate a zero-padded batch: -> (float32 [batch, samples], int32 [batch] lengths).

    lengths=None means every clip fills the batch. Raises ValueError naming what is wrong.
    """
    waveforms = np.asarray(waveforms, dtype=np.float32)
    if waveforms.ndim != 2:
        raise ValueError(
            f"waveforms must be float32 [batch, samples], got shape {waveforms.shape}; "
            "use waveform[np.newaxis] for one clip"
        )
    if lengths is None:
        return waveforms, np.full(len(waveforms), waveforms.shape[1], dtype=np.int32)
    lengths = np.asarray(lengths)
    if lengths.shape != (len(waveforms),):
        raise ValueError(f"lengths must be int [batch={len(waveforms)}], got shape {lengths.shape}")
    if lengths.size and (lengths.min() < 0 or lengths.max() > waveforms.shape[1]):
        raise ValueError(f"lengths must be in 0..{waveforms.shape[1]} (the batch width), got {lengths}")
    return waveforms, lengths.astype(np.int32)


class Representation(abc.ABC):
    """A way to turn waveforms into vectors.

    Attributes every backend sets:
        name: registry name ("yamnet", "handcrafted", "hf:facebook/wav2vec2-base", ...).
        sample_rate: Hz the waveforms must be at.
        frame_hop_seconds: time between consecutive frames (for frame-level outputs).
        dim: size of one frame vector.
        default_pooling: what `embed` uses unless told otherwise.
    """

    name: str
    sample_rate: int
    frame_hop_seconds: float
    dim: int
    default_pooling: str = "mean"

    @abc.abstractmethod
    def frames(self, waveforms: np.ndarray, lengths: np.ndarray) -> FrameEmbeddings:
        """waveforms: float32 [batch, samples] zero-padded; lengths: int32 [batch] real samples.

        A clip's frames must not depend on what else is in the batch (≤ 1e-4).
        """

    @abc.abstractmethod
    def identity(self) -> dict:
        """What determines the vectors, JSON-ready: model, weights digest, front-end
        parameters, layer. Two representations with equal identities give equal vectors, so
        the embedding store keys its cache on it."""

    def embed(self, waveforms: np.ndarray, lengths: np.ndarray, pooling: str | None = None) -> np.ndarray:
        """float32 [batch, samples], int32 [batch] -> clip vectors float32 [batch, dim] (2 * dim
        for "mean+std"), pooled over valid frames only (default: `default_pooling`)."""
        out = self.frames(waveforms, lengths)
        return pool(out.embeddings, out.mask, pooling or self.default_pooling)

    def pooled_dim(self, pooling: str) -> int:
        return 2 * self.dim if pooling == "mean+std" else self.dim


class ModelUnavailable(Exception):
    """A representation that cannot be loaded here (e.g. weights missing while offline)."""


class LazyRepresentation(Representation):
    """A representation known by its identity, built by `load` on first use.

    source: where its weights are (a path, a handle) or "computed" for the baseline.
    """

    def __init__(
        self,
        name: str,
        *,
        sample_rate: int,
        frame_hop_seconds: float,
        dim: int,
        identity: dict,
        load: Callable[[], Representation],
        source: str,
        default_pooling: str = "mean",
    ):
        self.name = name
        self.sample_rate = sample_rate
        self.frame_hop_seconds = frame_hop_seconds
        self.dim = dim
        self.default_pooling = default_pooling
        self.source = source
        self._identity = identity
        self._load = load
        self._model: Representation | None = None

    def loaded(self) -> Representation:
        """The backend itself (built once, on first call)."""
        if self._model is None:
            import_tensorflow_quietly()
            self._model = self._load()
        return self._model

    def frames(self, waveforms, lengths) -> FrameEmbeddings:
        return self.loaded().frames(waveforms, lengths)

    def identity(self) -> dict:
        return self._identity
