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

import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfaudio import frontend
from tfaudio.data import Dataset, Problem, iter_batches
from tfaudio.models.autoencoder_params import (  # noqa: F401  (re-exported)
    CONFIG_FILE,
    DEFAULT_POOLING,
    WEIGHTS_FILE,
    AutoencoderConfig,
    AutoencoderError,
    autoencoder_identity,
    read_saved,
)
from tfaudio.models.base import FrameEmbeddings, Representation, check_batch
from tfaudio.models.weights import sha256_of

# Patches through the encoder at once when embedding: bounds memory for long clips.
_EMBED_BATCH = 512


# ----------------------------------------------------------------------------------------------
# Front end: waveforms -> log-mel patches with masks (pure TF functions).


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
    spectrogram = frontend.LogMel(params)(waveforms, lengths)
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


# ----------------------------------------------------------------------------------------------
# Network.


@keras.saving.register_keras_serializable(package="tfaudio")
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
    """

    def __init__(self, config: AutoencoderConfig):
        self.config = config
        self.standardize = Standardize(config.num_mel_bins, name="standardize")
        self.encoder = build_encoder(config)
        self.decoder = build_decoder(config)
        raw = keras.Input((config.patch_frames, config.num_mel_bins), name="log_mel")
        mask = keras.Input((config.patch_frames,), dtype="bool", name="frame_mask")
        target = self.standardize(raw, mask)
        reconstruction = self.decoder(self.encoder(target))
        stacked = keras.ops.stack([reconstruction, target], axis=-1)
        self.training_model = keras.Model([raw, mask], stacked, name="autoencoder")
        # The same layers, never compiled: what is saved, so the file holds the network alone
        # (no optimizer state) and loads into a fresh, uncompiled model.
        self.bundle = keras.Model([raw, mask], stacked, name="autoencoder_weights")
        self._encode_graph = tf.function(
            self._encode,
            input_signature=(tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.int32)),
        )
        self._reconstruct_graph = tf.function(
            self._reconstruct,
            input_signature=(tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.int32)),
        )

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

    def _encode(self, waveforms, lengths):
        """-> (bottleneck float32 [batch, n, latent], patch mask bool [batch, n])."""
        _, _, shape, flat, flat_mask, patch_mask = self._patch_grid(waveforms, lengths)
        latent = self.encoder(self.standardize(flat, flat_mask), training=False)
        return tf.reshape(latent, [shape[0], shape[1], self.config.latent]), patch_mask

    def _reconstruct(self, waveforms, lengths):
        """-> (log-mel dB [batch, frames, mels], reconstruction dB [batch, frames, mels] averaged
        over overlapping patches, valid frames int32 [batch])."""
        spectrogram, valid, shape, flat, flat_mask, _ = self._patch_grid(waveforms, lengths)
        standardized = self.standardize(flat, flat_mask)
        decoded = self.decoder(self.encoder(standardized, training=False), training=False)
        decoded = decoded * self.standardize.std + self.standardize.mean
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
        latents, masks = [], []
        for start in range(0, len(waveforms), step):
            latent, mask = self._encode_graph(
                tf.constant(waveforms[start : start + step]), tf.constant(lengths[start : start + step])
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
        out = self._reconstruct_graph(tf.constant(waveforms), tf.constant(lengths))
        return tuple(t.numpy() for t in out)


# ----------------------------------------------------------------------------------------------
# The representation.


class AutoencoderRepresentation(Representation):
    """The bottleneck as a representation: one `latent`-d frame per patch (every
    `patch_hop_frames` STFT hops), masked to the patches each clip has on its own.

    digest: identifies the weights (sha256 of the weights file for a saved model, of the
    weight values for one trained in memory); it goes into `identity()` so the embedding
    cache never mixes vectors of two trainings.
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
        return autoencoder_identity(self.config, self._digest)


