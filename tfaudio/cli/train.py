"""`tfaudio train` and `tfaudio predict`: transfer learning to an exported model, and using it."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tfaudio.cli.common import (COUNT, COUNT_OR_ZERO, NON_NEGATIVE, POSITIVE, SECONDS, SEED, echo_precision_warning, friendly_errors,
                                precision_option, renamed_option)
from tfaudio.data.splits import ALIASES
from tfaudio.outputs import check_writable
from tfaudio.training.config import AUGMENTATIONS, BACKBONE_TABLE, SPLITS, TrainConfig


def _backbone_help(default: str) -> str:
    """--backbone's help, one sentence per entry of the backbone table: what it is, what it
    learned from (or that it trains from scratch) and the weights file it needs."""
    sentences = []
    for backbone in BACKBONE_TABLE.values():
        learned = f"pretrained on {backbone.pretrained_on}" if backbone.pretrained_on else "trained from scratch on DATA"
        spec = backbone.weights
        if spec is None:
            needs = "needs no weights"
        elif spec.keras_cache:  # keras.applications' own file, whose long name says nothing more
            needs = f"needs its keras.applications weights file in $TFAUDIO_MODELS/{spec.model}/ or $KERAS_HOME/models/"
        else:
            needs = f"needs {spec.filename} in $TFAUDIO_MODELS/{spec.model}/"
        if spec is not None:
            needs += " (else downloaded once)"
        name = f"{backbone.name} (default)" if backbone.name == default else backbone.name
        sentences.append(f"{name}: {backbone.network}, {learned}; {needs}.")
    return "The network the classifier is built on. " + " ".join(sentences)


class _SplitChoice(click.Choice):
    """The validation split strategies; an old spelling ("fold") is taken as its strategy with a
    one-line note on stderr."""

    def convert(self, value, param, ctx):
        if value in ALIASES:
            click.echo(f"note: --split {value} is now --split {ALIASES[value]} (the old spelling still works)", err=True)
            value = ALIASES[value]
        return super().convert(value, param, ctx)


_DEFAULTS = TrainConfig()  # the options' defaults are the API's


@click.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--backbone", type=click.Choice(tuple(BACKBONE_TABLE)), default=_DEFAULTS.backbone, show_default=True,
              help=_backbone_help(_DEFAULTS.backbone))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Export folder, e.g. saved_models/NAME (model in NAME/<version>/). Without it nothing is exported.")
@click.option("--epochs", type=COUNT, default=_DEFAULTS.epochs, show_default=True, help="Frozen-phase epochs (head on cached backbone outputs).")
@click.option("--fine-tune-epochs", type=COUNT_OR_ZERO, default=_DEFAULTS.fine_tune_epochs, show_default=True, help="Fine-tuning epochs (0: skip).")
@click.option("--unfreeze-last", type=COUNT_OR_ZERO, default=_DEFAULTS.unfreeze_last, show_default=True, help="Backbone blocks unfrozen for fine-tuning.")
@click.option("--learning-rate", type=POSITIVE, default=_DEFAULTS.learning_rate, show_default=True, help="Frozen-phase learning rate.")
@renamed_option("--lr", "--learning-rate", "learning_rate", type=POSITIVE)
@click.option("--fine-tune-learning-rate", type=NON_NEGATIVE, default=_DEFAULTS.fine_tune_learning_rate, show_default=True,
              help="Fine-tuning learning rate.")
@renamed_option("--fine-tune-lr", "--fine-tune-learning-rate", "fine_tune_learning_rate", type=NON_NEGATIVE)
@click.option("--batch-size", type=COUNT, default=_DEFAULTS.batch_size, show_default=True)
@click.option("--duration", type=SECONDS, help="Seconds per window (default: the median clip length); longer clips are cut into windows of it, "
              "in training, validation and the export alike.")
@click.option("--augment", multiple=True, type=click.Choice(AUGMENTATIONS), help="Repeat for several.")
@click.option("--noise-dir", type=click.Path(file_okay=False, path_type=Path), help="Background-noise clips for --augment noise.")
@click.option("--split", type=_SplitChoice(SPLITS), default=_DEFAULTS.split, show_default=True,
              help="How the validation clips are held out. predefined: one of the manifest's folds (--val-fold); group: "
                   "a group-aware 80/20 holdout; stratified: a stratified 80/20 holdout; auto: predefined when the "
                   "manifest has folds, else group when clips have groups, else stratified.")
@click.option("--val-fold", type=int, help="Fold held out for validation with --split predefined (default: the lowest).")
@click.option("--group-column", help="Manifest column that groups clips, e.g. speaker.")
@click.option("--no-class-weights", is_flag=True, help="Do not weight classes by inverse frequency.")
@click.option("--weights", type=click.Path(dir_okay=False), help="Explicit backbone weights file.")
@click.option("--native-size", is_flag=True, help="mobilenet_v2: feed the native spectrogram, not 224 x 224.")
@click.option("--patience", type=COUNT_OR_ZERO, default=_DEFAULTS.patience, show_default=True, help="Early-stopping patience (epochs).")
@click.option("--seed", type=SEED, default=_DEFAULTS.seed, show_default=True)
@click.option("--logdir", type=click.Path(file_okay=False, path_type=Path), help="TensorBoard logs, curves, metrics (default: runs/NAME); "
              "LOGDIR-2, LOGDIR-3, ... when an earlier run has it.")
@click.option("--tflite", is_flag=True, help="Also write NAME/<version>/model.tflite.")
@precision_option("bfloat16: the backbone trains in Keras mixed precision (bfloat16 compute, float32 weights; head "
                  "and loss float32), for CPUs with AVX512-BF16 / AMX (see tfaudio info --system) and GPUs.")
@precision_option("What the exported model computes in (and the reported metrics come from); its signature is "
                  "float32 either way.", name="--export-precision")
@friendly_errors
def train(data, backbone, out, epochs, fine_tune_epochs, unfreeze_last, learning_rate, fine_tune_learning_rate, batch_size,
          duration, augment, noise_dir, split, val_fold, group_column, no_class_weights, weights, native_size, patience, seed,
          logdir, tflite, precision, export_precision):
    """Train a classifier on DATA by transfer learning: the backbone frozen (its outputs computed
    once and cached), then its last blocks fine-tuned; export a SavedModel that takes raw
    16 kHz waveforms (with --out). Watch it with `tensorboard --logdir runs/`. Each run keeps its
    own log folder: LOGDIR when it is new, else LOGDIR-2, LOGDIR-3, ... beside it."""
    if logdir is None:
        logdir = Path("runs") / (out.name if out is not None else backbone)
    for folder in (out, logdir):  # before any clip is decoded or epoch trained
        if folder is not None:
            check_writable(folder)
    from tfaudio.training.config import AugmentConfig

    config = TrainConfig(
        backbone=backbone, epochs=epochs, fine_tune_epochs=fine_tune_epochs, unfreeze_last=unfreeze_last,
        learning_rate=learning_rate, fine_tune_learning_rate=fine_tune_learning_rate, batch_size=batch_size,
        duration=duration, patience=patience, seed=seed, split=split, val_fold=val_fold,
        class_weights=not no_class_weights, augment=AugmentConfig(tuple(augment), noise_dir=noise_dir), weights=weights,
        resize=not native_size, precision=precision, export_precision=export_precision,
    )
    echo_precision_warning(precision, training=True)
    from tfaudio.training.loop import train as run

    _summary(run(data, config, out=out, logdir=logdir, tflite=tflite, group_column=group_column), tflite)


def _summary(result, tflite: bool) -> None:
    """What `train` prints once the run is done: the metrics, the confusion matrix, where the
    curves and the export are (or that nothing was exported)."""
    from tfaudio.training.result import describe_fine_tuning

    m = result.metrics
    click.echo(f"validation ({result.split.how}, {m['val_clips']} clips): accuracy {m['accuracy']:.4f}, "
               f"balanced {m['balanced_accuracy']:.4f}, macro F1 {m['macro_f1']:.4f}")
    click.echo(f"frozen phase {m['phase1_val_accuracy']:.4f}; fine-tuning {describe_fine_tuning(m)}")
    _echo_confusion(list(result.class_names), m["confusion"])
    logdir = result.logdir  # this run's own folder
    click.echo(f"curves: {logdir / 'curves.html'}, {logdir / 'curves.png'}; TensorBoard: tensorboard --logdir {logdir}")
    if result.export_dir is not None:
        click.echo(f"exported: {result.export_dir}" + (f" (+ {result.export_dir / 'model.tflite'})" if tflite else ""))
    else:
        click.echo("no --out: nothing exported; add --out saved_models/NAME to export")


def _echo_confusion(names: list[str], confusion: list[list[int]]) -> None:
    """The confusion matrix with whole class names: rows named and numbered, columns numbered
    (names as column heads would make ten classes wider than a terminal, or be cut)."""
    number = len(str(len(names)))
    width = max(len(n) for n in names)
    cell = max(3, len(str(max(max(row) for row in confusion))))
    click.echo("confusion (rows true, columns predicted, numbered as the rows):")
    click.echo(" " * (number + 1 + width) + "".join(f" {i:>{cell}}" for i in range(1, len(names) + 1)))
    for i, (name, row) in enumerate(zip(names, confusion), 1):
        click.echo(f"{i:>{number}} {name:<{width}}" + "".join(f" {v:>{cell}}" for v in row))


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object per file (for a detector: its per-window scores, probabilities and decisions).")
@friendly_errors
def predict(model, files, as_json):
    """Classify audio FILES with an exported MODEL (saved_models/NAME or a version folder):
    a label and the class probabilities per file. MODEL may also be a detector (DET, as
    `tfaudio detector train --out DET` writes it, DET/saved_model or a version folder): then per
    file the windows detected (label, start-end, calibrated probability) and each label's highest
    probability in the file. A file that cannot be read is named on stderr with its problem and
    the others go on; the exit status is then 1."""
    from tfaudio.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    from tfaudio.data.audio import AudioError, load, printable_path
    from tfaudio.detector.export import is_detector_export, load_detector_export
    from tfaudio.training.export import MIN_SECONDS
    from tfaudio.training.export import load as load_model

    detector = is_detector_export(model)
    served = load_detector_export(model) if detector else load_model(model)
    failed = 0
    for path in files:
        shown = printable_path(path)
        try:
            wave = load(path, served.sample_rate)
        except AudioError as err:
            failed += 1
            click.echo(f"skipped {shown}: {err.problem}", err=True)
            continue
        if len(wave) < MIN_SECONDS * served.sample_rate:
            failed += 1
            click.echo(f"skipped {shown}: {len(wave) / served.sample_rate:.3f} s long; the model needs at least "
                       f"{MIN_SECONDS} s", err=True)
            continue
        if detector:
            _echo_detections(shown, served, served.predict(wave), as_json)
            continue
        probabilities, labels = served.predict(wave)
        scores = dict(zip(served.class_names, map(float, probabilities[0])))
        if as_json:
            click.echo(json.dumps({"file": shown, "label": labels[0], "probabilities": scores}))
        else:
            ranked = sorted(scores.items(), key=lambda kv: -kv[1])
            click.echo(f"{shown}  {labels[0]}  " + "  ".join(f"{k} {v:.3f}" for k, v in ranked))
    if failed:
        what = "run through the detector" if detector else "classified"
        raise click.ClickException(f"{failed} of {len(files)} file(s) could not be {what} (named above)")


def _echo_detections(shown: str, served, out: dict, as_json: bool) -> None:
    """One file's detector outputs (`ServedDetector.predict` of one clip): with as_json one JSON
    object of its arrays, else a line of each label's highest probability, then one line per
    window and label at or above the label's threshold, in time order."""
    labels = served.labels
    clip = dict(zip(labels, map(float, out["clip_probabilities"][0])))
    if as_json:
        click.echo(json.dumps({
            "file": shown, "labels": labels, "thresholds": served.metadata["thresholds"],
            "starts": out["starts"].tolist(), "ends": out["ends"].tolist(), "scores": out["scores"][0].tolist(),
            "probabilities": out["probabilities"][0].tolist(), "decisions": out["decisions"][0].tolist(),
            "clip_probabilities": clip,
        }))
        return
    click.echo(f"{shown}  highest: " + "  ".join(f"{label} {p:.3f}" for label, p in clip.items()))
    found = [(window, column) for window, column in zip(*out["decisions"][0].nonzero())]
    for window, column in found:
        click.echo(f"  {labels[column]}  {out['starts'][window]:.2f}-{out['ends'][window]:.2f} s  "
                   f"{out['probabilities'][0, window, column]:.3f}")
    if not found:
        click.echo("  nothing detected at the thresholds")
