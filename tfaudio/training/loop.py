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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfaudio import outputs
from tfaudio.data.audio import printable_path
from tfaudio.data.dataset import Dataset, Problem, load_dataset
from tfaudio.quiet import import_tensorflow_quietly
from tfaudio.training.config import TrainConfig, TrainingError
from tfaudio.training.evaluation import combine_windows, evaluate_predictions, serve_clips
from tfaudio.training.fitting import compute_features, epoch_callbacks, log, wave_batches
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
)
from tfaudio.training.result import SAMPLE_RATE, TrainResult

__all__ = ["TrainResult", "train"]


def _compile(model, learning_rate: float):
    from tfaudio.quiet import keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
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
    (``saved_models/NAME``; the model goes to its next version ``NAME/<n>/``); None exports
    nothing. logdir: TensorBoard logs, checkpoints, history.csv, curves.html / curves.png and
    metrics.json, in a folder of this run's own: `logdir` when new or empty, else `logdir-2`,
    `logdir-3`, ... (result.logdir says which), so an earlier run's files are never overwritten.
    Bad input (one class, a class with one clip, no validation clips, weights unavailable, an
    output folder that cannot be written, tflite with a bfloat16 export) raises TrainingError,
    DatasetError or OutputError before any audio is decoded or any model built.
    """
    plan = _plan(data, config, out, logdir, tflite, group_column, progress)
    import_tensorflow_quietly()
    from tfaudio.quiet import keras

    keras.utils.set_random_seed(config.seed)
    timings: dict[str, float] = {}
    examples = _decode_examples(plan, progress, timings)
    from tfaudio.training.backbones import build

    parts = build(config, len(plan.dataset.classes), plan.num_samples, plan.weights_path)
    scratch = plan.logdir or Path(tempfile.mkdtemp(prefix="tfaudio-train-"))
    _check_room(parts.classifier.count_params(), out, scratch, tflite)  # before the training, not at the export
    rows: list[dict] = []
    (scratch / "checkpoints").mkdir(parents=True, exist_ok=True)
    phase1 = _frozen_phase(plan, examples, parts, rows, scratch, progress, timings)
    phase2 = _fine_tune_phase(plan, examples, parts, rows, scratch, phase1, progress, timings)
    result = _result(plan, examples, parts, rows, phase1, phase2, timings)
    _keep_outputs(result, scratch, out, tflite)
    return result


@dataclass(frozen=True)
class _Plan:
    """A run checked before any audio is decoded or model built: the dataset and its split, the
    noise bank (augmenter), the example length in samples, the backbone's weights file (None:
    none needed) and this run's own log folder (None: no logs)."""

    dataset: Dataset
    config: TrainConfig
    split: ValidationSplit
    augmenter: WaveAugmenter | None
    num_samples: int
    weights_path: str | None
    logdir: Path | None


def _plan(data, config: TrainConfig, out, logdir, tflite: bool, group_column, progress: bool) -> _Plan:
    """Every check that can fail cheaply, in the order it costs: output folders, the data and
    its classes, the split, the noise bank, the input size, the weights."""
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
        log(f"noise augmentation: {augmenter.excluded} validation clips in --noise-dir left out of the noise bank")
    duration = config.duration or median_duration(dataset, split.train)
    num_samples = int(round(duration * SAMPLE_RATE))
    from tfaudio.training.backbones import check_input_size, resolve_weights

    check_input_size(config, num_samples)  # before any audio is decoded or weights looked for
    weights_path = resolve_weights(config)
    logdir = outputs.fresh_folder(logdir) if logdir is not None else None
    if progress:
        log(
            f"{len(dataset)} clips, {len(dataset.classes)} classes; validation: {split.how} "
            f"({len(split.train)} train / {len(split.val)} val); {duration:g} s per example; "
            f"backbone {config.backbone} in {config.precision}"
        )
    return _Plan(dataset, config, split, augmenter, num_samples, weights_path, logdir)


@dataclass(frozen=True)
class _Examples:
    """The decoded clips, cut into windows of num_samples as the export cuts them.

    train_waves float32 [windows, num_samples], train_labels int64 [windows], train_weights
    float32 [windows] (class weight x the window's share of audio); val_waves, val_labels and
    val_weights (the share of audio only) likewise; val_clips: the whole validation clips
    (float32 [samples] each) with val_clip_labels int64 [clips]; train_clips: training clips
    that decoded; skipped: clips that did not.
    """

    train_waves: np.ndarray
    train_labels: np.ndarray
    train_weights: np.ndarray
    val_waves: np.ndarray
    val_labels: np.ndarray
    val_weights: np.ndarray
    val_clips: list[np.ndarray]
    val_clip_labels: np.ndarray
    train_clips: int
    skipped: list[Problem]


