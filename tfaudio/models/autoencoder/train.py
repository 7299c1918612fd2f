"""Training an autoencoder on a dataset's clips, and saving it."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfaudio.quiet import keras  # TensorFlow imported without its start-up noise
from tfaudio.assets import sha256_of
from tfaudio.data.dataset import Dataset, Problem
from tfaudio.data.splits import balanced_holdout
from tfaudio.models.autoencoder.config import (
    CONFIG_FILE,
    TRAINED_ON,
    WEIGHTS_FILE,
    AutoencoderConfig,
    AutoencoderError,
    content_digests,
)
from tfaudio.models.autoencoder.model import Autoencoder, AutoencoderRepresentation
from tfaudio.models.autoencoder.patches import PatchSet, band_statistics, extract_patches
from tfaudio.runtime import check_precision


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


@dataclass(frozen=True)
class AutoencoderTrainResult:
    """What a training run produced.

    history: per epoch, "masked_mse" and "val_masked_mse" (standardized units) and "loss";
    train_clips / val_clips: int64 dataset indices used to fit / to stop early;
    best_epoch: 1-based epoch whose weights were kept; skipped: clips that could not be decoded;
    trained_on: content sha256 of the training and validation clips (sorted), the clips that
    shaped the weights (validation chose the epoch kept).
    """

    model: Autoencoder
    history: dict[str, list[float]]
    train_clips: np.ndarray
    val_clips: np.ndarray
    best_epoch: int
    skipped: tuple[Problem, ...]
    patches: PatchSet
    trained_on: tuple[str, ...] = ()

    @property
    def val_drop(self) -> float:
        """Fraction by which the validation error fell from the first epoch to the kept one."""
        val = self.history["val_masked_mse"]
        return 1.0 - val[self.best_epoch - 1] / val[0]

    def representation(self, name: str = "autoencoder") -> AutoencoderRepresentation:
        representation = AutoencoderRepresentation(self.model, self.model.weights_digest(), name)
        representation.trained_on = frozenset(self.trained_on)
        return representation


class _EpochProgress(keras.callbacks.Callback):
    def __init__(self, on_epoch: Callable[[int, dict], None]):
        super().__init__()
        self.on_epoch = on_epoch

    def on_train_begin(self, logs=None):
        self.on_epoch(0, {})

    def on_epoch_end(self, epoch, logs=None):
        self.on_epoch(epoch + 1, dict(logs or {}))


def train(
    dataset: Dataset,
    indices: Sequence[int] | None,
    config: AutoencoderConfig = AutoencoderConfig(),
    *,
    logdir: str | os.PathLike | None = None,
    progress: Callable[[int], None] | None = None,
    on_epoch: Callable[[int, dict], None] | None = None,
    strict: bool = False,
) -> AutoencoderTrainResult:
    """Train the autoencoder on the clips at `indices` (all clips when None).

    A seeded share of them (`config.val_fraction`) is held out for early stopping and the
    validation curve; the best epoch's weights are kept. progress(n): clips decoded;
    on_epoch(epoch, logs): once with (0, {}) when training starts, then after each epoch. logdir: TensorBoard logs (scalars per epoch).
    config.precision "bfloat16": the encoder and decoder compute in bfloat16 (Keras mixed
    precision); weights, standardization and the loss stay float32 (see `Autoencoder`).
    Raises AutoencoderError for too few clips or patches for one batch.
    """
    try:
        check_precision(config.precision)
    except ValueError as err:
        raise AutoencoderError(str(err)) from None
    keras.utils.set_random_seed(config.seed)
    indices = np.arange(len(dataset)) if indices is None else np.asarray(indices, dtype=np.int64)
    skipped: list[Problem] = []
    patch_set = extract_patches(dataset, indices, config, progress, None if strict else skipped)
    train_clips, val_clips = _holdout(dataset, patch_set, config)
    train_set = patch_set.subset(train_clips)
    model = Autoencoder(config, config.precision)
    model.set_statistics(*band_statistics(train_set))
    history = _fit(model, train_set, patch_set.subset(val_clips), config, _callbacks(config, logdir, on_epoch))
    best_epoch = int(np.argmin(history["val_masked_mse"])) + 1
    digests = content_digests([dataset.clips[i].path for i in np.unique(patch_set.clip)])
    return AutoencoderTrainResult(model, history, train_clips, val_clips, best_epoch, tuple(skipped), patch_set,
                                  tuple(sorted({d for d in digests if d is not None})))


def _holdout(dataset: Dataset, patch_set: PatchSet, config: AutoencoderConfig) -> tuple[np.ndarray, np.ndarray]:
    """(training, validation) dataset indices among the decoded clips; AutoencoderError when
    they cannot give a validation clip and one batch of training patches."""
    decoded = np.unique(patch_set.clip)
    if len(decoded) < 2:
        raise AutoencoderError(
            f"the autoencoder needs at least 2 clips (one to train on, one to validate), got {len(decoded)}"
        )
    # Every class in validation when it can be, whatever its size (no scikit-learn minimum counts).
    train_clips, val_clips = balanced_holdout(dataset, decoded, config.val_fraction, config.seed)
    patches = int(np.isin(patch_set.clip, train_clips).sum())
    if patches < config.batch_size:
        raise AutoencoderError(
            f"{len(train_clips)} training clips give {patches} patches of {config.patch_frames} "
            f"frames ({config.patch_seconds:.2f} s), fewer than one batch of {config.batch_size}: add clips, "
            f"or lower --batch-size or --patch-frames"
        )
    return train_clips, val_clips


def _callbacks(config: AutoencoderConfig, logdir, on_epoch) -> list:
    """Early stopping on the validation error (best weights restored), TensorBoard logs when
    `logdir` is given, and `on_epoch` after each epoch when given."""
    callbacks = [
        keras.callbacks.EarlyStopping(
            monitor="val_masked_mse", patience=config.patience, restore_best_weights=True, mode="min"
        )
    ]
    if logdir is not None:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(logdir), write_graph=False))
    if on_epoch is not None:
        callbacks.append(_EpochProgress(on_epoch))
    return callbacks


def _fit(model: Autoencoder, train_set: PatchSet, val_set: PatchSet, config: AutoencoderConfig,
         callbacks: list) -> dict[str, list[float]]:
    """Adam on the masked reconstruction error; returns the history (per epoch, as floats)."""
    model.training_model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate), loss=masked_squared_error, metrics=[MaskedMSE()]
    )

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
    return {key: [float(v) for v in values] for key, values in fit.history.items()}


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


def save(result: AutoencoderTrainResult, out: str | os.PathLike, facts: dict | None = None) -> Path:
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
        TRAINED_ON: list(result.trained_on),
    }
    (folder / CONFIG_FILE).write_text(json.dumps(record, indent=2))
    return folder