def load_representation(path: str | os.PathLike, name: str | None = None) -> AutoencoderRepresentation:
    """A saved autoencoder folder (see `tfaudio.models.autoencoder_params`) as a representation."""
    folder, _, config = read_saved(path)
    model = Autoencoder(config)
    model.load_weights(folder / WEIGHTS_FILE)
    return AutoencoderRepresentation(model, sha256_of(folder / WEIGHTS_FILE), name or f"autoencoder:{path}")


# ----------------------------------------------------------------------------------------------
# Training data: decoded once, cut into log-mel patches, kept as numpy arrays.


@dataclass(frozen=True)
class PatchSet:
    """The valid patches of some clips.

    patches: float32 [n, patch_frames, mels] in dB; frame_mask: bool [n, patch_frames];
    clip: int64 [n] index (into the dataset) of the clip each patch comes from.
    """

    patches: np.ndarray
    frame_mask: np.ndarray
    clip: np.ndarray

    def subset(self, clips: np.ndarray) -> PatchSet:
        keep = np.isin(self.clip, clips)
        return PatchSet(self.patches[keep], self.frame_mask[keep], self.clip[keep])


def _patch_graph(config: AutoencoderConfig):
    def cut(waveforms, lengths):
        spectrogram, valid = log_mel(waveforms, lengths, config)
        return patches(spectrogram, valid, config)

    return tf.function(
        cut, input_signature=(tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.int32))
    )


def extract_patches(
    dataset: Dataset,
    indices: Sequence[int],
    config: AutoencoderConfig,
    progress: Callable[[int], None] | None = None,
    skipped: list[Problem] | None = None,
    batch_size: int = 16,
) -> PatchSet:
    """Decode the clips at `indices` and cut them into log-mel patches (valid ones only).

    A clip that cannot be decoded is appended to `skipped` (or raises AudioError when
    `skipped` is None). progress(n) is called as clips are done.
    """
    graph = _patch_graph(config)
    clips = [dataset.clips[i] for i in indices]
    index = np.asarray(indices, dtype=np.int64)

    def on_error(err):
        skipped.append(Problem(err.path, err.problem))
        if progress:
            progress(1)

    parts, masks, owners = [], [], []
    batches = iter_batches(
        clips, config.sample_rate, batch_size, max_duration=config.max_duration,
        on_error=None if skipped is None else on_error,
    )
    for batch in batches:
        cut, frame_mask, patch_mask = (t.numpy() for t in graph(tf.constant(batch.waveforms), tf.constant(batch.lengths)))
        rows, cols = np.nonzero(patch_mask)
        parts.append(cut[rows, cols])
        masks.append(frame_mask[rows, cols])
        owners.append(index[batch.indices[rows]])
        if progress:
            progress(len(batch.indices))
    if not parts:
        shape = (0, config.patch_frames, config.num_mel_bins)
        return PatchSet(np.zeros(shape, np.float32), np.zeros(shape[:2], bool), np.zeros(0, np.int64))
    return PatchSet(np.concatenate(parts), np.concatenate(masks), np.concatenate(owners))


def band_statistics(patch_set: PatchSet) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and std (float32 [mels], dB) over the valid frames of the patches.

    Overlapping patches count most frames twice; that weights frames almost alike, so the
    statistics are those of the frames themselves up to the clips' first and last half patch."""
    frames = patch_set.patches[patch_set.frame_mask]  # [valid frames, mels]
    return frames.mean(axis=0).astype(np.float32), frames.std(axis=0).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Loss and metric over valid frames.


@keras.saving.register_keras_serializable(package="tfaudio")
def masked_squared_error(frame_mask, stacked):
    """Per patch: squared error summed over valid frames / (patch_frames * mels).

    frame_mask: float32 [n, P] (1 = valid); stacked: float32 [n, P, M, 2] (reconstruction,
    target). Averaged over a batch this is the masked MSE scaled by the batch's valid share,
    so padding never pulls the reconstruction toward anything.
    """
    error = keras.ops.square(stacked[..., 0] - stacked[..., 1]) * keras.ops.expand_dims(frame_mask, -1)
    return keras.ops.mean(error, axis=(1, 2))