def _decode_examples(plan: _Plan, progress: bool, timings: dict) -> _Examples:
    """Whole clips decoded (a long clip becomes several windows, exactly as the export cuts it);
    clips that fail are named on stderr and left out, and the class checks run again."""
    dataset, split = plan.dataset, plan.split
    start = time.perf_counter()
    train_clips, train_clip_labels, _, skipped = _decode(dataset, split.train, "decoding train", progress)
    val_clips, val_clip_labels, _, skipped_val = _decode(dataset, split.val, "decoding val", progress)
    skipped += skipped_val
    for problem in skipped:
        log(f"skipped {problem.path}: {problem.reason}")
    check_decoded(dataset, train_clip_labels, val_clip_labels, skipped, split.how)
    train_waves, train_labels, train_window_weights = window_clips(train_clips, train_clip_labels, plan.num_samples)
    val_waves, val_labels, val_window_weights = window_clips(val_clips, val_clip_labels, plan.num_samples)
    timings["decode_seconds"] = time.perf_counter() - start
    num_classes = len(dataset.classes)
    if plan.config.class_weights:
        weights_per_class = class_weights(train_labels, num_classes, train_window_weights)
    else:
        weights_per_class = np.ones(num_classes, np.float32)
    return _Examples(
        train_waves, train_labels, weights_per_class[train_labels] * train_window_weights, val_waves, val_labels,
        val_window_weights, val_clips, val_clip_labels, int(len(train_clip_labels)), skipped,
    )


@dataclass(frozen=True)
class _PhaseOne:
    """The frozen phase: its epochs (the curves' boundary), best validation loss, and its
    metrics per whole validation clip (`evaluate_predictions`)."""

    epochs: int
    best_loss: float
    metrics: dict


def _frozen_phase(plan: _Plan, examples: _Examples, parts, rows: list[dict], scratch: Path, progress: bool,
                  timings: dict) -> _PhaseOne:
    """Phase 1: the frozen part runs once; the head trains on its cached outputs, and its best
    epoch (lowest validation loss) is loaded back."""
    config = plan.config
    start = time.perf_counter()
    train_feats, train_feat_labels, sample_weights = _cached_features(plan, examples, parts, progress)
    val_feats = compute_features(parts.frozen, examples.val_waves, config.batch_size)
    timings["cache_seconds"] = time.perf_counter() - start

    start = time.perf_counter()
    _compile(parts.head, config.learning_rate)
    best = scratch / "checkpoints" / "phase1_best.weights.h5"
    parts.head.fit(
        train_feats,
        train_feat_labels,
        sample_weight=sample_weights,
        batch_size=config.batch_size,
        epochs=config.epochs,
        validation_data=(val_feats, examples.val_labels, examples.val_weights),
        shuffle=True,
        verbose=0,
        callbacks=epoch_callbacks(plan.logdir, 1, best, rows, config.epochs, config, progress),
    )
    finite = [row["val_loss"] for row in rows if np.isfinite(row.get("val_loss", np.nan))]
    if not finite or not best.exists():  # the checkpoint is written only for a finite, improving val_loss
        losses = ", ".join(f"{row.get('val_loss', float('nan')):.4g}" for row in rows)
        raise TrainingError(
            f"{plan.dataset.source}: the validation loss was never finite in {len(rows)} frozen-phase epoch(s) ({losses}), "
            "so there is no best model to keep. Usually a learning rate that is too high (try a lower --learning-rate) or "
            "clips that give non-finite features (e.g. digital silence with unusual settings)"
        )
    parts.head.load_weights(str(best))
    timings["phase1_seconds"] = time.perf_counter() - start
    # Per whole clip as the export serves it (from the cached window outputs, combined with the export's weights).
    window_probabilities = parts.head.predict(val_feats, batch_size=config.batch_size, verbose=0)
    probabilities = combine_windows(window_probabilities, examples.val_clips, plan.num_samples)
    metrics = evaluate_predictions(examples.val_clip_labels, probabilities, plan.dataset.classes)
    return _PhaseOne(len(rows), min(finite), metrics)


