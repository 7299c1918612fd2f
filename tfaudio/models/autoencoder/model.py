"""A convolutional autoencoder over log-mel patches, learned from the user's own clips.

The encoder compresses a standardized log-mel patch (`patch_frames` x `num_mel_bins`) to a
`latent`-sized bottleneck; the decoder reconstructs the patch from it. No labels and no
pretrained weights: the bottleneck is a representation of whatever the training clips contain,
and, pooled over a clip's patches, it is one more `Representation` for `tfaudio embed` and
comparisons.

Flow:
    waveforms float32 [batch, samples] -> LogMel (dB, tfaudio.frontend) [batch, frames, mels]
    -> patches [batch, patches, patch_frames, mels] with a frame mask (padding past each clip)
    -> Standardize (per-band mean / std of the training frames; padding -> 0)
    -> encoder -> bottleneck [.., latent] -> decoder -> reconstruction [.., patch_frames, mels]

The loss is the mean squared error over valid frames only: the padded tail of a clip's last
patch (or of a clip shorter than a patch) is neither fitted nor counted.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os

import numpy as np

from tfaudio.quiet import keras, tf  # TensorFlow imported without its start-up noise
from tfaudio.assets import sha256_of
from tfaudio.frontend import layers as frontend_layers
from tfaudio.frontend import ops as frontend
from tfaudio.models.autoencoder.config import (
    DEFAULT_POOLING,
    WEIGHTS_FILE,
    AutoencoderConfig,
    AutoencoderError,
    autoencoder_identity,
    read_saved,
    trained_on,
)
from tfaudio.models.base import FrameEmbeddings, Representation, check_batch
from tfaudio.runtime import check_precision, keras_policy

# Patches through the encoder at once when embedding: bounds memory for long clips.
_EMBED_BATCH = 512


def num_patches(valid_frames, config: AutoencoderConfig):
    """Patches covering `valid_frames` frames: 1 + ceil(max(F - patch_frames, 0) / hop).

    Works on ints and int32 tensors; the last patch may end in padding.
    """
    extra = valid_frames - config.patch_frames
    extra = tf.maximum(extra, 0) if tf.is_tensor(extra) else max(int(extra), 0)
    return 1 + (-(-extra // config.hop))


def log_mel(waveforms: tf.Tensor, lengths: tf.Tensor, config: AutoencoderConfig) -> tuple[tf.Tensor, tf.Tensor]:
    """float32 [batch, samples], int32 [batch] -> (log-mel dB float32 [batch, frames, mels],
    int32 [batch] frames each clip has on its own).

    Samples past each length are zeroed first, so a clip's valid frames (centred frames reach
    half a window past its end) equal those of the clip alone, whatever the batch held there.
    """
    inside = tf.range(tf.shape(waveforms)[1])[tf.newaxis, :] < lengths[:, tf.newaxis]
    waveforms = tf.where(inside, waveforms, 0.0)
    params = config.mel
    spectrogram = frontend_layers.LogMel(params)(waveforms, lengths)
    valid = tf.minimum(frontend.num_frames(lengths, params.stft), tf.shape(spectrogram)[1])
    return spectrogram, valid


def patches(spectrogram: tf.Tensor, valid_frames: tf.Tensor, config: AutoencoderConfig):
    """Cut log-mel into patches.

    spectrogram: float32 [batch, frames, mels]; valid_frames: int32 [batch].
    Returns (patches float32 [batch, n, patch_frames, mels], frame_mask bool [batch, n,
    patch_frames], patch_mask bool [batch, n]), n = the most patches any clip has.
    """
    count = num_patches(valid_frames, config)
    most = tf.reduce_max(tf.concat([count, [1]], axis=0))
    needed = config.patch_frames + config.hop * (most - 1)
    spectrogram = tf.pad(spectrogram, [[0, 0], [0, tf.maximum(needed - tf.shape(spectrogram)[1], 0)], [0, 0]])
    cut = tf.signal.frame(spectrogram[:, :needed], config.patch_frames, config.hop, axis=1)
    starts = tf.range(most) * config.hop
    frame_index = starts[:, tf.newaxis] + tf.range(config.patch_frames)[tf.newaxis, :]  # [n, P]
    patch_mask = tf.range(most)[tf.newaxis, :] < count[:, tf.newaxis]
    frame_mask = (frame_index[tf.newaxis] < valid_frames[:, tf.newaxis, tf.newaxis]) & patch_mask[:, :, tf.newaxis]
    return cut, frame_mask, patch_mask


# Registered as BandStandardize: training's per-example layer is another thing. The class
# keeps its name because Keras 3 stores a layer's weights under its snake-cased class name
# ("layers/standardize" in autoencoder.weights.h5): renaming it would orphan every saved model.
@keras.saving.register_keras_serializable(package="tfaudio", name="BandStandardize")
class Standardize(keras.layers.Layer):
    """(log-mel float32 [n, frames, mels], frame mask bool [n, frames]) -> standardized float32
    [n, frames, mels]: per-band (x - mean) / std of the training frames; padding frames -> 0.

    The statistics are non-trainable weights, so they are saved, loaded and digested with the
    rest of the model.
    """

    def __init__(self, num_mel_bins: int, **kwargs):
        super().__init__(**kwargs)
        self.num_mel_bins = num_mel_bins
        self.mean = self.add_weight(shape=(num_mel_bins,), initializer="zeros", trainable=False, name="mean")
        self.std = self.add_weight(shape=(num_mel_bins,), initializer="ones", trainable=False, name="std")

    def call(self, values, frame_mask):
        scaled = (values - self.mean) / self.std
        return keras.ops.where(keras.ops.expand_dims(frame_mask, -1), scaled, 0.0)

    def get_config(self):
        return {**super().get_config(), "num_mel_bins": self.num_mel_bins}


def build_encoder(config: AutoencoderConfig) -> keras.Model:
    """standardized float32 [n, patch_frames, mels] -> bottleneck float32 [n, latent]."""
    inputs = keras.Input((config.patch_frames, config.num_mel_bins), name="patch")
    x = keras.layers.Reshape((config.patch_frames, config.num_mel_bins, 1))(inputs)
    for i, filters in enumerate(config.filters):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu", name=f"enc_conv{i}")(x)
    x = keras.layers.Flatten()(x)
    latent = keras.layers.Dense(config.latent, name="bottleneck")(x)
    return keras.Model(inputs, latent, name="encoder")


def build_decoder(config: AutoencoderConfig) -> keras.Model:
    """bottleneck float32 [n, latent] -> reconstruction float32 [n, patch_frames, mels]."""
    shrink = 2 ** len(config.filters)
    grid = (config.patch_frames // shrink, config.num_mel_bins // shrink, config.filters[-1])
    inputs = keras.Input((config.latent,), name="latent")
    x = keras.layers.Dense(math.prod(grid), activation="relu", name="dec_dense")(inputs)
    x = keras.layers.Reshape(grid)(x)
    for i, filters in enumerate(reversed(config.filters[:-1])):
        x = keras.layers.Conv2DTranspose(filters, 3, strides=2, padding="same", activation="relu", name=f"dec_conv{i}")(x)
    # Linear output: standardized log-mel is unbounded on both sides.
    x = keras.layers.Conv2DTranspose(1, 3, strides=2, padding="same", name="dec_out")(x)
    outputs = keras.layers.Reshape((config.patch_frames, config.num_mel_bins))(x)
    return keras.Model(inputs, outputs, name="decoder")


class Autoencoder:
    """The three parts and the graphs over them.

    `training_model` maps (raw log-mel patches [n, P, M], frame mask [n, P]) to
    float32 [n, P, M, 2]: reconstruction and standardized target side by side, so the masked
    loss sees both (Keras losses only get y_true and y_pred; y_true is the frame mask).

    precision: what the encoder and decoder compute in. "bfloat16" builds them under Keras
    mixed precision (float32 variables, so the weights save and load as a float32 model's);
    standardization, the reconstruction handed to the loss, and every output stay float32.
    Training passes config.precision; a loaded model is float32 (embedding in bfloat16 is
    `tfaudio.models.precision.with_precision`'s graph rewrite).
    """

    def __init__(self, config: AutoencoderConfig, precision: str = "float32"):
        self.config = config
        self.precision = check_precision(precision)
        # The layer name is in the weights' digest (variable paths): keep "standardize". float32
        # whatever the precision: dB statistics subtracted in bfloat16 would lose the detail.
        self.standardize = Standardize(config.num_mel_bins, name="standardize", dtype="float32")
        with keras_policy(precision):
            self.encoder = build_encoder(config)
            self.decoder = build_decoder(config)
        raw = keras.Input((config.patch_frames, config.num_mel_bins), name="log_mel")
        mask = keras.Input((config.patch_frames,), dtype="bool", name="frame_mask")
        target = self.standardize(raw, mask)
        reconstruction = self.decoder(self.encoder(target))
        if reconstruction.dtype != "float32":  # the loss in float32 (no op added to a float32 model)
            reconstruction = keras.ops.cast(reconstruction, "float32")
        stacked = keras.ops.stack([reconstruction, target], axis=-1)
        self.training_model = keras.Model([raw, mask], stacked, name="autoencoder")
        # The same layers, never compiled: what is saved, so the file holds the network alone
        # (no optimizer state) and loads into a fresh, uncompiled model.
        self.bundle = keras.Model([raw, mask], stacked, name="autoencoder_weights")

    # -- statistics and weights

    def set_statistics(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Per-band mean and std (float32 [mels]) of the training frames, in dB."""
        self.standardize.mean.assign(np.asarray(mean, np.float32))
        self.standardize.std.assign(np.maximum(np.asarray(std, np.float32), 1e-3))

    def weights_digest(self) -> str:
        """sha256 over every weight (name, shape, bytes): identifies the trained network."""
        digest = hashlib.sha256()
        for variable in self.bundle.weights:
            value = np.ascontiguousarray(keras.ops.convert_to_numpy(variable), dtype=np.float32)
            digest.update(f"{variable.path}:{value.shape}\0".encode())
            digest.update(value.tobytes())
        return digest.hexdigest()

    def save_weights(self, path: str | os.PathLike) -> None:
        self.bundle.save_weights(str(path))

    def float32_copy(self) -> Autoencoder:
        """This model itself when float32, else its weights in a network built at float32."""
        if self.precision == "float32":
            return self
        copy = Autoencoder(self.config)
        copy.bundle.set_weights(self.bundle.get_weights())  # the same layers in the same order
        return copy

    def load_weights(self, path: str | os.PathLike) -> None:
        import warnings

        try:
            with warnings.catch_warnings():
                # Keras 3.15 warns about the functional models' internal op containers, which
                # hold no variables; every weight is restored (tests compare embeddings after a
                # save / load round trip), so the warning would only alarm users.
                warnings.filterwarnings("ignore", message="Skipping nested container", category=UserWarning)
                self.bundle.load_weights(str(path))
        except (ValueError, OSError) as err:
            raise AutoencoderError(f"{path}: weights do not fit this autoencoder's config ({err})") from None

    # -- graphs over waveforms

    def _patch_grid(self, waveforms, lengths):
        spectrogram, valid = log_mel(waveforms, lengths, self.config)
        cut, frame_mask, patch_mask = patches(spectrogram, valid, self.config)
        shape = tf.shape(cut)
        flat = tf.reshape(cut, [-1, self.config.patch_frames, self.config.num_mel_bins])
        flat_mask = tf.reshape(frame_mask, [-1, self.config.patch_frames])
        return spectrogram, valid, shape, flat, flat_mask, patch_mask

    def state(self) -> dict[str, tuple[list, list]]:
        """The weights by part: {"standardize" | "encoder" | "decoder": (trainable, non-trainable)},
        what the shared graphs (`_graphs`) compute with."""
        return {name: (list(part.trainable_variables), list(part.non_trainable_variables))
                for name, part in (("standardize", self.standardize), ("encoder", self.encoder),
                                   ("decoder", self.decoder))}

    def _apply(self, name: str, state, *args, **kwargs):
        """Part `name` on `args`, with the weights of `state` (None: its own)."""
        part = getattr(self, name)
        if state is None:
            return part(*args, **kwargs)
        trainable, non_trainable = state[name]
        return part.stateless_call(list(trainable), list(non_trainable), *args, **kwargs)[0]

    def _encode(self, waveforms, lengths, state=None):
        """-> (bottleneck float32 [batch, n, latent], patch mask bool [batch, n]); state: the
        weights to use (`state()` of any model of this config; None: this model's own)."""
        _, _, shape, flat, flat_mask, patch_mask = self._patch_grid(waveforms, lengths)
        standardized = self._apply("standardize", state, flat, flat_mask)
        latent = tf.cast(self._apply("encoder", state, standardized, training=False), tf.float32)
        return tf.reshape(latent, [shape[0], shape[1], self.config.latent]), patch_mask

    def _reconstruct(self, waveforms, lengths, state=None):
        """-> (log-mel dB [batch, frames, mels], reconstruction dB [batch, frames, mels] averaged
        over overlapping patches, valid frames int32 [batch]); state: as in `_encode`."""
        spectrogram, valid, shape, flat, flat_mask, _ = self._patch_grid(waveforms, lengths)
        standardized = self._apply("standardize", state, flat, flat_mask)
        latent = self._apply("encoder", state, standardized, training=False)
        decoded = tf.cast(self._apply("decoder", state, latent, training=False), tf.float32)
        mean, std = state["standardize"][1] if state is not None else (self.standardize.mean, self.standardize.std)
        decoded = decoded * std + mean
        decoded = tf.reshape(decoded, [shape[0], shape[1], self.config.patch_frames, self.config.num_mel_bins])
        # Overlap-add, then divide by how many patches covered each frame.
        summed = tf.signal.overlap_and_add(tf.transpose(decoded, [0, 3, 1, 2]), self.config.hop)
        ones = tf.ones_like(decoded[:1, :1, :, :1])
        ones = tf.tile(ones, [1, shape[1], 1, 1])
        counts = tf.signal.overlap_and_add(tf.transpose(ones, [0, 3, 1, 2]), self.config.hop)
        average = tf.transpose(summed / tf.maximum(counts, 1.0), [0, 2, 1])
        frames = tf.shape(spectrogram)[1]
        average = tf.pad(average, [[0, 0], [0, tf.maximum(frames - tf.shape(average)[1], 0)], [0, 0]])
        return spectrogram, average[:, :frames], valid

    def encode(self, waveforms, lengths) -> tuple[np.ndarray, np.ndarray]:
        """float32 [batch, samples], int32 [batch] -> (float32 [batch, n, latent], bool [batch, n]).

        Long batches are split by clips so at most about `_EMBED_BATCH` patches go through at once.
        """
        waveforms, lengths = check_batch(waveforms, lengths)
        # Split by clips so that about _EMBED_BATCH patches go through the encoder at once.
        per_clip = num_patches(1 + waveforms.shape[1] // self.config.hop_length, self.config)
        step = max(1, _EMBED_BATCH // per_clip)
        encode, _ = _graphs(self.config, self.precision)
        state = self.state()
        latents, masks = [], []
        for start in range(0, len(waveforms), step):
            latent, mask = encode(
                tf.constant(waveforms[start : start + step]), tf.constant(lengths[start : start + step]), state
            )
            latents.append(latent.numpy())
            masks.append(mask.numpy())
        if not latents:
            return np.zeros((0, 1, self.config.latent), np.float32), np.zeros((0, 1), bool)
        width = max(m.shape[1] for m in masks)
        latents = [np.pad(a, ((0, 0), (0, width - a.shape[1]), (0, 0))) for a in latents]
        masks = [np.pad(m, ((0, 0), (0, width - m.shape[1]))) for m in masks]
        return np.concatenate(latents), np.concatenate(masks)

    def reconstruct(self, waveforms, lengths) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """float32 [batch, samples], int32 [batch] -> (log-mel dB, reconstruction dB, both
        float32 [batch, frames, mels]; valid frames int32 [batch])."""
        waveforms, lengths = check_batch(waveforms, lengths)
        _, reconstruct = _graphs(self.config, self.precision)
        out = reconstruct(tf.constant(waveforms), tf.constant(lengths), self.state())
        return tuple(t.numpy() for t in out)


@functools.lru_cache(maxsize=None)
def _graphs(config: AutoencoderConfig, precision: str):
    """(encode, reconstruct): `Autoencoder._encode` / `_reconstruct` as graphs shared by every
    model of this config and precision, its weights (`Autoencoder.state()`) passed in.

    A graph per model (as before) was traced once per model: a comparison loads one model per
    split, and from the fifth on TensorFlow printed its retracing warning (and each trace cost
    a fraction of a second). The weights' shapes depend on the config alone, so one trace serves
    them all. The template model only lends its layers' structure: its own weights are unused.
    """
    template = Autoencoder(config, precision)
    specs = {name: ([tf.TensorSpec(v.shape, v.dtype) for v in trainable],
                    [tf.TensorSpec(v.shape, v.dtype) for v in non_trainable])
             for name, (trainable, non_trainable) in template.state().items()}
    signature = (tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.int32), specs)
    # autograph=False: no Python control flow on tensors here, and AutoGraph's source
    # transformation costs about 1 s per trace.
    return (tf.function(template._encode, input_signature=signature, autograph=False),
            tf.function(template._reconstruct, input_signature=signature, autograph=False))


class AutoencoderRepresentation(Representation):
    """The bottleneck as a representation: one `latent`-d frame per patch (every
    `patch_hop_frames` STFT hops), masked to the patches each clip has on its own.

    digest: identifies the weights (sha256 of the weights file for a saved model, of the
    weight values for one trained in memory); it goes into `identity()` so the embedding
    cache never mixes vectors of two trainings. A model computing in bfloat16 (one just
    trained so) adds "precision": "bfloat16", as `with_precision` does.
    """

    default_pooling = DEFAULT_POOLING

    def __init__(self, model: Autoencoder, digest: str, name: str = "autoencoder"):
        self.model = model
        self.config = model.config
        self.name = name
        self.sample_rate = self.config.sample_rate
        self.frame_hop_seconds = self.config.patch_hop_seconds
        self.dim = self.config.latent
        self._digest = digest

    def frames(self, waveforms: np.ndarray, lengths: np.ndarray) -> FrameEmbeddings:
        latent, mask = self.model.encode(waveforms, lengths)
        return FrameEmbeddings(latent, mask)

    def identity(self) -> dict:
        identity = autoencoder_identity(self.config, self._digest)
        return identity if self.model.precision == "float32" else {**identity, "precision": self.model.precision}


def load_representation(path: str | os.PathLike, name: str | None = None) -> AutoencoderRepresentation:
    """A saved autoencoder folder (see `tfaudio.models.autoencoder.config`) as a float32
    representation, whatever precision it was trained at (its weights are float32)."""
    folder, record, config = read_saved(path)
    model = Autoencoder(config)
    model.load_weights(folder / WEIGHTS_FILE)
    representation = AutoencoderRepresentation(model, sha256_of(folder / WEIGHTS_FILE), name or f"autoencoder:{path}")
    representation.trained_on = trained_on(record)
    return representation
