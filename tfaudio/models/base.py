"""The one interface every representation implements (its pooling: tfaudio.frontend.pooling).

Downstream code (the embedding store, comparisons, plots) sees only `Representation`: it hands
over a zero-padded batch of waveforms with per-clip lengths and gets frame embeddings with a
validity mask, or pooled clip vectors. Whether the frames come from YAMNet patches, VGGish
examples, Wav2Vec2 hidden states or hand-crafted statistics is the backend's business.

Long clips are embedded window by window (`tfaudio.data.windows`) when a representation says
how: its `window_geometry` (what a window must hold for its frames to equal the whole clip's)
and, when its frames depend on the whole clip too, `clip_state` (computed once per clip, carried
by every window) with `window_frames` (frames of windows that carry it). The pipeline reads
these three and nothing else, so a new model is its own folder plus a registry line.

A representation learned from the data it embeds (the autoencoder) is a `LearnedRepresentation`:
it must first be fitted on a split's training clips, and `fit` gives the Representation that
embeds. Pretrained and hand-crafted representations need no such step.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tfaudio.errors import TfaudioError
from tfaudio.frontend.pooling import POOLING, pool, pooled_dim  # noqa: F401  (POOLING re-exported)
from tfaudio.quiet import import_tensorflow_quietly

if TYPE_CHECKING:
    from tfaudio.data.dataset import Dataset
    from tfaudio.data.windows import Window, WindowGeometry


@dataclass(frozen=True)
class FrameEmbeddings:
    """embeddings: float32 [batch, frames, dim]; mask: bool [batch, frames], the frames each
    clip has on its own (padding frames are False and their values are meaningless)."""

    embeddings: np.ndarray
    mask: np.ndarray


@dataclass(frozen=True)
class FrameGraph:
    """A representation's frames as TensorFlow operations, for a graph that holds more than the
    representation (a detector's waveform-in SavedModel: tfaudio.detector.export).

    frames: (waveforms tf.Tensor float32 [batch, samples], lengths int32 [batch]) -> (embeddings
        float32 [batch, frames, dim], mask bool [batch, frames]): the same operations `frames`
        runs, callable while a tf.function is traced (no numpy inside).
    trackable: what owns the variables those operations read (a Keras model or layer, or a
        tf.Module), for the export to save them; None when there are none.
    """

    frames: Callable
    trackable: object | None = None


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
        window_geometry: how a long clip can be cut into windows whose kept frames equal the
            whole clip's (`tfaudio.data.windows.WindowGeometry`); None (the default): every clip
            is embedded whole, in memory that grows with its length. Known without building
            the network (a `LazyRepresentation` is given it), since work is planned before.
    """

    name: str
    sample_rate: int
    frame_hop_seconds: float
    dim: int
    default_pooling: str = "mean"
    window_geometry: WindowGeometry | None = None
    #: Content sha256 of the clips this representation was fitted on, where it was fitted on
    #: clips and recorded them (a saved autoencoder); None otherwise. A comparison warns when one
    #: of them is in a test split: the vectors would have seen the clips they are tested on.
    trained_on: frozenset[str] | None = None

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

    def clip_state(self, windows: Sequence[Window]) -> object:
        """What the frames of a clip's windows need from the whole clip (the hand-crafted
        baseline: its loudest frame's mel power), computed by reading the clip (`windows`: all of
        its windows, in order; raises `AudioError`). Called once per clip cut into several
        windows, and only when `window_geometry.clip_state` is set; the value (picklable) rides
        on each window (`Window.clip_state`) into `window_frames`."""
        raise NotImplementedError(f"{self.name} declares a window geometry with clip_state but no clip_state()")

    def window_frames(self, waveforms: np.ndarray, lengths: np.ndarray, states: Sequence[object]) -> FrameEmbeddings:
        """`frames` of a batch of windows, each row given its clip's state (`states[row]`; None
        for a window that is a whole clip, whose frames are then exactly `frames`'s).

        A representation without clip state gets only None here and has nothing to override.
        """
        if any(state is not None for state in states):
            raise ValueError(f"{self.name} has no clip state, but windows carrying one were given")
        return self.frames(waveforms, lengths)

    def frame_graph(self) -> FrameGraph | None:
        """The frames as TensorFlow operations (`FrameGraph`), for exporting them inside a larger
        graph; None (the default) when they are not one TensorFlow graph (numpy steps, a
        TF-Hub or PyTorch model, ...). Called on a whole clip: clip state needs no handling."""
        return None

    def embed(self, waveforms: np.ndarray, lengths: np.ndarray, pooling: str | None = None) -> np.ndarray:
        """float32 [batch, samples], int32 [batch] -> clip vectors float32 [batch, dim] (2 * dim
        for "mean+std"), pooled over valid frames only (default: `default_pooling`)."""
        out = self.frames(waveforms, lengths)
        return pool(out.embeddings, out.mask, pooling or self.default_pooling)

    def pooled_dim(self, pooling: str) -> int:
        return pooled_dim(self.dim, pooling)


class ModelUnavailable(TfaudioError):
    """A representation that cannot be loaded here (e.g. weights missing while offline)."""


class LazyRepresentation(Representation):
    """A representation known by its identity, built by `load` on first use.

    source: where its weights are (a path, a handle) or "computed" for the baseline.
    window_geometry: the network's, known from its settings alone (see `Representation`).
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
        window_geometry: WindowGeometry | None = None,
    ):
        self.name = name
        self.window_geometry = window_geometry
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

    def clip_state(self, windows):
        return self.loaded().clip_state(windows)

    def window_frames(self, waveforms, lengths, states) -> FrameEmbeddings:
        return self.loaded().window_frames(waveforms, lengths, states)

    def frame_graph(self) -> FrameGraph | None:
        return self.loaded().frame_graph()

    def identity(self) -> dict:
        return self._identity


class LearnedRepresentation(Representation):
    """A representation learned from the clips themselves, so it must be fitted before it gives
    vectors, and fitted on a split's training clips only: no test clip may shape the vectors
    it is tested on. A comparison fits it once per split (`fit`) and embeds every clip of the
    split with what `fit` returns, an ordinary Representation whose identity carries the
    fitted weights, so the embedding store never mixes two fits.

    Unfitted it knows its name, rate, dim and pooling, but has no vectors: `frames` and
    `identity` raise ModelUnavailable with `how_to_fit`.
    """

    #: What the user can do instead of embedding with an unfitted one (the end of a sentence).
    how_to_fit: str = "fit it on training clips first"
    #: The settings `configure` takes (what `tfaudio compare --fit NAME.SETTING=VALUE` may set).
    settings: tuple[str, ...] = ()

    @abc.abstractmethod
    def configure(self, settings: Mapping[str, object]) -> LearnedRepresentation:
        """A copy with the settings it knows taken from `settings` (e.g. epochs, latent, seed,
        max_duration; others ignored). Raises ModelUnavailable for settings it cannot use."""

    @abc.abstractmethod
    def fit(
        self,
        dataset: Dataset,
        train_indices: np.ndarray,
        *,
        models_dir: Path | None = None,
        part: str = "the dataset",
        log: Callable[[str], None] | None = None,
    ) -> Representation:
        """Fitted on the clips at `train_indices` (int64 dataset indices) and nothing else.

        models_dir: a folder where fitted models are kept, keyed by the settings and the
        training clips' content, so a second fit on the same clips loads instead of training
        (None: nothing kept). part: what the training clips are, for `log` ("fold1").
        Raises ModelUnavailable when these clips cannot fit it (too few, a setting that does
        not suit the data); the message says why.
        """

    @abc.abstractmethod
    def fitting_note(self, fits: int) -> str:
        """A sentence for a report: how the representation was fitted, `fits` times."""

    def _unfitted(self) -> ModelUnavailable:
        return ModelUnavailable(f"{self.name} learns from the clips it embeds, so it must be fitted on training clips "
                                f"first: {self.how_to_fit}")

    def frames(self, waveforms, lengths) -> FrameEmbeddings:
        raise self._unfitted()

    def identity(self) -> dict:
        raise self._unfitted()
