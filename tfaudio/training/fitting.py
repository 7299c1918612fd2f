"""Keras plumbing of a run's fits: the frozen part's outputs computed in batches, the epoch
record (history.csv, one progress line per epoch) with early stopping and checkpoints, and the
reshuffled, re-augmented waveform batches of fine-tuning."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def log(message: str) -> None:
    """One line on stderr, above any progress bar."""
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)


def compute_features(model, waves: np.ndarray, batch_size: int, training: bool = False, desc: str | None = None) -> np.ndarray:
    """model(waves) in batches, as numpy: float32 [n, ...]. training=True only switches on the
    front end's SpecAugment (the backbone is built to stay in inference mode)."""
    from tfaudio.quiet import import_tensorflow_quietly

    tf = import_tensorflow_quietly()
    from tqdm import tqdm

    # One trace for every batch size (the last batch is usually smaller).
    spec = tf.TensorSpec([None, *waves.shape[1:]], tf.float32)
    step = tf.function(lambda x: model(x, training=training), input_signature=[spec])
    parts = []
    with tqdm(total=len(waves), desc=desc, unit="clip", file=sys.stderr, disable=desc is None or len(waves) < 2, dynamic_ncols=True) as bar:
        for start in range(0, len(waves), batch_size):
            parts.append(step(tf.constant(waves[start : start + batch_size])).numpy())
            bar.update(len(parts[-1]))
    return np.concatenate(parts) if parts else np.zeros((0,), np.float32)


HISTORY_COLUMNS = ("epoch", "phase", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate")


def history_callback(rows: list[dict], phase: int, total_epochs: int, progress: bool, csv_path: Path | None):
    """A Keras callback appending each epoch's numbers to `rows` (and to `csv_path`)."""
    from tfaudio.quiet import keras

    class Record(keras.callbacks.Callback):
        """Keeps every epoch's numbers (with phase and learning rate), appends them to the CSV
        log as they come (both phases in one file, so it can be watched during a run), and
        prints one line per epoch."""

        def on_epoch_end(self, epoch, logs=None):
            logs = dict(logs or {})
            lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            row = {"epoch": epoch + 1, "phase": phase, **{k: float(v) for k, v in logs.items()}, "learning_rate": lr}
            rows.append(row)
            if csv_path is not None:
                new = not csv_path.exists() or (phase == 1 and len(rows) == 1)
                with open(csv_path, "w" if new else "a", encoding="utf-8") as handle:
                    if new:
                        handle.write(",".join(HISTORY_COLUMNS) + "\n")
                    handle.write(",".join(str(row.get(c, "")) for c in HISTORY_COLUMNS) + "\n")
            if progress:
                log(
                    f"phase {phase} epoch {epoch + 1}/{total_epochs}: loss {row.get('loss', float('nan')):.4f} "
                    f"acc {row.get('accuracy', float('nan')):.4f}  val_loss {row.get('val_loss', float('nan')):.4f} "
                    f"val_acc {row.get('val_accuracy', float('nan')):.4f}  lr {lr:.1e}"
                )

    return Record()


def epoch_callbacks(logdir: Path | None, phase: int, checkpoint: Path, rows, total, config, progress, threshold=None):
    """The callbacks of one phase's fit: the epoch record, early stopping and the best checkpoint
    on val_loss (only below `threshold`, phase 1's best, in phase 2), and TensorBoard logs."""
    from tfaudio.quiet import keras

    callbacks = [
        history_callback(rows, phase, total, progress, logdir / "history.csv" if logdir is not None else None),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience, baseline=threshold),
        keras.callbacks.ModelCheckpoint(
            # an explicit threshold (inf in phase 1): Keras would otherwise save the first epoch
            # whatever its loss, and a NaN first epoch then compares as never improved upon
            str(checkpoint), monitor="val_loss", save_best_only=True, save_weights_only=True,
            initial_value_threshold=float("inf") if threshold is None else threshold,
        ),
    ]
    if logdir is not None:
        callbacks.append(keras.callbacks.TensorBoard(str(logdir / "tensorboard"), write_graph=False))
    return callbacks


def wave_batches(waves, labels, weights, batch_size, augmenter, seed):
    """Fine-tuning's input: waveforms float32 [n, samples], labels int64 [n], sample weights
    float32 [n] as a Keras PyDataset of batches."""
    from tfaudio.quiet import keras

    class WaveBatches(keras.utils.PyDataset):
        """(waveforms, labels, sample weights) batches, reshuffled and re-augmented each epoch,
        all drawn from generators seeded by (seed, epoch, batch)."""

        def __init__(self):
            super().__init__()
            self.epoch = 0

        def __len__(self):
            return -(-len(waves) // batch_size)

        def on_epoch_end(self):
            self.epoch += 1

        def __getitem__(self, index):
            order = np.random.default_rng([seed, self.epoch]).permutation(len(waves))
            chosen = order[index * batch_size : (index + 1) * batch_size]
            x = waves[chosen]
            if augmenter is not None and augmenter.active:
                x = augmenter(x, np.random.default_rng([seed, self.epoch, index]))
            return x, labels[chosen], weights[chosen]

    return WaveBatches()
