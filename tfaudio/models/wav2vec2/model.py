"""Wav2Vec2 and other Hugging Face TensorFlow audio encoders as tfaudio representations.

The network is transformers 4.x ``TFWav2Vec2Model`` (default ``facebook/wav2vec2-base-960h``), or
for ``hf:<model id>`` whatever ``TFAutoModel`` builds for an audio encoder fed ``input_values``
(TF HuBERT, TF Wav2Vec2). The facts reproduced here come from transformers 4.57:

* Input (``Wav2Vec2FeatureExtractor``): 16 kHz mono; with ``do_normalize`` every input is
  scaled to zero mean and unit variance, ``(x - mean) / sqrt(var + 1e-7)``, over its own samples
  (over the unpadded samples when an attention mask is returned); padding is ``padding_value``.
* Feature encoder (``TFWav2Vec2FeatureEncoder``): 1-D convolutions without padding, so ``n``
  samples give ``floor((n - kernel) / stride) + 1`` frames per layer (the model's
  ``_get_feat_extract_output_lengths``): one frame per 320 samples (20 ms) for the base models,
  the first frame needing 400 samples.
* Padding and attention masks (the ``return_attention_mask`` note of the feature extractor):
  models with ``config.feat_extract_norm == "group"`` (wav2vec2-base, HuBERT base) were trained
  without attention masks; their first convolution is followed by a group norm with one group
  per channel, whose statistics run over the whole time axis, padding included. Models with
  ``"layer"`` (wav2vec2-large-lv60, ``do_stable_layer_norm``) normalise each frame on its own and
  take an attention mask, which zeroes padded frames before the positional convolution and hides
  them from self-attention.
* Hidden states (``output_hidden_states=True``): a tuple of ``num_hidden_layers + 1`` tensors
  [batch, frames, hidden_size]. Entry 0 is the input of the first transformer layer: the
  projected CNN features plus the convolutional position embedding (layer-normed for "group"
  models, not for "layer" models, whose encoder norms only inside each layer); entry ``i`` is the
  output of layer ``i``; the last entry equals ``last_hidden_state`` (for "layer" models the
  final layer norm is applied to it only).

How this backend uses them:

* Batching invariance (a clip's frames must not depend on the batch): "layer" models run
  batches padded to the longest window with attention masks, which leaves every valid frame as
  computed alone (to float rounding). For "group" models no mask can make padding invisible to
  the group norm, so they run without padding at all: windows are bucketed by exact length and
  only equal-length windows share a call. Full windows of a long clip all have the same length,
  so only each clip's last window runs on its own unless another clip's matches; measured on
  this 2-core CPU with the base architecture, one 10 s window per call runs at ~13x real time
  against ~16x for four per call, so the price is about a fifth of the throughput, for the
  odd-length windows only.
* Long inputs are cut into windows of ``window_seconds`` (10 s) without overlap; each window is
  embedded as if it were a clip of its own (normalised over its own samples) and the windows'
  frames are concatenated in time order. Frame ``j`` of window ``k`` is centred near
  ``k * window_seconds + j * frame_hop_seconds``: the last ~(receptive field - hop) samples of a
  window start no frame, so a 10 s window gives 499 frames, not 500.
* A clip or window shorter than the receptive field (400 samples for the base models) is padded
  with ``padding_value`` up to it after normalisation, so that every clip with a sample has a
  frame; a clip of length 0 has none.

Importing transformers' TF models sets ``TF_USE_LEGACY_KERAS=1`` in ``os.environ``
(``transformers.modeling_tf_utils``), which routes ``tf.keras`` to tf_keras (Keras 2) if it is
first touched afterwards, and leaks into child processes. transformers is therefore imported
only while a model loads, and the variable is put back as it was afterwards: transformers keeps
using tf_keras, which it imported directly, while ``tf.keras`` and ``import keras`` stay Keras 3
for the rest of the process.
"""

