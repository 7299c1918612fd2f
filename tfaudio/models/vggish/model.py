"""VGGish as a Keras 3 network, with its front end, TF1-checkpoint loader and PCA postprocessing.

VGGish (Hershey et al. 2017; tensorflow/models ``research/audioset/vggish``) is the VGG-like
network whose 128-d embeddings came with AudioSet. The facts reproduced here come from that
release:

* Front end (``vggish_params.py``, ``vggish_input.py``, ``mel_features.py``): 16 kHz mono;
  400-sample (25 ms) frames every 160 samples (10 ms), no centring; the periodic Hann window;
  ``|rfft|`` with 512 points; 64 mel bands over 125-7500 Hz from ``mel_features``' own numpy
  filterbank (HTK mel, triangles linear in mel, the DC bin zeroed); ``log(mel + 0.01)``;
  non-overlapping examples of 96 frames (0.96 s windows, 0.96 s hop).
* Network (``vggish_slim.py``): 3x3 SAME convolutions with ReLU, 64 -> pool -> 128 -> pool ->
  256, 256 -> pool -> 512, 512 -> pool (2x2/2 max pools), flatten (6 x 4 x 512 = 12288), two
  4096-wide ReLU layers, a 128-wide embedding layer. The current release leaves the embedding
  layer linear (its README: "the embedding value is pre-activation"); the first releases, and
  ports made from them such as torchvggish, applied ReLU there too: ``VggishParams.embedding_relu``.
* Postprocessing (``vggish_postprocess.py``): ``pca_eigen_vectors @ (embedding - pca_means)``,
  clipped to [-2, 2] and mapped to 0..255 with a truncating cast to uint8, the format of the
  embeddings AudioSet published.

Padding. ``vggish_input`` frames a clip of ``n`` samples into ``1 + (n - 400) // 160`` STFT
frames and ``1 + (frames - 96) // 96`` examples, i.e. ``1 + (n - 15600) // 15360``: the remainder
after the last whole example is dropped, and a clip shorter than 15600 samples (0.975 s) gives no
example at all. Here such a clip is zero-padded to 15600 samples so that every clip gets at least
one embedding (as YAMNet pads, see ``tfaudio.models.yamnet``); longer clips follow the release
exactly, remainder dropped. A 1 s clip gives 1 example, 5 s give 5, 10.3 s give 10.

The official checkpoint is a TF1 (slim) checkpoint; :data:`CHECKPOINT_VARIABLES` lists its
variables and :func:`load_checkpoint` maps each one explicitly onto the Keras layers.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

import numpy as np

from tfaudio.quiet import keras, tf  # TensorFlow imported without its start-up noise
from tfaudio.assets import VGGISH_CKPT, VGGISH_PCA, WeightsError, files_sha256
from tfaudio.models.base import FrameEmbeddings, Representation, check_batch
from tfaudio.models.grouping import leading_mask, over_masked, waveform_graph
from tfaudio.models.vggish.config import EMBEDDING_SIZE, VggishParams

PCA_EIGEN_VECTORS_KEY = "pca_eigen_vectors"


PCA_MEANS_KEY = "pca_means"


# (checkpoint scope, Keras layer name, kind, units) in network order. The scopes are those of
# vggish_slim.py: `slim.repeat(..., scope="conv3")` names its layers conv3/conv3_1, conv3/conv3_2,
# and every slim layer stores `weights` and `biases`. A "pool" row has no variables.
_LAYERS = (
    ("vggish/conv1", "conv1", "conv", 64),
    (None, "pool1", "pool", None),
    ("vggish/conv2", "conv2", "conv", 128),
    (None, "pool2", "pool", None),
    ("vggish/conv3/conv3_1", "conv3_1", "conv", 256),
    ("vggish/conv3/conv3_2", "conv3_2", "conv", 256),
    (None, "pool3", "pool", None),
    ("vggish/conv4/conv4_1", "conv4_1", "conv", 512),
    ("vggish/conv4/conv4_2", "conv4_2", "conv", 512),
    (None, "pool4", "pool", None),
    ("vggish/fc1/fc1_1", "fc1_1", "dense", 4096),
    ("vggish/fc1/fc1_2", "fc1_2", "dense", 4096),
    ("vggish/fc2", "fc2", "embedding", EMBEDDING_SIZE),
)


#: Examples through the network at once (~1.6 MB of first-layer activations each); more go in groups.
MAX_EXAMPLES_PER_CALL = 256


# Keras 3's variable names -> slim's.
_SLIM_NAMES = {"kernel": "weights", "bias": "biases"}


def _variable_shapes() -> dict[str, tuple[int, ...]]:
    shapes, channels, height, width = {}, 1, 96, 64
    for scope, _, kind, units in _LAYERS:
        if kind == "pool":
            height, width = height // 2, width // 2
            continue
        fan_in = channels if kind == "conv" else channels * height * width
        shapes[f"{scope}/weights"] = (3, 3, channels, units) if kind == "conv" else (fan_in, units)
        shapes[f"{scope}/biases"] = (units,)
        channels, height, width = units, (height if kind == "conv" else 1), (width if kind == "conv" else 1)
    return shapes


#: Every variable of the official ``vggish_model.ckpt`` and its shape (18 variables, 72,141,184
#: parameters), derived from the layer table: ``vggish/conv1/weights`` (3, 3, 1, 64) ...
#: ``vggish/fc1/fc1_1/weights`` (12288, 4096) ... ``vggish/fc2/biases`` (128,).
CHECKPOINT_VARIABLES: dict[str, tuple[int, ...]] = _variable_shapes()


# TF1 Savers store the training step beside the model; it carries no weights.
_BOOKKEEPING = frozenset({"global_step"})


def num_examples(num_samples, params: VggishParams = VggishParams()):
    """Examples for a clip of ``num_samples`` (an int, or an int tensor): ``1 + (n - 15600) // 15360``
    as in ``vggish_input``, but at least 1 (shorter clips are padded to one example)."""
    extra = num_samples - params.example_samples
    extra = tf.maximum(extra, 0) if tf.is_tensor(extra) else max(int(extra), 0)
    return 1 + extra // params.example_hop_samples


def mel_matrix(params: VggishParams = VggishParams()) -> np.ndarray:
    """float64 [257, 64]: the filterbank of ``mel_features.spectrogram_to_mel_matrix``.

    Computed in numpy as the release does (float64, bin frequencies ``linspace(0, nyquist, 257)``,
    band edges evenly spaced in HTK mel, triangles linear in mel, the DC row zeroed as HTK does);
    ``tf.signal.linear_to_mel_weight_matrix`` builds the same triangles in float32.
    """

    def hz_to_mel(hz):
        return 1127.0 * np.log1p(np.asarray(hz, np.float64) / 700.0)

    bins_mel = hz_to_mel(np.linspace(0.0, params.sample_rate / 2, params.num_spectrogram_bins))
    edges = np.linspace(hz_to_mel(params.mel_min_hz), hz_to_mel(params.mel_max_hz), params.mel_bands + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, np.newaxis] - lower) / (centre - lower)
    falling = (upper - bins_mel[:, np.newaxis]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0
    return weights


def log_mel_spectrogram(waveforms: tf.Tensor, params: VggishParams = VggishParams()) -> tf.Tensor:
    """float32 [batch, samples] -> float32 [batch, 1 + (samples - 400) // 160, 64], log(mel + 0.01)."""
    spectrum = tf.signal.stft(
        waveforms,
        frame_length=params.stft_window_samples,
        frame_step=params.stft_hop_samples,
        fft_length=params.fft_length,
    )  # the default window is the periodic Hann window, as mel_features' periodic_hann
    filterbank = tf.constant(mel_matrix(params), tf.float32)
    return tf.math.log(tf.matmul(tf.abs(spectrum), filterbank) + params.log_offset)


def pad_waveforms(waveforms: tf.Tensor, lengths: tf.Tensor, params: VggishParams) -> tf.Tensor:
    """float32 [batch, samples], int32 [batch] -> float32 [batch, max(max(lengths), 15600)].

    Samples past each clip's length are zeroed, whatever the batch held there, so that a short
    clip's padded example equals the clip padded on its own.
    """
    longest = tf.reduce_max(tf.concat([lengths, [0]], axis=0))  # the 0 keeps an empty batch valid
    inside = tf.range(longest)[tf.newaxis, :] < lengths[:, tf.newaxis]
    trimmed = tf.where(inside, waveforms[:, :longest], 0.0)
    return tf.pad(trimmed, [[0, 0], [0, tf.maximum(params.example_samples - longest, 0)]])


def build_network(params: VggishParams = VggishParams(), name: str = "vggish") -> keras.Model:
    """log-mel examples float32 [n, 96, 64] -> embeddings float32 [n, 128] (before postprocessing).

    Layer names are the checkpoint's leaf scopes (``conv3_1``, ``fc1_2``, ...). Weights are
    random (Keras' defaults) until :func:`load_checkpoint`.
    """
    inputs = keras.Input((params.example_frames, params.mel_bands), name="log_mel_examples")
    x = keras.layers.Reshape((params.example_frames, params.mel_bands, 1), name="reshape")(inputs)
    for _, layer_name, kind, units in _LAYERS:
        if kind == "pool":
            x = keras.layers.MaxPooling2D(2, strides=2, padding="same", name=layer_name)(x)
        elif kind == "conv":
            x = keras.layers.Conv2D(units, 3, padding="same", activation="relu", name=layer_name)(x)
        else:
            if kind == "dense" and len(x.shape) == 4:
                # [n, 6, 4, 512] row-major, as slim.flatten orders fc1_1's 12288 inputs.
                x = keras.layers.Flatten(name="flatten")(x)
            relu = kind == "dense" or params.embedding_relu
            x = keras.layers.Dense(units, activation="relu" if relu else None, name=layer_name)(x)
    return keras.Model(inputs, x, name=name)


def checkpoint_files(path: str | os.PathLike) -> list[Path]:
    """The files behind a checkpoint path: the file itself (V1, as the official
    ``vggish_model.ckpt``) or ``<prefix>.index`` and ``<prefix>.data-*`` (V2)."""
    path = Path(path)
    if path.is_file():
        return [path]
    index = path.with_name(path.name + ".index")
    if index.is_file():
        return [index, *sorted(path.parent.glob(path.name + ".data-*"))]
    raise WeightsError(
        f"{path}: checkpoint not found (neither a V1 checkpoint file nor a V2 '{index.name}'); the official "
        f"file is {VGGISH_CKPT.url}"
    )


def load_checkpoint(network: keras.Model, path: str | os.PathLike) -> None:
    """Assign every variable of ``network`` (from :func:`build_network`) from a VGGish TF1 checkpoint.

    Every name in :data:`CHECKPOINT_VARIABLES` must be in the checkpoint with that shape, and
    every checkpoint variable must be one of them (``global_step`` aside). All names and shapes
    are checked from the checkpoint's index before any tensor is read, and nothing is assigned
    unless all fit.

    Raises:
        WeightsError: naming the file and every missing, unexpected or mis-shaped variable.
    """
    checkpoint_files(path)  # a clear "not found" before TensorFlow's generic one
    try:
        reader = tf.train.load_checkpoint(str(path))
    except (tf.errors.OpError, ValueError) as err:
        message = getattr(err, "message", str(err)).splitlines()[0]
        raise WeightsError(f"{path}: not a TensorFlow checkpoint ({message}); expected VGGish's vggish_model.ckpt") from None
    stored = reader.get_variable_to_shape_map()
    problems = []
    missing = [name for name in CHECKPOINT_VARIABLES if name not in stored]
    if missing:
        problems.append(f"missing variables {missing}")
    unexpected = sorted(set(stored) - set(CHECKPOINT_VARIABLES) - _BOOKKEEPING)
    if unexpected:
        problems.append(f"variables {unexpected} have no counterpart in VGGish")
    for name, shape in CHECKPOINT_VARIABLES.items():
        if name in stored and tuple(stored[name]) != shape:
            problems.append(f"variable '{name}' has shape {tuple(stored[name])}, VGGish needs {shape}")
    if problems:
        raise WeightsError(f"{path}: does not hold the VGGish architecture of vggish_slim.py: " + "; ".join(problems))

    assignments = []
    for scope, layer_name, kind, _ in _LAYERS:
        if kind == "pool":
            continue
        layer = network.get_layer(layer_name)
        for variable in layer.weights:
            assignments.append((variable, reader.get_tensor(f"{scope}/{_SLIM_NAMES[variable.name]}")))
    for variable, value in assignments:
        variable.assign(value)


def load_pca_params(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(eigen vectors float64 [128, 128], means float64 [128, 1]) from ``vggish_pca_params.npz``.

    Raises:
        WeightsError: naming the file and the missing or mis-shaped array.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: PCA parameters not found (the official file is {VGGISH_PCA.url})")
    try:
        with np.load(path) as arrays:
            found = {key: np.asarray(arrays[key], np.float64) for key in arrays.files}
    except (OSError, ValueError) as err:
        raise WeightsError(f"{path}: not a numpy .npz file ({err}); expected vggish_pca_params.npz") from None
    expected = {PCA_EIGEN_VECTORS_KEY: (EMBEDDING_SIZE, EMBEDDING_SIZE), PCA_MEANS_KEY: (EMBEDDING_SIZE, 1)}
    for key, shape in expected.items():
        if key not in found:
            raise WeightsError(f"{path}: no array '{key}' (the file has {sorted(found)})")
        # The release reshapes the means to a column; accept them flat as well.
        value = found[key].reshape(shape) if found[key].size == np.prod(shape) else found[key]
        if value.shape != shape:
            raise WeightsError(f"{path}: array '{key}' has shape {found[key].shape}, expected {shape}")
        found[key] = value
    return found[PCA_EIGEN_VECTORS_KEY], found[PCA_MEANS_KEY]


def postprocess(embeddings: np.ndarray, eigen_vectors: np.ndarray, means: np.ndarray,
                params: VggishParams = VggishParams()) -> np.ndarray:
    """float [n, 128] -> uint8 [n, 128], the AudioSet release's format (``vggish_postprocess``).

    ``eigen_vectors @ (embedding - means)``, clipped to [quantize_min, quantize_max], scaled to
    [0, 255] and truncated to uint8; in float64 as the release computes it, so that values on a
    quantization step land where the release puts them.
    """
    rotated = (np.asarray(embeddings, np.float64) - means[:, 0]) @ eigen_vectors.T
    clipped = np.clip(rotated, params.quantize_min, params.quantize_max)
    scaled = (clipped - params.quantize_min) * (255.0 / (params.quantize_max - params.quantize_min))
    return scaled.astype(np.uint8)


class VggishOutput(NamedTuple):
    """What :meth:`Vggish.infer` returns for a batch.

    embeddings: float32 [batch, examples, 128], raw (before PCA); log_mel: float32 [batch,
    frames, 64]; example_mask: bool [batch, examples], the examples each clip has on its own.
    Examples outside the mask are not computed: their embeddings are zero.
    """

    embeddings: np.ndarray
    log_mel: np.ndarray
    example_mask: np.ndarray


class Vggish(Representation):
    """VGGish over batches of waveforms, as a :class:`Representation` of 128-d frames every 0.96 s.

    ``network`` is the Keras example embedder (:func:`build_network`); ``embed_graph`` the
    ``tf.function`` behind :meth:`infer`, traced once for any batch size and length.

    Args:
        checkpoint_path: a VGGish TF1 checkpoint (``vggish_model.ckpt``), or None for random weights.
        pca_params_path: ``vggish_pca_params.npz``, needed when ``postprocess`` is set.
        postprocess: give the release's PCA-whitened, 8-bit quantized embeddings (values 0..255
            as float32) instead of the raw ones.
    """

    name = "vggish"
    dim = EMBEDDING_SIZE

    def __init__(
        self,
        checkpoint_path: str | os.PathLike | None = None,
        pca_params_path: str | os.PathLike | None = None,
        *,
        postprocess: bool = False,
        params: VggishParams = VggishParams(),
    ):
        if postprocess and pca_params_path is None:
            raise ValueError(f"postprocess=True needs pca_params_path (the official file is {VGGISH_PCA.url})")
        if pca_params_path is not None and not postprocess:
            raise ValueError("pca_params_path is only used with postprocess=True; pass both or neither")
        self.params = params
        self.sample_rate = params.sample_rate
        self.frame_hop_seconds = params.example_hop_seconds
        self.window_geometry = params.window_geometry
        self.postprocess = postprocess
        self.network = build_network(params)
        self._weights_digest = "random"
        if checkpoint_path is not None:
            load_checkpoint(self.network, checkpoint_path)
            self._weights_digest = files_sha256(checkpoint_files(checkpoint_path))
        self._pca = None
        if postprocess:
            self._pca = load_pca_params(pca_params_path)
            self._pca_digest = files_sha256([Path(pca_params_path)])
        self.embed_graph = waveform_graph(self._forward)

    def _forward(self, waveforms, lengths):
        """(float32 [batch, samples], int32 [batch]) -> VggishOutput of tensors."""
        params = self.params
        log_mel = log_mel_spectrogram(pad_waveforms(waveforms, lengths, params), params)
        examples = tf.signal.frame(log_mel, params.example_frames, params.example_hop_frames, axis=1)
        example_mask = leading_mask(examples, num_examples(lengths, params))
        embeddings = over_masked(
            lambda group: self.network(group, training=False), examples, example_mask, MAX_EXAMPLES_PER_CALL,
            EMBEDDING_SIZE,
        )
        return VggishOutput(embeddings, log_mel, example_mask)

    def infer(self, waveforms, lengths=None) -> VggishOutput:
        """Raw embeddings and log-mel of a zero-padded batch, as numpy arrays (:meth:`frames`
        gives the embeddings as a Representation, postprocessed if asked; ``embed`` pools them).

        Args:
            waveforms: float32 [batch, samples], mono at 16 kHz.
            lengths: int [batch] real samples per clip (default: every clip fills the batch).
        Returns:
            VggishOutput; a clip's entries equal those of the clip embedded alone (up to float
            reassociation), its valid examples given by ``example_mask``.
        """
        waveforms, lengths = check_batch(waveforms, lengths)
        output = self.embed_graph(tf.constant(waveforms), tf.constant(lengths, dtype=tf.int32))
        return VggishOutput(*(tensor.numpy() for tensor in output))

    def frames(self, waveforms: np.ndarray, lengths: np.ndarray) -> FrameEmbeddings:
        """float32 [batch, samples], int32 [batch] -> 128-d frames every 0.96 s with their mask;
        postprocessed (0..255 as float32) when the instance was made with ``postprocess=True``."""
        output = self.infer(waveforms, lengths)
        embeddings, mask = output.embeddings, output.example_mask
        if self._pca is not None:
            embeddings = np.zeros_like(embeddings)
            embeddings[mask] = postprocess(output.embeddings[mask], *self._pca, self.params)
        return FrameEmbeddings(embeddings.astype(np.float32), mask)

    def identity(self) -> dict:
        identity = {
            "model": self.name,
            "weights": self._weights_digest,
            "postprocess": self.postprocess,
            "params": asdict(self.params),
        }
        if self.postprocess:
            identity["pca_params"] = self._pca_digest
        return identity