def _cached_features(plan: _Plan, examples: _Examples, parts, progress: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The frozen part's outputs over the training windows, then over `augment.copies`
    augmented copies of them when augmentation is on: (features float32 [n, ...], labels int64
    [n], sample weights float32 [n])."""
    config, augmenter = plan.config, plan.augmenter
    desc = "backbone (cached once)" if progress else None
    feats = [compute_features(parts.frozen, examples.train_waves, config.batch_size, desc=desc)]
    if augmenter is not None:
        rng = np.random.default_rng([config.seed, 1])
        spec_augment = "specaugment" in config.augment.kinds
        for copy in range(config.augment.copies):
            waves = augmenter(examples.train_waves, rng) if augmenter.active else examples.train_waves
            desc = f"augmented copy {copy + 1}" if progress else None
            feats.append(compute_features(parts.frozen, waves, config.batch_size, training=spec_augment, desc=desc))
    copies = len(feats)
    return np.concatenate(feats), np.tile(examples.train_labels, copies), np.tile(examples.train_weights, copies)


@dataclass(frozen=True)
class _PhaseTwo:
    """The fine-tuning phase: status "kept", "not kept" or "skipped", the reason ("" when kept),
    and, when kept, the fine-tuned network's probabilities float32 [clips, classes] per whole
    validation clip."""

    status: str
    reason: str
    probabilities: np.ndarray | None = None


def _fine_tune_phase(plan: _Plan, examples: _Examples, parts, rows: list[dict], scratch: Path, phase1: _PhaseOne,
                     progress: bool, timings: dict) -> _PhaseTwo:
    """Phase 2: the last blocks unfrozen, a lower learning rate, batch norm in inference mode.
    Kept only if it lowers the validation loss below phase 1's best and does not lower the
    validation accuracy; otherwise phase 1's weights are put back."""
    config = plan.config
    if config.fine_tune_epochs == 0:
        return _PhaseTwo("skipped", "0 fine-tuning epochs")
    if parts.max_unfreeze > 0 and config.unfreeze_last == 0:  # the head alone: phase 1 already trained it
        return _PhaseTwo("skipped", "0 backbone blocks to unfreeze")
    start = time.perf_counter()
    before = parts.classifier.get_weights()
    unfrozen = parts.unfreeze(config.unfreeze_last)
    if progress:
        log(f"fine-tuning: {len(unfrozen)} backbone layers unfrozen, learning rate {config.fine_tune_learning_rate:g}")
    _compile(parts.classifier, config.fine_tune_learning_rate)
    best = scratch / "checkpoints" / "phase2_best.weights.h5"
    total = phase1.epochs + config.fine_tune_epochs
    parts.classifier.fit(
        wave_batches(examples.train_waves, examples.train_labels, examples.train_weights, config.batch_size,
                       plan.augmenter, config.seed),
        initial_epoch=phase1.epochs,
        epochs=total,
        validation_data=(examples.val_waves, examples.val_labels, examples.val_weights),
        validation_batch_size=config.batch_size,
        verbose=0,
        callbacks=epoch_callbacks(plan.logdir, 2, best, rows, total, config, progress, threshold=phase1.best_loss),
    )
    phase2 = _PhaseTwo("not kept", "it did not lower the validation loss below phase 1's best")
    if best.exists():  # some epoch beat phase 1's best validation loss
        parts.classifier.load_weights(str(best))
        probabilities = serve_clips(parts.classifier, plan.dataset.classes, plan.num_samples, examples.val_clips,
                                    config.batch_size)
        accuracy = float(np.mean(probabilities.argmax(axis=1) == examples.val_clip_labels))
        if accuracy >= phase1.metrics["accuracy"]:
            phase2 = _PhaseTwo("kept", "", probabilities)
        else:
            phase2 = _PhaseTwo("not kept", f"its validation accuracy {accuracy:.4f} is below phase 1's "
                                           f"{phase1.metrics['accuracy']:.4f}")
    if phase2.status != "kept":
        parts.classifier.set_weights(before)
        if progress:
            log(f"fine-tuning not kept ({phase2.reason}): phase 1 weights kept")
    timings["phase2_seconds"] = time.perf_counter() - start
    return phase2


def _result(plan: _Plan, examples: _Examples, parts, rows: list[dict], phase1: _PhaseOne, phase2: _PhaseTwo,
            timings: dict) -> TrainResult:
    """The run's result. The reported metrics are the export's: the serving function on every
    whole validation clip, through the network as exported (the trained weights at export_precision)."""
    from tfaudio.training.backbones import at_precision

    config, classes = plan.config, plan.dataset.classes
    classifier = at_precision(parts.classifier, config, len(classes), plan.num_samples, config.export_precision)
    probabilities = phase2.probabilities
    if probabilities is None or classifier is not parts.classifier:
        probabilities = serve_clips(classifier, classes, plan.num_samples, examples.val_clips, config.batch_size)
    metrics = evaluate_predictions(examples.val_clip_labels, probabilities, classes)
    metrics.update(
        phase1_val_accuracy=phase1.metrics["accuracy"],
        fine_tuning_kept=phase2.status == "kept",
        fine_tuning=phase2.status,
        fine_tuning_reason=phase2.reason,
        train_clips=examples.train_clips,
        val_clips=int(len(examples.val_clip_labels)),
        train_windows=int(len(examples.train_waves)),
        val_windows=int(len(examples.val_waves)),
    )
    return TrainResult(
        classifier=classifier,
        class_names=tuple(classes),
        num_samples=plan.num_samples,
        config=config,
        split=plan.split,
        history=rows,
        phase_boundary=phase1.epochs,
        metrics=metrics,
        timings=timings,
        skipped=examples.skipped,
        logdir=plan.logdir,
        val_labels=examples.val_clip_labels,
        val_probabilities=probabilities,
    )


#: Bytes per parameter in a checkpoint or an export (float32), and what a file holds beyond its
#: weights (graph, metadata, format), with a tenth more for luck.
_PARAMETER_BYTES, _FILE_OVERHEAD, _MARGIN = 4, 1 << 20, 1.1
#: What a log folder holds beyond its checkpoints: curves.html (Plotly inline), curves.png, TensorBoard events.
_LOGS_BYTES = 8 << 20


def _check_room(parameters: int, out, scratch: Path, tflite: bool) -> None:
    """TrainingError, before any epoch, when the export (`out`, with its TFLite copy) or the
    checkpoints and logs (`scratch`) will not fit the free space of their disks; the sizes are
    estimated from the model's `parameters`."""
    weights = int(parameters * _PARAMETER_BYTES * _MARGIN) + _FILE_OVERHEAD
    needs = {scratch: ("checkpoints and logs", 2 * weights + _LOGS_BYTES)}  # one best checkpoint per phase
    if out is not None:
        needs[Path(out)] = ("the export", weights * (2 if tflite else 1))
    by_disk: dict[int, list[tuple[Path, str, int]]] = {}
    for place, (what, size) in needs.items():
        existing = outputs.existing_part(place)
        by_disk.setdefault(os.stat(existing).st_dev, []).append((place, what, size))
    for entries in by_disk.values():
        total, free = sum(size for *_, size in entries), outputs.free_bytes(entries[0][0])
        if total > free:
            wanted = "; ".join(f"{what} in {printable_path(place)} about {outputs.size_text(size)}"
                               for place, what, size in entries)
            raise TrainingError(f"not enough room: {wanted} ({parameters:,} parameters), but only "
                                f"{outputs.size_text(free)} is free there; free some space or choose another "
                                "--out / --logdir")


def _keep_outputs(result: TrainResult, scratch: Path, out, tflite: bool) -> None:
    """The export when `out` is given, then the run's files in its log folder (without one, its
    scratch checkpoints are deleted once the export is safe). A disk that fills up during the
    export is one TrainingError naming where the checkpoints are kept."""
    if out is not None:
        from tfaudio.training.export import export_savedmodel, export_tflite

        try:
            result.export_dir = export_savedmodel(result.classifier, result.metadata(), out)
            if tflite:
                export_tflite(result.export_dir)
        except Exception as err:  # TensorFlow's ResourceExhaustedError is no OSError
            if not outputs.is_disk_full(err):
                raise
            kept = sorted(p.name for p in (scratch / "checkpoints").glob("*.weights.h5"))
            raise TrainingError(
                f"{printable_path(out)}: no space left on its disk ({outputs.size_text(outputs.free_bytes(out))} "
                f"free), so the model was not exported; the trained weights are kept in "
                f"{printable_path(scratch / 'checkpoints')} ({', '.join(kept) or 'none written'}); free some space "
                "and train again"
            ) from None
    if result.logdir is not None:
        _write_run(result, result.logdir)
    else:  # the checkpoints only served this run
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)


def _decode(dataset, indices, desc, progress):
    from tqdm import tqdm

    with tqdm(total=len(indices), desc=desc, unit="clip", file=sys.stderr, disable=not progress or len(indices) < 2, dynamic_ncols=True) as bar:
        return load_clips(dataset, indices, SAMPLE_RATE, progress=bar.update)


def _write_run(result: TrainResult, logdir: Path) -> None:
    """metrics.json, curves.html and curves.png in logdir, each written whole or not at all."""
    from tfaudio.training.plots import write_curves_html, write_curves_png

    outputs.write_text(logdir / "metrics.json", json.dumps(
        {"metrics": result.metrics, "timings": result.timings, "split": result.split.how, "config": result.config.to_dict()}, indent=2
    ))
    write_curves_html(result, logdir / "curves.html")
    write_curves_png(result, logdir / "curves.png")