from __future__ import annotations

import contextlib
import json
import os

import numpy as np

from tfaudio.quiet import tf  # TensorFlow imported without its start-up noise
from tfaudio.assets import files_sha256
from tfaudio.data.windows import WindowGeometry
from tfaudio.models.base import FrameEmbeddings, Representation, check_batch
from tfaudio.models.wav2vec2.config import (
    NORMALIZE_EPSILON,
    Wav2Vec2Params,
    conv_frames,
    frame_hop_samples,
    receptive_field,
)
from tfaudio.models.wav2vec2.files import ModelFilesError, read_preprocessing, resolve_model

# SpecAugment's learned mask vector: only used in training, absent from some checkpoints.
_TRAINING_ONLY_VARIABLES = ("masked_spec_embed",)


def normalize(samples: np.ndarray) -> np.ndarray:
    """float [n] -> float32 [n] with zero mean and unit variance, as Wav2Vec2FeatureExtractor:
    ``(x - mean) / sqrt(var + 1e-7)``. Statistics in float64, so long inputs lose no precision."""
    values = np.asarray(samples, dtype=np.float64)
    return ((values - values.mean()) / np.sqrt(values.var() + NORMALIZE_EPSILON)).astype(np.float32)


@contextlib.contextmanager
def keep_keras_3():
    """Import transformers' TF models inside this block to keep ``tf.keras`` on Keras 3: it puts
    TF_USE_LEGACY_KERAS back as it was before (see the module notes)."""
    before = os.environ.get("TF_USE_LEGACY_KERAS")
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TF_USE_LEGACY_KERAS", None)
        else:
            os.environ["TF_USE_LEGACY_KERAS"] = before


