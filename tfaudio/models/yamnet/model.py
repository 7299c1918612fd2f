"""YAMNet as a Keras 3 network, with its front end, weight loader and batched inference.

YAMNet (tensorflow/models, ``research/audioset/yamnet``) is a MobileNetV1 over log-mel patches,
trained on AudioSet's 521 classes. The facts reproduced here come from that release:

* Front end (``features.py``): 16 kHz mono; ``tf.signal.stft`` with 400-sample (25 ms) frames,
  160-sample (10 ms) hop, FFT length 512 and the periodic Hann window; magnitude; the
  ``tf.signal.linear_to_mel_weight_matrix`` filterbank, 64 bands over 125-7500 Hz (HTK mel);
  ``log(mel + 0.001)``; patches of 96 frames every 48 frames (0.96 s windows, 0.48 s hop).
* Padding (``features.pad_waveform``): a waveform shorter than one patch (0.975 s, i.e. 0.96 s
  plus the 15 ms an STFT window reaches past its last hop) is zero-padded to one patch; a longer
  one is zero-padded up to a whole number of patch hops past the first patch. So a clip of
  ``n`` samples gives ``1 + ceil(max(n - 15600, 0) / 7680)`` patches, the last of them partly
  padding (a 1 s clip gives 2).
* Network (``yamnet.py``): a table of 14 blocks, a 3x3/2 convolution then 13 depthwise-separable
  convolutions, batch norm with ``center=True, scale=False, epsilon=1e-4``, ReLU; global
  average pooling to the 1024-d embedding; a dense layer to 521 logits; sigmoid scores.

``tfaudio.frontend`` is not reused: its frames are ``fft_length`` samples long with the window
centred inside (librosa's framing, 1 + (n - 512) // 160 frames starting 56 samples later) and
its filterbank is librosa's (triangles linear in Hz), while YAMNet frames 400 samples
(1 + (n - 400) // 160 frames) and uses TensorFlow's filterbank (triangles linear in mel).
The front end below is therefore a few pure TF functions, as in the reference.

Keras 3 forbids ``/`` in layer names, so the file's ``layer2/depthwise_conv/bn`` is the layer
``layer2_depthwise_conv_bn`` here; :func:`load_weights` maps every variable explicitly.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

from tfaudio.quiet import keras, tf  # TensorFlow imported without its start-up noise
from tfaudio.assets import YAMNET_CLASS_MAP, YAMNET_H5, WeightsError, sha256_of
from tfaudio.models.base import FrameEmbeddings, FrameGraph, Representation, check_batch
from tfaudio.models.grouping import leading_mask, over_masked, waveform_graph
from tfaudio.models.yamnet.config import BLOCKS, EMBEDDING_SIZE, YamnetParams, yamnet_identity

NUM_BLOCKS = len(BLOCKS)
#: Patches through the network at once (~1.2 GB of activations); more are done in groups.
MAX_PATCHES_PER_CALL = 1024

# Keras 2 called the depthwise kernel `depthwise_kernel`; Keras 3 calls it `kernel`.
_VARIABLE_ALIASES = {"depthwise_kernel": "kernel"}
_BLOCK_NAME = re.compile(r"^layer(\d+)_")


# ----------------------------------------------------------------------------------------------
# Front end: pure functions of ints or tensors.


def _hops_after_first_patch(num_samples, params: YamnetParams):
    extra = num_samples - params.patch_samples
    extra = tf.maximum(extra, 0) if tf.is_tensor(extra) else max(int(extra), 0)
    return -(-extra // params.patch_hop_samples)  # ceil division, valid for ints and int tensors


def padded_length(num_samples, params: YamnetParams):
    """Samples after YAMNet's padding (``features.pad_waveform``): an int, or int32 for a tensor.

    At least ``params.patch_samples``; beyond that, rounded up to whole patch hops.
    """
    return params.patch_samples + params.patch_hop_samples * _hops_after_first_patch(num_samples, params)


def num_patches(num_samples, params: YamnetParams):
    """Patches YAMNet produces for a clip of ``num_samples``: ``1 + ceil(max(n - 15600, 0) / 7680)``."""
    return 1 + _hops_after_first_patch(num_samples, params)


def pad_waveforms(waveforms: tf.Tensor, lengths: tf.Tensor, params: YamnetParams) -> tf.Tensor:
    """float32 [batch, samples], int32 [batch] -> float32 [batch, padded_length(max(lengths))].

    Samples past each clip's length are zeroed, whatever the batch held there, so that every
    clip's leading ``padded_length(length)`` samples equal the clip padded on its own.
    """
    longest = tf.reduce_max(tf.concat([lengths, [0]], axis=0))  # the 0 keeps an empty batch valid
    inside = tf.range(longest)[tf.newaxis, :] < lengths[:, tf.newaxis]
    trimmed = tf.where(inside, waveforms[:, :longest], 0.0)
    return tf.pad(trimmed, [[0, 0], [0, padded_length(longest, params) - longest]])


def log_mel_spectrogram(waveforms: tf.Tensor, params: YamnetParams) -> tf.Tensor:
    """float32 [batch, samples] -> float32 [batch, 1 + (samples - 400) // 160, 64], log(mel + 0.001)."""
    spectrum = tf.signal.stft(
        waveforms,
        frame_length=params.stft_window_samples,
        frame_step=params.stft_hop_samples,
        fft_length=params.fft_length,
    )  # the default window is the periodic Hann window, as in the reference
    filterbank = tf.signal.linear_to_mel_weight_matrix(
        num_mel_bins=params.mel_bands,
        num_spectrogram_bins=params.num_spectrogram_bins,
        sample_rate=params.sample_rate,
        lower_edge_hertz=params.mel_min_hz,
        upper_edge_hertz=params.mel_max_hz,
    )  # [257, 64]
    return tf.math.log(tf.matmul(tf.abs(spectrum), filterbank) + params.log_offset)


def log_mel_patches(log_mel: tf.Tensor, params: YamnetParams) -> tf.Tensor:
    """float32 [batch, frames, 64] -> float32 [batch, 1 + (frames - 96) // 48, 96, 64]."""
    return tf.signal.frame(log_mel, params.patch_frames, params.patch_hop_frames, axis=1)


# ----------------------------------------------------------------------------------------------
# Network.


def _keras_name(file_name: str) -> str:
    """Layer name in the HDF5 file (``layer2/depthwise_conv/bn``) -> Keras 3 layer name."""
    return file_name.replace("/", "_")


def build_network(params: YamnetParams = YamnetParams(), name: str = "yamnet") -> keras.Model:
    """The patch classifier: log-mel patches float32 [n, 96, 64] -> [scores, embeddings].

    scores: float32 [n, num_classes] (``classifier_activation`` of the logits);
    embeddings: float32 [n, 1024], the globally averaged output of the last block.
    Weights are random until :func:`load_weights`.
    """

    def batchnorm(x, file_name):
        return keras.layers.BatchNormalization(
            center=params.batchnorm_center,
            scale=params.batchnorm_scale,
            epsilon=params.batchnorm_epsilon,
            name=_keras_name(file_name),
        )(x)

    inputs = keras.Input((params.patch_frames, params.patch_bands), name="log_mel_patches")
    x = keras.layers.Reshape((params.patch_frames, params.patch_bands, 1), name="reshape")(inputs)
    for index, (kind, stride, filters) in enumerate(BLOCKS, start=1):
        block = f"layer{index}"
        if kind == "conv":
            x = keras.layers.Conv2D(
                filters, 3, strides=stride, padding="same", use_bias=False, name=_keras_name(f"{block}/conv")
            )(x)
            x = batchnorm(x, f"{block}/conv/bn")
            x = keras.layers.ReLU(name=_keras_name(f"{block}/relu"))(x)
            continue
        x = keras.layers.DepthwiseConv2D(
            3, strides=stride, padding="same", use_bias=False, name=_keras_name(f"{block}/depthwise_conv")
        )(x)
        x = batchnorm(x, f"{block}/depthwise_conv/bn")
        x = keras.layers.ReLU(name=_keras_name(f"{block}/depthwise_conv/relu"))(x)
        x = keras.layers.Conv2D(filters, 1, padding="same", use_bias=False, name=_keras_name(f"{block}/pointwise_conv"))(x)
        x = batchnorm(x, f"{block}/pointwise_conv/bn")
        x = keras.layers.ReLU(name=_keras_name(f"{block}/pointwise_conv/relu"))(x)
    embeddings = keras.layers.GlobalAveragePooling2D(name="global_average_pooling2d")(x)
    # The reference leaves this layer unnamed, so Keras 2 saved it as `dense`.
    logits = keras.layers.Dense(params.num_classes, name="dense")(embeddings)
    scores = keras.layers.Activation(params.classifier_activation, name="predictions")(logits)
    return keras.Model(inputs, [scores, embeddings], name=name)


def _text(value) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def load_weights(network: keras.Model, path: str | os.PathLike) -> None:
    """Assign every variable of ``network`` (from :func:`build_network`) from a Keras HDF5 file.

    The file is the legacy layout that Keras 2 ``save_weights`` writes and Google publishes
    (:data:`YAMNET_H5.url`): root attribute ``layer_names``; per layer a group with a
    ``weight_names`` attribute such as ``layer2/depthwise_conv/depthwise_kernel:0``. A file
    written by ``Model.save`` (weights under ``model_weights``) works too.

    The mapping is explicit rather than Keras' legacy by-name loader because the names differ
    (Keras 3 forbids ``/`` in layer names and renamed ``depthwise_kernel`` to ``kernel``) and
    because every variable must be checked: each one of the network must be in the file with
    the same shape, and each one in the file must be used. Nothing is assigned unless all fit.

    Raises:
        WeightsError: naming the file and the missing, unexpected or mis-shaped variable.
    """
    import h5py  # a Keras dependency; only needed here

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found (the official file is {YAMNET_H5.url})")
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise WeightsError(f"{path}: not an HDF5 weights file ({err}); expected YAMNet's yamnet.h5") from None
    with handle:
        root = handle["model_weights"] if "model_weights" in handle else handle
        if "layer_names" not in root.attrs:
            raise WeightsError(
                f"{path}: no 'layer_names' attribute, so not a Keras HDF5 weights file in the layout of "
                f"{YAMNET_H5.url} (a Keras 3 '.weights.h5' file loads with network.load_weights)"
            )
        stored: dict[str, dict[str, tuple[str, object]]] = {}  # layer -> variable -> (file name, dataset)
        for layer_name in map(_text, root.attrs["layer_names"]):
            group = root[layer_name]
            variables = {}
            for weight_name in map(_text, group.attrs.get("weight_names", [])):
                short = weight_name.rsplit("/", 1)[-1].split(":")[0]
                variables[_VARIABLE_ALIASES.get(short, short)] = (f"{layer_name}/{short}", group[weight_name])
            if variables:
                stored[_keras_name(layer_name)] = variables

        assignments = []
        for layer in network.layers:
            if not layer.weights:
                continue
            in_file = stored.pop(layer.name, None)
            if in_file is None:
                raise WeightsError(
                    f"{path}: no weights for layer '{layer.name}' (in the file it would be named with '/' "
                    f"for '_'); the file does not hold this YAMNet architecture"
                )
            for variable in layer.weights:
                if variable.name not in in_file:
                    raise WeightsError(
                        f"{path}: layer '{layer.name}' needs variable '{variable.name}' {tuple(variable.shape)}, "
                        f"the file has only {sorted(in_file)}; check YamnetParams (e.g. batchnorm_scale=True "
                        f"needs gamma, which YAMNet's file has not)"
                    )
                file_name, dataset = in_file.pop(variable.name)
                if tuple(dataset.shape) != tuple(variable.shape):
                    raise WeightsError(
                        f"{path}: variable '{file_name}' has shape {tuple(dataset.shape)}, the network's "
                        f"'{variable.path}' needs {tuple(variable.shape)}; check YamnetParams (num_classes?)"
                    )
                assignments.append((variable, np.asarray(dataset)))
            if in_file:
                unused = sorted(name for name, _ in in_file.values())
                raise WeightsError(f"{path}: variables {unused} have no counterpart in layer '{layer.name}'")
        if stored:
            raise WeightsError(
                f"{path}: layers {sorted(stored)} of the file are not in the network; the file does not hold "
                f"this YAMNet architecture"
            )
    for variable, value in assignments:
        variable.assign(value)


def block_of(layer_name: str) -> int | None:
    """1..14 for a layer of a convolutional block, None for the rest (reshape, pooling, dense)."""
    match = _BLOCK_NAME.match(layer_name)
    return int(match.group(1)) if match else None


def set_trainable(network: keras.Model, last_blocks: int, *, classifier: bool = True, batchnorm: bool = False) -> None:
    """Freeze all but the last ``last_blocks`` of the 14 blocks, for fine-tuning.

    classifier: whether the 521-way dense layer trains.
    batchnorm: whether batch norm in the trainable blocks trains too. Off by default: a Keras 3
        batch norm layer that trains normalises with batch statistics and overwrites its moving
        averages, which for small fine-tuning batches degrades the pretrained features; frozen, it
        keeps applying the pretrained statistics (and its beta stays fixed).
    """
    if not 0 <= last_blocks <= NUM_BLOCKS:
        raise ValueError(f"last_blocks must be in 0..{NUM_BLOCKS}, got {last_blocks}")
    network.trainable = True  # so the per-layer flags below are what decides
    first = NUM_BLOCKS - last_blocks + 1
    for layer in network.layers:
        block = block_of(layer.name)
        if block is not None:
            is_batchnorm = isinstance(layer, keras.layers.BatchNormalization)
            layer.trainable = block >= first and (batchnorm or not is_batchnorm)
        elif layer.name == "dense":
            layer.trainable = classifier


# ----------------------------------------------------------------------------------------------
# Batched inference.


def _folded(conv, batchnorm) -> tuple[tf.Tensor, tf.Tensor]:
    """(kernel, bias) of ``batchnorm(conv(x))`` as one convolution, from the current variables.

    Inference batch norm is ``x * scale + shift`` per channel, so the scale moves into the
    kernel's output channels (the input channels of a depthwise kernel [3, 3, C, 1]).
    """
    scale = tf.math.rsqrt(tf.convert_to_tensor(batchnorm.moving_variance) + batchnorm.epsilon)
    if batchnorm.gamma is not None:
        scale = scale * batchnorm.gamma
    shift = -tf.convert_to_tensor(batchnorm.moving_mean) * scale
    if batchnorm.beta is not None:
        shift = shift + batchnorm.beta
    kernel = tf.convert_to_tensor(conv.kernel)
    if isinstance(conv, keras.layers.DepthwiseConv2D):
        return kernel * tf.expand_dims(scale, 1), shift  # expand_dims: a TFLite builtin, unlike [:, newaxis]
    return kernel * scale, shift


def infer_patches(network: keras.Model, patches: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """``network(patches, training=False)`` with batch norm folded into the convolutions.

    float32 [n, 96, 64] -> (scores float32 [n, num_classes], embeddings float32 [n, 1024]).
    Same variables and the same function as the Keras network (equal to ~1e-5), but each
    convolution, bias and ReLU runs as one fused oneDNN kernel: about twice as fast on CPU as
    Keras 3's batch norm, which is separate element-wise passes over every activation.
    The folding reads the variables on every call, so fine-tuned or reloaded weights apply.
    """
    x = tf.expand_dims(patches, -1)
    for index, (kind, _, _) in enumerate(BLOCKS, start=1):
        for part in ("conv",) if kind == "conv" else ("depthwise_conv", "pointwise_conv"):
            conv = network.get_layer(f"layer{index}_{part}")
            kernel, bias = _folded(conv, network.get_layer(f"layer{index}_{part}_bn"))
            strides = (1, *conv.strides, 1)
            if part == "depthwise_conv":
                x = tf.nn.depthwise_conv2d(x, kernel, strides, padding="SAME")
            else:
                x = tf.nn.conv2d(x, kernel, strides, padding="SAME")
            x = tf.nn.relu(tf.nn.bias_add(x, bias))
    embeddings = tf.reduce_mean(x, axis=[1, 2])
    dense = network.get_layer("dense")
    scores = network.get_layer("predictions").activation(tf.matmul(embeddings, dense.kernel) + dense.bias)
    return scores, embeddings


class YamnetOutput(NamedTuple):
    """What :meth:`Yamnet.embed` returns for a batch.

    scores: float32 [batch, patches, num_classes]; embeddings: float32 [batch, patches, 1024];
    log_mel: float32 [batch, frames, 64], frames = 96 + 48 * (patches - 1);
    patch_mask: bool [batch, patches], the patches YAMNet gives each clip on its own. Patches
    outside the mask are not computed: their scores and embeddings are zero.
    """

    scores: np.ndarray
    embeddings: np.ndarray
    log_mel: np.ndarray
    patch_mask: np.ndarray


class Yamnet:
    """YAMNet over batches of waveforms.

    ``network`` is the Keras patch classifier (:func:`build_network`), for training and export;
    ``embed_graph`` the ``tf.function`` behind :meth:`embed`, traced once for any batch size and
    length, which runs the same variables through :func:`infer_patches`.
    """

    def __init__(self, params: YamnetParams = YamnetParams(), weights_path: str | os.PathLike | None = None):
        self.params = params
        self.network = build_network(params)
        if weights_path is not None:
            load_weights(self.network, weights_path)
        self.embed_graph = waveform_graph(self._forward)

    def export_frames(self, waveforms, lengths):
        """(float32 [batch, samples], int32 [batch]) -> (embeddings float32 [batch, patches, 1024],
        patch_mask bool [batch, patches]): `_forward`'s embeddings by the same operations, for an
        exported graph (`YamnetRepresentation.frame_graph`).

        The waveform goes through front end and network in pieces of at most
        MAX_PATCHES_PER_CALL patches (per clip of the batch at least one), one after the other in
        a tf.while_loop, so an hour of audio needs the memory of one piece, not of its whole
        spectrogram. A patch sees only its own 0.975 s and pieces start on the 0.48 s patch grid,
        so each patch is computed from the same samples as by `_forward`. The loop concatenates
        (no map_fn tensor lists), so the graph converts to TFLite builtins: tf.lite's interpreter
        has no Flex delegate. Patches past a shorter clip's own are computed from its zero padding
        (export batches hold clips of one length), then zeroed as `_forward` leaves them.
        """
        params = self.params
        padded = pad_waveforms(waveforms, lengths, params)
        batch = tf.shape(padded)[0]
        total = num_patches(tf.shape(padded)[1], params)
        step = tf.maximum(MAX_PATCHES_PER_CALL // tf.maximum(batch, 1), 1)  # patches of each clip per piece
        hop, width = params.patch_hop_samples, params.patch_samples

        def body(start, done):
            stop = tf.minimum(start + step, total)
            piece = tf.slice(padded, [0, start * hop], [-1, (stop - start - 1) * hop + width])
            patches = log_mel_patches(log_mel_spectrogram(piece, params), params)  # [batch, stop - start, 96, 64]
            flat = tf.reshape(patches, [-1, params.patch_frames, params.patch_bands])
            embeddings = infer_patches(self.network, flat)[1]
            return stop, tf.concat([done, tf.reshape(embeddings, [batch, stop - start, EMBEDDING_SIZE])], axis=1)

        _, embeddings = tf.while_loop(
            lambda start, _: start < total, body, [tf.constant(0), tf.zeros([batch, 0, EMBEDDING_SIZE])],
            shape_invariants=[tf.TensorShape([]), tf.TensorShape([None, None, EMBEDDING_SIZE])],
            parallel_iterations=1,  # else pieces run side by side, each with its activations
        )
        patch_mask = leading_mask(embeddings, num_patches(lengths, params))
        return tf.where(tf.expand_dims(patch_mask, -1), embeddings, 0.0), patch_mask  # expand_dims: a TFLite builtin

    def _forward(self, waveforms, lengths):
        """(float32 [batch, samples], int32 [batch]) -> YamnetOutput of tensors."""
        params = self.params
        log_mel = log_mel_spectrogram(pad_waveforms(waveforms, lengths, params), params)
        patches = log_mel_patches(log_mel, params)
        patch_mask = leading_mask(patches, num_patches(lengths, params))
        scores, embeddings = over_masked(
            lambda group: infer_patches(self.network, group), patches, patch_mask, MAX_PATCHES_PER_CALL,
            (params.num_classes, EMBEDDING_SIZE),
        )
        return YamnetOutput(scores, embeddings, log_mel, patch_mask)

    def embed(self, waveforms, lengths=None) -> YamnetOutput:
        """Scores, embeddings and log-mel of a zero-padded batch, as numpy arrays.

        Args:
            waveforms: float32 [batch, samples], mono at ``params.sample_rate`` (16 kHz).
            lengths: int [batch] real samples per clip (default: every clip fills the batch).
        Returns:
            YamnetOutput; a clip's entries equal those of the clip embedded alone (up to float
            reassociation, ~1e-6), its valid patches given by ``patch_mask``.
        """
        waveforms, lengths = check_batch(waveforms, lengths)
        output = self.embed_graph(tf.constant(waveforms), tf.constant(lengths, dtype=tf.int32))
        return YamnetOutput(*(tensor.numpy() for tensor in output))


def load_class_map(path: str | os.PathLike) -> list[str]:
    """Display names of YAMNet's classes in output order, from ``yamnet_class_map.csv``.

    The file has a header ``index,mid,display_name`` and one row per class, indices 0..N-1.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf8") as handle:
            reader = csv.DictReader(handle)
            if not {"index", "display_name"} <= set(reader.fieldnames or ()):
                raise ValueError(f"{path}: expected columns index,mid,display_name, found {reader.fieldnames}")
            rows = [(row["index"], row["display_name"]) for row in reader]
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: class map not found (the official file is {YAMNET_CLASS_MAP.url})") from None
    indices = [int(index) for index, _ in rows]
    if indices != list(range(len(rows))):
        raise ValueError(f"{path}: indices must run 0..{len(rows) - 1} in order")
    return [name for _, name in rows]


class YamnetRepresentation(Representation):
    """YAMNet behind the common interface: one 1024-d frame per 0.96 s patch, every 0.48 s.

    ``weights_path``: a resolved ``yamnet.h5`` (None: random weights, for tests and timing).
    """

    name = "yamnet"
    sample_rate = 16000
    frame_hop_seconds = YamnetParams().patch_hop_seconds
    dim = EMBEDDING_SIZE

    def __init__(self, weights_path: str | os.PathLike | None = None, params: YamnetParams = YamnetParams()):
        self.model = Yamnet(params, weights_path)
        self.window_geometry = params.window_geometry
        self._digest = "random" if weights_path is None else sha256_of(weights_path)

    def frames(self, waveforms: np.ndarray, lengths: np.ndarray) -> FrameEmbeddings:
        out = self.model.embed(waveforms, lengths)
        return FrameEmbeddings(out.embeddings, out.patch_mask)

    def frame_graph(self) -> FrameGraph:
        """`Yamnet.export_frames`: what `frames` computes, by the same front end and `infer_patches`,
        the waveform taken in pieces of at most MAX_PATCHES_PER_CALL patches (flat memory)."""
        return FrameGraph(self.model.export_frames, self.model.network)

    def identity(self) -> dict:
        return yamnet_identity(self._digest, self.model.params)