class MaskedMSE(keras.metrics.Metric):
    """Mean squared error over the valid frames of all patches seen (standardized units)."""

    def __init__(self, name="masked_mse", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, frame_mask, stacked, sample_weight=None):
        frame_mask = keras.ops.cast(frame_mask, "float32")
        error = keras.ops.square(stacked[..., 0] - stacked[..., 1]) * keras.ops.expand_dims(frame_mask, -1)
        self.total.assign_add(keras.ops.sum(error))
        self.count.assign_add(keras.ops.sum(frame_mask) * keras.ops.cast(keras.ops.shape(stacked)[2], "float32"))

    def result(self):
        return self.total / keras.ops.maximum(self.count, 1.0)

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)


# ----------------------------------------------------------------------------------------------
# Training.


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced.

    history: per epoch, "masked_mse" and "val_masked_mse" (standardized units) and "loss";
    train_clips / val_clips: int64 dataset indices used to fit / to stop early;
    best_epoch: 1-based epoch whose weights were kept; skipped: clips that could not be decoded.
    """

    model: Autoencoder
    history: dict[str, list[float]]
    train_clips: np.ndarray
    val_clips: np.ndarray
    best_epoch: int
    skipped: tuple[Problem, ...]
    patches: PatchSet

    @property
    def val_drop(self) -> float:
        """Fraction by which the validation error fell from the first epoch to the kept one."""
        val = self.history["val_masked_mse"]
        return 1.0 - val[self.best_epoch - 1] / val[0]

    def representation(self, name: str = "autoencoder") -> AutoencoderRepresentation:
        return AutoencoderRepresentation(self.model, self.model.weights_digest(), name)


class _EpochProgress(keras.callbacks.Callback):
    def __init__(self, on_epoch: Callable[[int, dict], None]):
        super().__init__()
        self.on_epoch = on_epoch

    def on_train_begin(self, logs=None):
        self.on_epoch(0, {})

    def on_epoch_end(self, epoch, logs=None):
        self.on_epoch(epoch + 1, dict(logs or {}))


def split_validation(dataset: Dataset, indices: np.ndarray, config: AutoencoderConfig) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) dataset indices: `val_fraction` of the clips (at least one),
    drawn with the seed, stratified by label so every class is seen in validation when it can be."""
    indices = np.asarray(indices, dtype=np.int64)
    if len(indices) < 2:
        raise AutoencoderError(
            f"the autoencoder needs at least 2 clips (one to train on, one to validate), got {len(indices)}"
        )
    rng = np.random.default_rng(config.seed)
    labels = dataset.labels[indices]
    wanted = max(1, int(round(config.val_fraction * len(indices))))
    val = []
    # Round-robin over classes in a seeded order: stratified without sklearn's minimum counts.
    pools = [list(rng.permutation(indices[labels == c])) for c in np.unique(labels)]
    order = rng.permutation(len(pools))
    while len(val) < wanted:
        for k in order:
            if pools[k] and len(val) < wanted:
                val.append(pools[k].pop())
    val = np.sort(np.array(val, dtype=np.int64))
    return np.setdiff1d(indices, val), val