class HFAudioEncoder(Representation):
    """A Hugging Face TF audio encoder (``TFAutoModel``, fed ``input_values``) over waveform batches.

    Attributes beyond ``Representation``'s: ``params``; ``resolved`` (the files);
    ``preprocessing``; ``model`` (the transformers TF model); ``uses_attention_mask`` (True for
    ``feat_extract_norm == "layer"`` models, see the module notes); ``receptive_field`` (samples).
    """

    def __init__(self, params: Wav2Vec2Params = Wav2Vec2Params()):
        self.params = params
        self.name = self._registry_name()
        self.resolved = resolve_model(params.model, params.revision)
        self.preprocessing = read_preprocessing(self.resolved)
        with keep_keras_3():
            import transformers

            self._transformers_version = transformers.__version__
            self.model = self._load_model(transformers)
        config = self.model.config
        for field in ("conv_kernel", "conv_stride", "feat_extract_norm", "num_hidden_layers", "hidden_size"):
            if not hasattr(config, field):
                raise ModelFilesError(
                    f"{self.resolved.config}: {config.model_type} has no '{field}', so it is not a "
                    f"wav2vec2-style audio encoder (convolutional feature encoder + transformer)"
                )
        self._kernels, self._strides = tuple(config.conv_kernel), tuple(config.conv_stride)
        self.uses_attention_mask = config.feat_extract_norm == "layer"
        self.receptive_field = receptive_field(self._kernels, self._strides)
        self.sample_rate = self.preprocessing.sample_rate
        self.frame_hop_seconds = frame_hop_samples(self._strides) / self.sample_rate
        self.window_samples = (
            None if params.window_seconds is None else round(params.window_seconds * self.sample_rate)
        )
        if self.window_samples is not None and self.window_samples < self.receptive_field:
            raise ValueError(
                f"window_seconds={params.window_seconds} is shorter than one frame's receptive field "
                f"({self.receptive_field} samples)"
            )
        # The network already runs a long clip as windows of window_samples from its start, each on
        # its own: the pipeline's windows are whole multiples of them, without context.
        self.window_geometry = (
            None if self.window_samples is None else WindowGeometry(step=self.window_samples, span=self.receptive_field)
        )
        states = config.num_hidden_layers + 1
        if isinstance(params.layer, int) and not -states <= params.layer < states:
            raise ValueError(f"layer={params.layer} outside the {states} hidden states (-{states}..{states - 1})")
        self.dim = config.hidden_size * (states if params.layer == "all" else 1)
        self._run = tf.function(
            self._hidden,
            autograph=False,  # the Hugging Face graph branches on static shapes only; AutoGraph only slows the trace
            input_signature=(
                tf.TensorSpec([None, None], tf.float32, name="input_values"),
                tf.TensorSpec([None, None], tf.int32, name="attention_mask"),
            ),
        )
        self._identity = self._make_identity()

    def _registry_name(self) -> str:
        return f"hf:{self.params.model}"

    def _model_class(self, transformers):
        return transformers.TFAutoModel

    def _load_model(self, transformers):
        """The TF model from the resolved directory (no network: it is a local path)."""
        resolved = self.resolved
        model, info = self._model_class(transformers).from_pretrained(
            str(resolved.directory), use_safetensors=resolved.safetensors, output_loading_info=True
        )
        if getattr(model, "main_input_name", None) != "input_values":
            raise ModelFilesError(
                f"{self.params.model}: {type(model).__name__} takes {getattr(model, 'main_input_name', '?')}, "
                f"not raw waveforms (input_values); only wav2vec2-style encoders are supported"
            )
        missing = [key for key in info["missing_keys"] if not any(v in key for v in _TRAINING_ONLY_VARIABLES)]
        if missing or info["mismatched_keys"]:
            raise ModelFilesError(
                f"{resolved.weights[0]}: does not fit {type(model).__name__}: missing {missing[:5]}, "
                f"mismatched {list(info['mismatched_keys'])[:5]}"
            )
        return model

    def _hidden(self, input_values, attention_mask):
        """float32 [batch, samples], int32 [batch, samples] -> float32 [batch, frames, dim].

        The mask reaches only "layer" models; "group" models get batches without padding.
        """
        layer = self.params.layer
        outputs = self.model(
            input_values,
            attention_mask=attention_mask if self.uses_attention_mask else None,
            output_hidden_states=layer != "last",
            training=False,
        )
        if layer == "last":
            return outputs.last_hidden_state
        if layer == "all":
            return tf.concat(outputs.hidden_states, axis=-1)
        return outputs.hidden_states[layer]

    def num_frames(self, num_samples: int) -> int:
        """Frames of a clip of ``num_samples``: its windows' frames, each window padded to the
        receptive field if shorter."""
        window = self.window_samples or max(num_samples, 1)
        full, rest = divmod(num_samples, window)
        frames = full * conv_frames(window, self._kernels, self._strides)
        if rest:
            frames += conv_frames(max(rest, self.receptive_field), self._kernels, self._strides)
        return frames

    def _prepare(self, samples: np.ndarray) -> np.ndarray:
        """One window float32 [n > 0] -> the network input for it alone [max(n, receptive_field)]."""
        if self.preprocessing.do_normalize:
            samples = normalize(samples)
        short = self.receptive_field - len(samples)
        if short > 0:
            samples = np.pad(samples, (0, short), constant_values=self.preprocessing.padding_value)
        return np.asarray(samples, dtype=np.float32)

    def _batches(self, sizes: list[int]) -> list[list[int]]:
        """Indices of windows grouped into network calls: sorted by length so padding is small;
        for "group" models only windows of equal length share a call."""
        batches: list[list[int]] = []
        for index in sorted(range(len(sizes)), key=sizes.__getitem__):
            last = batches[-1] if batches else None
            if (
                last is not None
                and len(last) < self.params.batch_size
                and (self.uses_attention_mask or sizes[last[0]] == sizes[index])
            ):
                last.append(index)
            else:
                batches.append([index])
        return batches

    def frames(self, waveforms: np.ndarray, lengths: np.ndarray) -> FrameEmbeddings:
        """Hidden states of a zero-padded batch.

        Args:
            waveforms: float32 [batch, samples] at ``sample_rate`` (16 kHz).
            lengths: int [batch] real samples per clip.
        Returns:
            embeddings float32 [batch, frames, dim], mask bool [batch, frames]: clip i has
            ``num_frames(lengths[i])`` valid frames, equal (≤ 1e-4) to the clip's alone.
        """
        waveforms, lengths = check_batch(waveforms, lengths)

        owners, inputs = [], []  # per window: its clip, its network input; in time order per clip
        for clip, length in enumerate(lengths.tolist()):
            window = self.window_samples or max(length, 1)
            for start in range(0, length, window):
                owners.append(clip)
                inputs.append(self._prepare(waveforms[clip, start : min(start + window, length)]))

        outputs: list[np.ndarray | None] = [None] * len(inputs)
        sizes = [len(values) for values in inputs]
        for batch in self._batches(sizes):
            width = max(sizes[index] for index in batch)
            values = np.zeros((len(batch), width), np.float32)
            mask = np.zeros((len(batch), width), np.int32)
            for row, index in enumerate(batch):
                values[row, : sizes[index]] = inputs[index]
                mask[row, : sizes[index]] = 1
            hidden = self._run(tf.constant(values), tf.constant(mask)).numpy()
            for row, index in enumerate(batch):
                outputs[index] = hidden[row, : conv_frames(sizes[index], self._kernels, self._strides)]

        counts = [self.num_frames(length) for length in lengths.tolist()]
        embeddings = np.zeros((len(lengths), max(counts, default=0), self.dim), np.float32)
        filled = [0] * len(lengths)
        for clip, frames in zip(owners, outputs):
            embeddings[clip, filled[clip] : filled[clip] + len(frames)] = frames
            filled[clip] += len(frames)
        mask = np.arange(embeddings.shape[1])[np.newaxis, :] < np.asarray(counts)[:, np.newaxis]
        return FrameEmbeddings(embeddings, mask)

    def _make_identity(self) -> dict:
        resolved, preprocessing = self.resolved, self.preprocessing
        return {
            "name": self.name,
            "model": self.params.model,
            "revision": resolved.revision,
            "model_class": type(self.model).__name__,
            "config_sha256": files_sha256([resolved.config]),
            "weights_files": [path.name for path in resolved.weights],
            "weights_sha256": files_sha256(resolved.weights),
            "layer": self.params.layer,
            "window_seconds": self.params.window_seconds,
            "sample_rate": self.sample_rate,
            "normalization": {
                "do_normalize": preprocessing.do_normalize,
                "epsilon": NORMALIZE_EPSILON,
                "padding_value": preprocessing.padding_value,
            },
            "transformers": self._transformers_version,
        }

    def identity(self) -> dict:
        """Model id or path, hub commit, digests of config.json and the weight files, layer,
        window, normalisation and transformers version (digests computed once, at load)."""
        return dict(self._identity)


class Wav2Vec2(HFAudioEncoder):
    """Wav2Vec2 through ``TFWav2Vec2Model``, registered as "wav2vec2"; see :class:`HFAudioEncoder`.

    Any Wav2Vec2 checkpoint works (the default is ``facebook/wav2vec2-base-960h``); its CTC head,
    if any, is not loaded.
    """

    def _registry_name(self) -> str:
        return "wav2vec2"

    def _model_class(self, transformers):
        model_type = json.loads(self.resolved.config.read_text()).get("model_type")
        if model_type != "wav2vec2":
            raise ModelFilesError(
                f"{self.resolved.config}: model_type {model_type!r}, not 'wav2vec2'; use the generic "
                f"'hf:{self.params.model}' representation (HFAudioEncoder)"
            )
        return transformers.TFWav2Vec2Model
