"""The two-phase run: frozen backbone with cached outputs, then fine-tuning the last blocks.

Phase 1 runs the frozen part (front end + pretrained backbone) once over the training clips
(and over `augment.copies` augmented copies when augmentation is on) and trains the head on
those cached outputs: an epoch costs a pass over small vectors, not a pass through the
backbone. Phase 2 unfreezes the last blocks and trains the whole classifier on waveforms, at
a lower learning rate, with batch norm in inference mode; it is kept only if it lowers the
validation loss below phase 1's best and does not lower the validation accuracy.

Clips longer than the training duration are cut into windows of that duration, as the export
cuts them: every window is a training example (a last, partly filled window weighted by its
share of audio), and the final validation metrics come from the export's serving function on
each whole validation clip (window probabilities averaged, weighted by their audio), so they
describe the exported model. Per-epoch validation numbers (curves, early stopping, best
checkpoint) are per window.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tfaudio import outputs
from tfaudio.data.dataset import Dataset, Problem, load_dataset
from tfaudio.quiet import import_tensorflow_quietly
from tfaudio.training.config import TrainConfig, TrainingError
from tfaudio.training.inputs import (
    ValidationSplit,
    WaveAugmenter,
    check_classes,
    check_decoded,
    class_weights,
    load_clips,
    median_duration,
    validation_split,
    window_clips,
    windows_of,
)

SAMPLE_RATE = 16000


@dataclass
class TrainResult:
    """What a run produced.

    classifier: Keras model, waveform float32 [batch, num_samples] -> float32 [batch, classes]:
        the network as exported, computing at config.export_precision (a bfloat16 run's weights
        in a float32 network unless export_precision says bfloat16).
    history: one dict per epoch (epoch, phase, loss, accuracy, val_loss, val_accuracy,
        learning_rate); phase_boundary: epochs of phase 1 (the curves' boundary mark).
    metrics: final validation metrics (accuracy, balanced_accuracy, macro_f1, per_class,
        confusion, phase1_val_accuracy, fine_tuning_kept), computed like the export serves:
        the serving function (tfaudio.export.serving_function) on each whole validation clip.
    val_labels / val_probabilities: int64 [clips] and float32 [clips, classes] behind them,
        the validation clips that decoded, in the split's order.
    """

    classifier: object
    class_names: tuple[str, ...]
    num_samples: int
    config: TrainConfig
    split: ValidationSplit
    history: list[dict]
    phase_boundary: int
    metrics: dict
    timings: dict
    skipped: list[Problem] = field(default_factory=list)
    logdir: Path | None = None
    export_dir: Path | None = None
    val_labels: np.ndarray | None = None
    val_probabilities: np.ndarray | None = None

    def metadata(self) -> dict:
        """JSON-ready description stored beside the exported model."""
        from tfaudio.frontend.params import params_to_dict

        front = self.config.frontend_config
        if front is not None:
            frontend = {"kind": "log_mel", "standardize": "per example", **params_to_dict(front.mel_params())}
        else:
            from tfaudio.models.yamnet.config import YamnetParams

            frontend = {"kind": "yamnet", **params_to_dict(YamnetParams())}
        return {
            "format": "tfaudio-classifier",
            "version": 1,
            "class_names": list(self.class_names),
            "sample_rate": SAMPLE_RATE,
            "num_samples": self.num_samples,
            "duration": self.num_samples / SAMPLE_RATE,
            "backbone": self.config.backbone,
            "frontend": frontend,
            "config": self.config.to_dict(),
            "validation": {"split": self.split.how, "clips": int(len(self.split.val)), **_scalar_metrics(self.metrics)},
            "long_clips": (
                "split into windows of num_samples (the last zero-padded); probabilities averaged, weighted by the audio "
                "in each window; training used every window of its clips and the validation metrics are of this rule"
            ),
        }


def _scalar_metrics(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, bool))}


def _log(message: str) -> None:
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)


def compute_features(model, waves: np.ndarray, batch_size: int, training: bool = False, desc: str | None = None) -> np.ndarray:
    """model(waves) in batches, as numpy: float32 [n, ...]. training=True only switches on the
    front end's SpecAugment (the backbone is built to stay in inference mode)."""
    import tensorflow as tf
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


def _history_callback(rows: list[dict], phase: int, total_epochs: int, progress: bool, csv_path: Path | None):
    import keras

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
                _log(
                    f"phase {phase} epoch {epoch + 1}/{total_epochs}: loss {row.get('loss', float('nan')):.4f} "
                    f"acc {row.get('accuracy', float('nan')):.4f}  val_loss {row.get('val_loss', float('nan')):.4f} "
                    f"val_acc {row.get('val_accuracy', float('nan')):.4f}  lr {lr:.1e}"
                )

    return Record()


def _callbacks(logdir: Path | None, phase: int, checkpoint: Path, rows, total, config, progress, threshold=None):
    import keras

    callbacks = [
        _history_callback(rows, phase, total, progress, logdir / "history.csv" if logdir is not None else None),
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


def _wave_sequence(waves, labels, weights, batch_size, augmenter, seed):
    import keras

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


def evaluate_predictions(labels: np.ndarray, probabilities: np.ndarray, class_names) -> dict:
    """Validation metrics from int labels [n] and probabilities float32 [n, classes]."""
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix, f1_score

    predicted = probabilities.argmax(axis=1)
    classes = list(range(len(class_names)))
    confusion = confusion_matrix(labels, predicted, labels=classes)
    recall = np.diag(confusion) / np.maximum(confusion.sum(axis=1), 1)
    return {
        "accuracy": float(np.mean(predicted == labels)),
        "balanced_accuracy": float(balanced_accuracy_score(labels, predicted)),
        "macro_f1": float(f1_score(labels, predicted, labels=classes, average="macro", zero_division=0)),
        "per_class_recall": {name: float(r) for name, r in zip(class_names, recall)},
        "confusion": confusion.tolist(),
        "class_names": list(class_names),
    }


def _compile(model, lr: float):
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )


def train(
    data: str | os.PathLike | Dataset,
    config: TrainConfig = TrainConfig(),
    *,
    out: str | os.PathLike | None = None,
    logdir: str | os.PathLike | None = None,
    tflite: bool = False,
    group_column: str | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train a classifier on labeled clips by transfer learning, and export it when `out` is given.

    data: a dataset folder / manifest, or a loaded Dataset. out: the export folder
    (``saved_models/NAME``; the model goes to its next version ``NAME/<n>/``). logdir:
    TensorBoard logs, checkpoints, history.csv, curves.html / curves.png and metrics.json, in
    a folder of this run's own: `logdir` when new or empty, else `logdir-2`, `logdir-3`, ...
    (result.logdir says which), so an earlier run's files are never overwritten.
    Bad input (one class, a class with one clip, no validation clips, weights unavailable, an
    output folder that cannot be written, tflite with a bfloat16 export) raises TrainingError,
    DatasetError or OutputError before any audio is decoded or any model built.
    """
    for folder in (out, logdir):
        if folder is not None:
            outputs.check_writable(folder)
    if tflite and config.export_precision != "float32":  # it converts, then fails to run (Flex's bfloat16 Conv2D)
        raise TrainingError("--tflite needs --export-precision float32: TFLite cannot run a bfloat16 network's convolutions")
    dataset = data if isinstance(data, Dataset) else load_dataset(data, group_column=group_column)
    check_classes(dataset)
    split = validation_split(dataset, config)
    validation_paths = frozenset(dataset.clips[i].path.resolve() for i in split.val)
    # Loads the noise bank now (bad --noise-dir fails before training), without validation clips.
    augmenter = WaveAugmenter(config.augment, exclude=validation_paths) if config.augment.kinds else None
    if augmenter is not None and augmenter.excluded and progress:
        _log(f"noise augmentation: {augmenter.excluded} validation clips in --noise-dir left out of the noise bank")
    duration = config.duration or median_duration(dataset, split.train)
    num_samples = int(round(duration * SAMPLE_RATE))
    from tfaudio.training.backbones import check_input_size, resolve_weights

    check_input_size(config, num_samples)  # before any audio is decoded or weights looked for
    weights_path = resolve_weights(config)
    logdir = outputs.fresh_folder(logdir) if logdir is not None else None
    if progress:
        _log(
            f"{len(dataset)} clips, {len(dataset.classes)} classes; validation: {split.how} "
            f"({len(split.train)} train / {len(split.val)} val); {duration:g} s per example; "
            f"backbone {config.backbone} in {config.precision}"
        )

    import_tensorflow_quietly()
    import keras

    keras.utils.set_random_seed(config.seed)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    # Whole clips: a long clip becomes several windows of num_samples, exactly as the export cuts it.
    train_clips, train_clip_labels, _, skipped = _decode(dataset, split.train, "decoding train", progress)
    val_clips, val_clip_labels, _, skipped_val = _decode(dataset, split.val, "decoding val", progress)
    skipped += skipped_val
    for problem in skipped:
        _log(f"skipped {problem.path}: {problem.reason}")
    check_decoded(dataset, train_clip_labels, val_clip_labels, skipped, split.how)
    train_waves, train_labels, train_window_weights = window_clips(train_clips, train_clip_labels, num_samples)
    val_waves, val_labels, val_window_weights = window_clips(val_clips, val_clip_labels, num_samples)
    del train_clips
    timings["decode_seconds"] = time.perf_counter() - start

    from tfaudio.training.backbones import at_precision, build

    num_classes = len(dataset.classes)
    parts = build(config, num_classes, num_samples, weights_path)
    if config.class_weights:
        weights_per_class = class_weights(train_labels, num_classes, train_window_weights)
    else:
        weights_per_class = np.ones(num_classes, np.float32)
    train_sample_weights = weights_per_class[train_labels] * train_window_weights
    rows: list[dict] = []
    scratch = logdir or Path(tempfile.mkdtemp(prefix="tfaudio-train-"))
    (scratch / "checkpoints").mkdir(parents=True, exist_ok=True)

    # ---- phase 1: the frozen part runs once; the head trains on its cached outputs
    start = time.perf_counter()
    spec_augment = "specaugment" in config.augment.kinds
    feats = [compute_features(parts.frozen, train_waves, config.batch_size, desc="backbone (cached once)" if progress else None)]
    labels = [train_labels]
    sample_weights = [train_sample_weights]
    if augmenter is not None:
        rng = np.random.default_rng([config.seed, 1])
        for copy in range(config.augment.copies):
            waves = augmenter(train_waves, rng) if augmenter.active else train_waves
            desc = f"augmented copy {copy + 1}" if progress else None
            feats.append(compute_features(parts.frozen, waves, config.batch_size, training=spec_augment, desc=desc))
            labels.append(train_labels)
            sample_weights.append(train_sample_weights)
    train_feats, train_feat_labels = np.concatenate(feats), np.concatenate(labels)
    val_feats = compute_features(parts.frozen, val_waves, config.batch_size)
    timings["cache_seconds"] = time.perf_counter() - start

    start = time.perf_counter()
    _compile(parts.head, config.lr)
    best1 = scratch / "checkpoints" / "phase1_best.weights.h5"
    parts.head.fit(
        train_feats,
        train_feat_labels,
        sample_weight=np.concatenate(sample_weights),
        batch_size=config.batch_size,
        epochs=config.epochs,
        validation_data=(val_feats, val_labels, val_window_weights),
        shuffle=True,
        verbose=0,
        callbacks=_callbacks(logdir, 1, best1, rows, config.epochs, config, progress),
    )
    finite = [row["val_loss"] for row in rows if np.isfinite(row.get("val_loss", np.nan))]
    if not finite or not best1.exists():  # the checkpoint is written only for a finite, improving val_loss
        losses = ", ".join(f"{row.get('val_loss', float('nan')):.4g}" for row in rows)
        raise TrainingError(
            f"{dataset.source}: the validation loss was never finite in {len(rows)} frozen-phase epoch(s) ({losses}), so "
            "there is no best model to keep. Usually a learning rate that is too high (try a lower --lr) or "
            "clips that give non-finite features (e.g. digital silence with unusual settings)"
        )
    parts.head.load_weights(str(best1))
    timings["phase1_seconds"] = time.perf_counter() - start
    phase_boundary = len(rows)
    # The frozen phase's validation result, per whole clip as the export serves it (from the
    # cached window outputs, combined with the export's weights).
    window_probabilities = parts.head.predict(val_feats, batch_size=config.batch_size, verbose=0)
    phase1_probabilities = _combine_windows(window_probabilities, val_clips, num_samples)
    phase1 = evaluate_predictions(val_clip_labels, phase1_probabilities, dataset.classes)
    best_loss = min(finite)

    # ---- phase 2: unfreeze the last blocks, lower learning rate, batch norm in inference mode
    fine_tuning_kept = False
    probabilities = None
    if config.fine_tune_epochs > 0 and (parts.max_unfreeze == 0 or config.unfreeze_last > 0):
        start = time.perf_counter()
        before = parts.classifier.get_weights()
        unfrozen = parts.unfreeze(config.unfreeze_last)
        if progress:
            _log(f"fine-tuning: {len(unfrozen)} backbone layers unfrozen, lr {config.fine_tune_lr:g}")
        _compile(parts.classifier, config.fine_tune_lr)
        best2 = scratch / "checkpoints" / "phase2_best.weights.h5"
        total = phase_boundary + config.fine_tune_epochs
        parts.classifier.fit(
            _wave_sequence(train_waves, train_labels, train_sample_weights, config.batch_size, augmenter, config.seed),
            initial_epoch=phase_boundary,
            epochs=total,
            validation_data=(val_waves, val_labels, val_window_weights),
            validation_batch_size=config.batch_size,
            verbose=0,
            callbacks=_callbacks(logdir, 2, best2, rows, total, config, progress, threshold=best_loss),
        )
        reason = "it did not lower the validation loss below phase 1's best"
        if best2.exists():  # some epoch beat phase 1's best validation loss
            parts.classifier.load_weights(str(best2))
            probabilities = serve_clips(parts.classifier, dataset.classes, num_samples, val_clips, config.batch_size)
            accuracy = float(np.mean(probabilities.argmax(axis=1) == val_clip_labels))
            fine_tuning_kept = accuracy >= phase1["accuracy"]
            reason = f"its validation accuracy {accuracy:.4f} is below phase 1's {phase1['accuracy']:.4f}"
        if not fine_tuning_kept:
            parts.classifier.set_weights(before)
            probabilities = None
            if progress:
                _log(f"fine-tuning not kept ({reason}): phase 1 weights kept")
        timings["phase2_seconds"] = time.perf_counter() - start

    # The reported metrics are the export's: the serving function on every whole validation clip,
    # through the network as exported (the trained weights at export_precision).
    classifier = at_precision(parts.classifier, config, num_classes, num_samples, config.export_precision)
    if probabilities is None or classifier is not parts.classifier:
        probabilities = serve_clips(classifier, dataset.classes, num_samples, val_clips, config.batch_size)
    metrics = evaluate_predictions(val_clip_labels, probabilities, dataset.classes)
    metrics["phase1_val_accuracy"] = phase1["accuracy"]
    metrics["fine_tuning_kept"] = fine_tuning_kept
    metrics["train_clips"] = int(len(train_clip_labels))
    metrics["val_clips"] = int(len(val_clip_labels))
    metrics["train_windows"] = int(len(train_waves))
    metrics["val_windows"] = int(len(val_waves))
    result = TrainResult(
        classifier=classifier,
        class_names=tuple(dataset.classes),
        num_samples=num_samples,
        config=config,
        split=split,
        history=rows,
        phase_boundary=phase_boundary,
        metrics=metrics,
        timings=timings,
        skipped=skipped,
        logdir=logdir,
        val_labels=val_clip_labels,
        val_probabilities=probabilities,
    )
    if logdir is not None:
        _write_run(result, logdir)
    else:  # the checkpoints only served this run
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)
    if out is not None:
        from tfaudio.training.export import export_savedmodel, export_tflite

        result.export_dir = export_savedmodel(result.classifier, result.metadata(), out)
        if tflite:
            export_tflite(result.export_dir)
    return result


def _decode(dataset, indices, desc, progress):
    from tqdm import tqdm

    with tqdm(total=len(indices), desc=desc, unit="clip", file=sys.stderr, disable=not progress or len(indices) < 2, dynamic_ncols=True) as bar:
        return load_clips(dataset, indices, SAMPLE_RATE, progress=bar.update)


def _combine_windows(window_probabilities: np.ndarray, clips: list[np.ndarray], num_samples: int) -> np.ndarray:
    """Per-window probabilities (in window_clips' order) -> per clip, weighted as the export does."""
    out, row = [], 0
    for wave in clips:
        _, audio = windows_of(wave, num_samples)
        part = window_probabilities[row : row + len(audio)]
        out.append((part * (audio / audio.sum())[:, np.newaxis]).sum(axis=0))
        row += len(audio)
    return np.asarray(out, np.float32)


def serve_clips(classifier, class_names, num_samples: int, clips: list[np.ndarray], batch_size: int) -> np.ndarray:
    """float32 [clips, classes]: the export's serving function (tfaudio.export.serving_function)
    on each whole clip; clips of equal length go together, batch_size at a time."""
    import tensorflow as tf

    from tfaudio.training.export import serving_function

    serve = tf.function(
        serving_function(classifier, class_names, num_samples), input_signature=[tf.TensorSpec([None, None], tf.float32)]
    )
    out = np.zeros((len(clips), len(class_names)), np.float32)
    by_length: dict[int, list[int]] = {}
    for i, wave in enumerate(clips):
        by_length.setdefault(len(wave), []).append(i)
    for rows in by_length.values():
        for start in range(0, len(rows), batch_size):
            chosen = rows[start : start + batch_size]
            batch = np.stack([clips[i] for i in chosen]).astype(np.float32)
            out[chosen] = serve(tf.constant(batch))["probabilities"].numpy()
    return out


def _write_run(result: TrainResult, logdir: Path) -> None:
    """metrics.json, curves.html and curves.png in logdir, each written whole or not at all."""
    from tfaudio.training.plots import write_curves_html, write_curves_png

    outputs.write_text(logdir / "metrics.json", json.dumps(
        {"metrics": result.metrics, "timings": result.timings, "split": result.split.how, "config": result.config.to_dict()}, indent=2
    ))
    write_curves_html(result, logdir / "curves.html")
    write_curves_png(result, logdir / "curves.png")