def train(
    dataset: Dataset,
    indices: Sequence[int] | None,
    config: AutoencoderConfig = AutoencoderConfig(),
    *,
    logdir: str | os.PathLike | None = None,
    progress: Callable[[int], None] | None = None,
    on_epoch: Callable[[int, dict], None] | None = None,
    strict: bool = False,
) -> TrainResult:
    """Train the autoencoder on the clips at `indices` (all clips when None).

    A seeded share of them (`config.val_fraction`) is held out for early stopping and the
    validation curve; the best epoch's weights are kept. progress(n): clips decoded;
    on_epoch(epoch, logs): once with (0, {}) when training starts, then after each epoch. logdir: TensorBoard logs (scalars per epoch).
    Raises AutoencoderError for too few clips or patches for one batch.
    """
    keras.utils.set_random_seed(config.seed)
    indices = np.arange(len(dataset)) if indices is None else np.asarray(indices, dtype=np.int64)
    skipped: list[Problem] = []
    patch_set = extract_patches(dataset, indices, config, progress, None if strict else skipped)
    decoded = np.unique(patch_set.clip)
    train_clips, val_clips = split_validation(dataset, decoded, config)
    train_set, val_set = patch_set.subset(train_clips), patch_set.subset(val_clips)
    if len(train_set.patches) < config.batch_size:
        raise AutoencoderError(
            f"{len(train_clips)} training clips give {len(train_set.patches)} patches of {config.patch_frames} "
            f"frames ({config.patch_seconds:.2f} s), fewer than one batch of {config.batch_size}: add clips, "
            f"or lower --batch-size or --patch-frames"
        )

    model = Autoencoder(config)
    model.set_statistics(*band_statistics(train_set))
    model.training_model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate), loss=masked_squared_error, metrics=[MaskedMSE()]
    )
    callbacks = [
        keras.callbacks.EarlyStopping(
            monitor="val_masked_mse", patience=config.patience, restore_best_weights=True, mode="min"
        )
    ]
    if logdir is not None:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(logdir), write_graph=False))
    if on_epoch is not None:
        callbacks.append(_EpochProgress(on_epoch))

    def inputs(part: PatchSet):
        return [part.patches, part.frame_mask], part.frame_mask.astype(np.float32)

    x_train, y_train = inputs(train_set)
    fit = model.training_model.fit(
        x_train, y_train,
        validation_data=inputs(val_set),
        epochs=config.epochs,
        batch_size=config.batch_size,
        shuffle=True,
        callbacks=callbacks,
        verbose=0,
    )
    history = {key: [float(v) for v in values] for key, values in fit.history.items()}
    best_epoch = int(np.argmin(history["val_masked_mse"])) + 1
    return TrainResult(model, history, train_clips, val_clips, best_epoch, tuple(skipped), patch_set)


def fit_autoencoder(
    dataset: Dataset,
    train_indices: np.ndarray,
    config: AutoencoderConfig = AutoencoderConfig(),
    progress: Callable[[int], None] | None = None,
) -> AutoencoderRepresentation:
    """Train on the clips at `train_indices` only and return the bottleneck representation.

    For comparisons: call once per split with that split's training clips (never its test
    clips), then embed every clip of the split with the result through the usual embedding
    path. Its identity carries the trained weights' digest, so cached vectors of one split's
    model are never reused for another's. progress(n) is called as clips are decoded.
    """
    return train(dataset, train_indices, config, progress=progress).representation()


# ----------------------------------------------------------------------------------------------
# Saving and export.


