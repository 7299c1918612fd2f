"""`tfaudio train` and `tfaudio predict`: transfer learning to an exported model, and using it."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tfaudio.cli.common import echo_precision_warning, friendly_errors, precision_option
from tfaudio.outputs import check_writable
from tfaudio.training.config import AUGMENTATIONS, BACKBONES, SPLITS


@click.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--backbone", type=click.Choice(BACKBONES), default="small_cnn", show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Export folder, e.g. saved_models/NAME (model in NAME/<version>/).")
@click.option("--epochs", default=20, show_default=True, help="Frozen-phase epochs (head on cached backbone outputs).")
@click.option("--fine-tune-epochs", default=5, show_default=True, help="Fine-tuning epochs (0: skip).")
@click.option("--unfreeze-last", default=2, show_default=True, help="Backbone blocks unfrozen for fine-tuning.")
@click.option("--lr", default=1e-3, show_default=True, help="Frozen-phase learning rate.")
@click.option("--fine-tune-lr", default=1e-5, show_default=True, help="Fine-tuning learning rate.")
@click.option("--batch-size", default=32, show_default=True)
@click.option("--duration", type=float, help="Seconds per window (default: the median clip length); longer clips are cut into windows of it, "
              "in training, validation and the export alike.")
@click.option("--augment", multiple=True, type=click.Choice(AUGMENTATIONS), help="Repeat for several.")
@click.option("--noise-dir", type=click.Path(file_okay=False, path_type=Path), help="Background-noise clips for --augment noise.")
@click.option("--split", type=click.Choice(SPLITS), default="auto", show_default=True,
              help="auto: the manifest's fold, else group-aware, else stratified 80/20.")
@click.option("--val-fold", type=int, help="Fold held out for validation (default: the lowest).")
@click.option("--group-column", help="Manifest column that groups clips, e.g. speaker.")
@click.option("--no-class-weights", is_flag=True, help="Do not weight classes by inverse frequency.")
@click.option("--weights", type=click.Path(dir_okay=False), help="Explicit backbone weights file.")
@click.option("--native-size", is_flag=True, help="mobilenet_v2: feed the native spectrogram, not 224 x 224.")
@click.option("--patience", default=5, show_default=True, help="Early-stopping patience (epochs).")
@click.option("--seed", default=0, show_default=True)
@click.option("--logdir", type=click.Path(file_okay=False, path_type=Path), help="TensorBoard logs, curves, metrics (default: runs/NAME); "
              "LOGDIR-2, LOGDIR-3, ... when an earlier run has it.")
@click.option("--tflite", is_flag=True, help="Also write NAME/<version>/model.tflite.")
@precision_option("bfloat16: the backbone trains in Keras mixed precision (bfloat16 compute, float32 weights; head "
                  "and loss float32), for CPUs with AVX512-BF16 / AMX (see tfaudio info --system) and GPUs.")
@precision_option("What the exported model computes in (and the reported metrics come from); its signature is "
                  "float32 either way.", name="--export-precision")
@friendly_errors
def train(data, backbone, out, epochs, fine_tune_epochs, unfreeze_last, lr, fine_tune_lr, batch_size, duration, augment,
          noise_dir, split, val_fold, group_column, no_class_weights, weights, native_size, patience, seed, logdir, tflite,
          precision, export_precision):
    """Train a classifier on DATA by transfer learning: the backbone frozen (its outputs computed
    once and cached), then its last blocks fine-tuned; export a SavedModel that takes raw
    16 kHz waveforms. Watch it with `tensorboard --logdir runs/`. Each run keeps its own log
    folder: LOGDIR when it is new, else LOGDIR-2, LOGDIR-3, ... beside it."""
    if logdir is None:
        logdir = Path("runs") / (out.name if out is not None else backbone)
    for folder in (out, logdir):  # before any clip is decoded or epoch trained
        if folder is not None:
            check_writable(folder)
    from tfaudio.training.config import AugmentConfig, TrainConfig

    config = TrainConfig(
        backbone=backbone, epochs=epochs, fine_tune_epochs=fine_tune_epochs, unfreeze_last=unfreeze_last, lr=lr,
        fine_tune_lr=fine_tune_lr, batch_size=batch_size, duration=duration, patience=patience, seed=seed, split=split,
        val_fold=val_fold, class_weights=not no_class_weights, augment=AugmentConfig(tuple(augment), noise_dir=noise_dir),
        weights=weights, resize=not native_size, precision=precision, export_precision=export_precision,
    )
    echo_precision_warning(precision, training=True)
    from tfaudio.training.loop import train as run

    result = run(data, config, out=out, logdir=logdir, tflite=tflite, group_column=group_column)
    m = result.metrics
    click.echo(f"validation ({result.split.how}, {m['val_clips']} clips): accuracy {m['accuracy']:.4f}, "
               f"balanced {m['balanced_accuracy']:.4f}, macro F1 {m['macro_f1']:.4f}")
    click.echo(f"frozen phase {m['phase1_val_accuracy']:.4f}; fine-tuning {'kept' if m['fine_tuning_kept'] else 'not kept'}")
    names = list(result.class_names)
    width = max(len(n) for n in names)
    click.echo("confusion (rows true, columns predicted):")
    click.echo(" " * (width + 2) + " ".join(f"{n[:6]:>6}" for n in names))
    for name, row in zip(names, m["confusion"]):
        click.echo(f"{name:<{width}}  " + " ".join(f"{v:>6}" for v in row))
    logdir = result.logdir  # this run's own folder
    click.echo(f"curves: {logdir / 'curves.html'}, {logdir / 'curves.png'}; TensorBoard: tensorboard --logdir {logdir}")
    if result.export_dir is not None:
        click.echo(f"exported: {result.export_dir}" + (f" (+ {result.export_dir / 'model.tflite'})" if tflite else ""))


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file.")
@friendly_errors
def predict(model, files, as_json):
    """Classify audio FILES with an exported MODEL (saved_models/NAME or a version folder):
    a label and the class probabilities per file. A file that cannot be classified is named on
    stderr with its problem and the others go on; the exit status is then 1."""
    from tfaudio.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    from tfaudio.data.audio import AudioError, load, printable_path
    from tfaudio.training.export import MIN_SECONDS
    from tfaudio.training.export import load as load_model

    served = load_model(model)
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
        probabilities, labels = served.predict(wave)
        scores = dict(zip(served.class_names, map(float, probabilities[0])))
        if as_json:
            click.echo(json.dumps({"file": shown, "label": labels[0], "probabilities": scores}))
        else:
            ranked = sorted(scores.items(), key=lambda kv: -kv[1])
            click.echo(f"{shown}  {labels[0]}  " + "  ".join(f"{k} {v:.3f}" for k, v in ranked))
    if failed:
        raise click.ClickException(f"{failed} of {len(files)} file(s) could not be classified (named above)")
