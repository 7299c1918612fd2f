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
import urllib.parse
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfaudio.models.base import FrameEmbeddings, Representation, check_batch
from tfaudio.models.weights import files_sha256, offline_switch, reachable

DEFAULT_MODEL = "facebook/wav2vec2-base-960h"
#: The epsilon of ``Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm``.
NORMALIZE_EPSILON = 1e-7
#: Either variable set to 1/on/yes/true keeps every load to the local Hugging Face cache.
#: Without offline mode, how long the hub gets to accept a connection before the cache is used.
HUB_PROBE_TIMEOUT_SECONDS = 3.0
LAYERS = ("last", "all")

# Loadable weights in order of preference: TF's own HDF5 first (no name mapping), then
# safetensors, which transformers maps into TF without torch.
_TF_WEIGHTS = ("tf_model.h5", "tf_model.h5.index.json")
_SAFETENSORS_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
_PYTORCH_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")
# SpecAugment's learned mask vector: only used in training, absent from some checkpoints.
_TRAINING_ONLY_VARIABLES = ("masked_spec_embed",)


class ModelFilesError(OSError):
    """A model that cannot be found or loaded; the message names the model, the file and the fix."""


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


@dataclass(frozen=True)
class ResolvedModel:
    """A model's files on disk: all in ``directory`` (a hub snapshot or the user's folder).

    weights: the files of one checkpoint, an index file first when sharded.
    revision: the hub commit of the snapshot, None for a local directory.
    """

    directory: Path
    config: Path
    preprocessor: Path | None
    weights: tuple[Path, ...]
    revision: str | None

    @property
    def safetensors(self) -> bool:
        return self.weights[0].name in _SAFETENSORS_WEIGHTS


# ----------------------------------------------------------------------------------------------
# Finding the files: a local directory, or the Hugging Face cache / hub.


def _hub_unreachable() -> str | None:
    """None if the hub (or the HTTPS proxy) accepts a TCP connection within the timeout, else why.

    huggingface_hub retries a failed request five times with back-off (about 23 s) before it
    falls back to the cache; one short probe makes a blocked network fail in seconds instead.
    """
    from huggingface_hub import constants

    endpoint = urllib.parse.urlsplit(constants.ENDPOINT)
    proxy = urllib.request.getproxies().get(endpoint.scheme)
    target = urllib.parse.urlsplit(proxy) if proxy else endpoint
    port = target.port or (443 if target.scheme == "https" else 80)
    if not reachable(target.hostname, port, HUB_PROBE_TIMEOUT_SECONDS):
        return f"{target.hostname}:{port} is unreachable"
    return None


def _fill_hint(model: str, cache_dir: str) -> str:
    from huggingface_hub.file_download import repo_folder_name

    folder = Path(cache_dir) / repo_folder_name(repo_id=model, repo_type="model")
    return (
        f"To fill the cache, run `hf download {model} config.json preprocessor_config.json tf_model.h5` "
        f"(`huggingface-cli download` before huggingface_hub 0.34) on a machine with internet and copy "
        f"{folder} to the same place here (or point HF_HUB_CACHE at the copy), or download the files "
        f"anywhere and pass their directory as the model"
    )


def resolve_model(model: str, revision: str | None = None) -> ResolvedModel:
    """Find (downloading if allowed) the files of ``model``: a local directory or a hub id.

    Hub ids go through ``huggingface_hub.hf_hub_download``, so files land in and are read from
    the standard cache (``huggingface_hub.constants.HF_HUB_CACHE``). With TFAUDIO_OFFLINE=1 or
    HF_HUB_OFFLINE=1, or when the hub does not answer a connection within
    ``HUB_PROBE_TIMEOUT_SECONDS``, only the cache is read and no request is made.

    Raises:
        ModelFilesError: naming the model, the missing file, the cache looked in and how to fill it.
    """
    directory = Path(model).expanduser()
    if directory.is_dir():
        return _resolve_directory(directory)

    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    cache_dir = constants.HF_HUB_CACHE
    offline_reason = offline_switch() or _hub_unreachable()

    def fetch(filename: str) -> Path | None:
        try:
            return Path(
                hf_hub_download(model, filename, revision=revision, local_files_only=offline_reason is not None)
            )
        except HFValidationError:
            raise ModelFilesError(
                f"{model!r}: neither an existing directory nor a valid Hugging Face model id"
            ) from None
        except RepositoryNotFoundError:
            raise ModelFilesError(
                f"{model}: no such model on the Hugging Face hub (or it is private or gated: log in "
                f"with `hf auth login` or set HF_TOKEN)"
            ) from None
        except LocalEntryNotFoundError as err:
            if offline_reason is None:  # the hub failed after the probe, and there is no cached copy
                raise ModelFilesError(
                    f"{model}: downloading {filename} failed ({err}) and it is not in the Hugging Face cache "
                    f"{cache_dir}. {_fill_hint(model, cache_dir)}."
                ) from None
            return None  # not cached; whether it is required is the caller's call
        except EntryNotFoundError:  # the repository has no such file
            return None

    def missing(what: str) -> ModelFilesError:
        if offline_reason is None:
            return ModelFilesError(f"{model}: the hub repository has no {what}")
        return ModelFilesError(
            f"{model}: {what} is not in the Hugging Face cache {cache_dir} and the hub is not used "
            f"({offline_reason}). {_fill_hint(model, cache_dir)}."
        )

    config = fetch("config.json")
    if config is None:
        raise missing("config.json")
    preprocessor = fetch("preprocessor_config.json")
    weights = None
    for name in _TF_WEIGHTS + _SAFETENSORS_WEIGHTS:
        first = fetch(name)
        if first is not None:
            shards = _shard_names(first)
            weights = (first, *(fetch(shard) for shard in shards))
            if any(path is None for path in weights):
                absent = [shard for shard, path in zip(shards, weights[1:]) if path is None]
                raise missing(f"weight shard(s) {absent} of {name}")
            break
    if weights is None:
        if any(fetch(name) is not None for name in _PYTORCH_WEIGHTS):
            raise _pytorch_only_error(model)
        raise missing(f"TF weights ({' / '.join(_TF_WEIGHTS + _SAFETENSORS_WEIGHTS)})")
    snapshot = config.parent
    if any(path.parent != snapshot for path in (preprocessor, *weights) if path is not None):
        raise ModelFilesError(f"{model}: the cached files belong to different snapshots; download them again")
    return ResolvedModel(snapshot, config, preprocessor, weights, revision=snapshot.name)