def save(result: TrainResult, out: str | os.PathLike, facts: dict | None = None) -> Path:
    """Write the weights and autoencoder.json (config, weights digest, history, facts) to `out`."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / WEIGHTS_FILE
    result.model.save_weights(weights)
    record = {
        "config": result.model.config.to_dict(),
        "weights_sha256": sha256_of(weights),
        "history": result.history,
        "best_epoch": result.best_epoch,
        "val_drop": result.val_drop,
        "train_clips": int(len(result.train_clips)),
        "val_clips": int(len(result.val_clips)),
        "train_patches": int(np.isin(result.patches.clip, result.train_clips).sum()),
        **(facts or {}),
    }
    (folder / CONFIG_FILE).write_text(json.dumps(record, indent=2))
    return folder


def _pool_frames(frames, weights, method: str):
    """tf twin of tfaudio.models.base.pool: frames [batch, n, latent], weights float [batch, n, 1]
    (1 for valid patches) -> [batch, latent], or [batch, 2 * latent] for "mean+std"."""
    count = tf.maximum(tf.reduce_sum(weights, axis=1), 1.0)
    mean = tf.reduce_sum(frames * weights, axis=1) / count
    if method == "mean":
        return mean
    if method == "max":
        return tf.reduce_max(tf.where(weights > 0, frames, tf.fill(tf.shape(frames), -np.inf)), axis=1)
    variance = tf.reduce_sum(weights * tf.square(frames - mean[:, tf.newaxis]), axis=1) / count
    return tf.concat([mean, tf.sqrt(variance)], axis=1)


class _EncoderModule(tf.Module):
    """waveform float32 [batch, samples] at config.sample_rate -> embedding pooled as
    DEFAULT_POOLING ([batch, 2 * latent] for mean+std), as `autoencoder:PATH` embeds."""

    def __init__(self, model: Autoencoder):
        super().__init__()
        self.model = model
        self.standardize = model.standardize
        self.encoder = model.encoder

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="waveform")])
    def serve(self, waveform):
        lengths = tf.fill(tf.shape(waveform)[:1], tf.shape(waveform)[1])
        return self.with_lengths(waveform, lengths)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None], tf.float32, name="waveform"),
            tf.TensorSpec([None], tf.int32, name="lengths"),
        ]
    )
    def with_lengths(self, waveform, lengths):
        frames, mask = self.model._encode(waveform, lengths)
        weights = tf.cast(mask, tf.float32)[..., tf.newaxis]
        return {
            "embedding": _pool_frames(frames, weights, DEFAULT_POOLING),
            "embedding_mean": _pool_frames(frames, weights, "mean"),
            "frames": frames,
            "patch_mask": mask,
        }


def export_encoder(model: Autoencoder, out: str | os.PathLike) -> Path:
    """Save the encoder with its front end as a SavedModel.

    Signatures: `serving_default(waveform float32 [batch, samples])` and
    `with_lengths(waveform, lengths int32 [batch])` for zero-padded batches, each returning
    embedding float32 pooled over valid patches as `autoencoder:PATH` embeds by default
    (DEFAULT_POOLING: mean then standard deviation, [batch, 2 * latent]), embedding_mean
    [batch, latent] (the mean alone), frames [batch, n, latent] and patch_mask bool [batch, n].
    Waveforms: mono at config.sample_rate.
    """
    module = _EncoderModule(model)
    out = Path(out)
    tf.saved_model.save(
        module, str(out), signatures={"serving_default": module.serve, "with_lengths": module.with_lengths}
    )
    return out


def check_export(representation: AutoencoderRepresentation, path: str | os.PathLike, tolerance: float = 1e-3) -> float:
    """Reload an exported encoder and compare it with `representation` on two test clips (a
    tone in noise, 1.3 s, and its first 0.4 s zero-padded). Returns the largest absolute
    difference; raises AutoencoderError above `tolerance`."""
    rng = np.random.default_rng(0)
    t = np.arange(int(1.3 * representation.sample_rate)) / representation.sample_rate
    tone = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.shape)).astype(np.float32)
    waveforms = np.stack([tone, np.where(np.arange(tone.size) < 0.4 * representation.sample_rate, tone, 0.0)])
    lengths = np.array([tone.size, int(0.4 * representation.sample_rate)], np.int32)
    loaded = tf.saved_model.load(str(path))
    served = loaded.signatures["with_lengths"](waveform=tf.constant(waveforms, tf.float32), lengths=tf.constant(lengths))
    whole = loaded.signatures["serving_default"](waveform=tf.constant(tone[np.newaxis]))
    expected = representation.embed(waveforms, lengths, DEFAULT_POOLING)  # what autoencoder:PATH gives
    expected_mean = representation.embed(waveforms, lengths, "mean")
    if served["embedding"].shape != expected.shape:
        raise AutoencoderError(
            f"{path}: the exported embedding has shape {served['embedding'].shape}, the model's {DEFAULT_POOLING} "
            f"pooling {expected.shape}"
        )
    difference = max(
        float(np.abs(served["embedding"].numpy() - expected).max()),
        float(np.abs(whole["embedding"].numpy()[0] - expected[0]).max()),
        float(np.abs(served["embedding_mean"].numpy() - expected_mean).max()),
    )
    if difference > tolerance:
        raise AutoencoderError(f"{path}: the exported encoder differs from the model by {difference:.2e}")
    return difference
