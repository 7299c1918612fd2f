"""Wav2Vec2's configuration (never imports TensorFlow or transformers)."""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_MODEL = "facebook/wav2vec2-base-960h"


#: DEFAULT_MODEL's architecture, from its config.json (the Wav2Vec2-base design), so that its
#: vector size and frame timing are known without loading it: the transformer's width, and the
#: convolutional feature encoder's kernels and strides (frames of 400 samples every 320).
BASE_HIDDEN_SIZE = 768
BASE_CONV_KERNEL = (10, 3, 3, 3, 3, 2, 2)
BASE_CONV_STRIDE = (5, 2, 2, 2, 2, 2, 2)


#: The epsilon of ``Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm``.
NORMALIZE_EPSILON = 1e-7


LAYERS = ("last", "all")


@dataclass(frozen=True)
class Wav2Vec2Params:
    """What to load and how to run it.

    model: a Hugging Face model id or a local directory with ``config.json`` and
        ``tf_model.h5`` or ``model.safetensors`` (``preprocessor_config.json`` optional).
    revision: hub branch, tag or commit (default: main); ignored for a local directory.
    layer: "last" (``last_hidden_state``), an index into the hidden states (0 = input of the
        first transformer layer, i = output of layer i, negative from the end), or "all": every
        hidden state concatenated along the feature axis, layer-major, so frame vectors have
        ``(num_hidden_layers + 1) * hidden_size`` values and ``[..., i * hidden:(i + 1) * hidden]``
        is hidden state i.
    window_seconds: longest stretch run through the network at once (attention cost grows with
        its square); None runs whole clips.
    batch_size: most windows per network call.
    """

    model: str = DEFAULT_MODEL
    revision: str | None = None
    layer: int | str = "last"
    window_seconds: float | None = 10.0
    batch_size: int = 8

    def __post_init__(self):
        if isinstance(self.layer, bool) or not (isinstance(self.layer, int) or self.layer in LAYERS):
            raise ValueError(f"layer must be an int or one of {LAYERS}, got {self.layer!r}")
        if self.window_seconds is not None and self.window_seconds <= 0:
            raise ValueError(f"window_seconds must be positive or None, got {self.window_seconds}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")


@dataclass(frozen=True)
class Preprocessing:
    """The feature extractor's settings that shape the network input.

    source: the ``preprocessor_config.json`` they came from, or why they are defaults.
    """

    sample_rate: int = 16000
    do_normalize: bool = True
    padding_value: float = 0.0
    source: str = "defaults of Wav2Vec2FeatureExtractor"


def conv_frames(num_samples: int, kernels, strides) -> int:
    """Frames the convolutional feature encoder makes from ``num_samples`` (0 if too short)."""
    for kernel, stride in zip(kernels, strides):
        num_samples = max((num_samples - kernel) // stride + 1, 0)
    return num_samples


def receptive_field(kernels, strides) -> int:
    """Samples one frame sees, the fewest that give a frame: 400 for the base models."""
    samples = 1
    for kernel, stride in reversed(list(zip(kernels, strides))):
        samples = (samples - 1) * stride + kernel
    return samples


def frame_hop_samples(strides) -> int:
    """Samples between frames: the product of the strides, 320 for the base models."""
    return math.prod(strides)