def _resolve_directory(directory: Path) -> ResolvedModel:
    config = directory / "config.json"
    if not config.is_file():
        raise ModelFilesError(f"{directory}: no config.json, so not a saved Hugging Face model (save_pretrained)")
    for name in _TF_WEIGHTS + _SAFETENSORS_WEIGHTS:
        first = directory / name
        if first.is_file():
            weights = (first, *(directory / shard for shard in _shard_names(first)))
            absent = [path.name for path in weights if not path.is_file()]
            if absent:
                raise ModelFilesError(f"{first}: names weight shards that are missing: {absent}")
            break
    else:
        if any((directory / name).is_file() for name in _PYTORCH_WEIGHTS):
            raise _pytorch_only_error(str(directory))
        raise ModelFilesError(
            f"{directory}: no TF weights ({' / '.join(_TF_WEIGHTS + _SAFETENSORS_WEIGHTS)}); save the model "
            f"with save_pretrained"
        )
    preprocessor = directory / "preprocessor_config.json"
    return ResolvedModel(directory, config, preprocessor if preprocessor.is_file() else None, weights, None)


def _shard_names(first: Path) -> list[str]:
    """The shard files an ``*.index.json`` lists (sorted), or none for a single-file checkpoint."""
    if not first.name.endswith(".index.json"):
        return []
    try:
        return sorted(set(json.loads(first.read_text())["weight_map"].values()))
    except (ValueError, KeyError) as err:
        raise ModelFilesError(f"{first}: not a weights index with a 'weight_map' ({err!r})") from None


def _pytorch_only_error(model: str) -> ModelFilesError:
    return ModelFilesError(
        f"{model}: only PyTorch weights (pytorch_model.bin); loading them into TF needs torch "
        f"(from_pt=True), which tfaudio does not install. Convert once where torch is available "
        f"(TFWav2Vec2Model.from_pretrained(..., from_pt=True).save_pretrained(dir)) and pass that directory"
    )


def read_preprocessing(resolved: ResolvedModel) -> Preprocessing:
    """The feature extractor settings from ``preprocessor_config.json``; defaults, with a warning,
    when the model has none."""
    if resolved.preprocessor is None:
        defaults = Preprocessing(source="defaults of Wav2Vec2FeatureExtractor (no preprocessor_config.json)")
        warnings.warn(
            f"{resolved.directory}: no preprocessor_config.json; using Wav2Vec2FeatureExtractor's defaults "
            f"(sampling_rate={defaults.sample_rate}, do_normalize={defaults.do_normalize})",
            stacklevel=3,
        )
        return defaults
    try:
        settings = json.loads(resolved.preprocessor.read_text())
    except ValueError as err:
        raise ModelFilesError(f"{resolved.preprocessor}: not valid JSON ({err})") from None
    if settings.get("feature_size", 1) != 1:
        raise ModelFilesError(
            f"{resolved.preprocessor}: feature_size={settings['feature_size']}; this backend feeds raw "
            f"waveforms (feature_size 1)"
        )
    base = Preprocessing()
    return Preprocessing(
        sample_rate=int(settings.get("sampling_rate", base.sample_rate)),
        do_normalize=bool(settings.get("do_normalize", base.do_normalize)),
        padding_value=float(settings.get("padding_value", base.padding_value)),
        source=str(resolved.preprocessor),
    )


# ----------------------------------------------------------------------------------------------
# Pure functions of the network's input and frames.


def normalize(samples: np.ndarray) -> np.ndarray:
    """float [n] -> float32 [n] with zero mean and unit variance, as Wav2Vec2FeatureExtractor:
    ``(x - mean) / sqrt(var + 1e-7)``. Statistics in float64, so long inputs lose no precision."""
    values = np.asarray(samples, dtype=np.float64)
    return ((values - values.mean()) / np.sqrt(values.var() + NORMALIZE_EPSILON)).astype(np.float32)


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


# ----------------------------------------------------------------------------------------------
# The representation.


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
        self.frame_hop_seconds = float(np.prod(self._strides)) / self.sample_rate
        self.window_samples = (
            None if params.window_seconds is None else round(params.window_seconds * self.sample_rate)
        )
        if self.window_samples is not None and self.window_samples < self.receptive_field:
            raise ValueError(
                f"window_seconds={params.window_seconds} is shorter than one frame's receptive field "
                f"({self.receptive_field} samples)"
            )
        states = config.num_hidden_layers + 1
        if isinstance(params.layer, int) and not -states <= params.layer < states:
            raise ValueError(f"layer={params.layer} outside the {states} hidden states (-{states}..{states - 1})")
        self.dim = config.hidden_size * (states if params.layer == "all" else 1)
        self._run = tf.function(
            self._hidden,
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
