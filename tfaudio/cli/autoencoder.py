"""`tfaudio autoencoder`: train a log-mel autoencoder on your clips, look at it, export its encoder."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tfaudio.cli.common import (COUNT, COUNT_OR_ZERO, FRACTION, POSITIVE, SECONDS, SEED, count, echo_precision_warning,
                                friendly_errors, precision_option, progress)
from tfaudio.models.autoencoder.config import AutoencoderConfig
from tfaudio.outputs import check_writable

_DEFAULTS = AutoencoderConfig()


@click.group()
def autoencoder():
    """A convolutional autoencoder over log-mel patches, learned from your own clips (no labels,
    no pretrained weights). Its bottleneck is a representation: `--model autoencoder:FOLDER`
    in `tfaudio embed` and the other commands."""


@autoencoder.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the model, its record and figures (e.g. saved_models/esc10-ae).")
@click.option("--latent", type=COUNT, default=_DEFAULTS.latent, show_default=True, help="Bottleneck size.")
@click.option("--epochs", type=COUNT, default=_DEFAULTS.epochs, show_default=True, help="Most epochs (early stopping may end sooner).")
@click.option("--patch-frames", type=count(8), default=_DEFAULTS.patch_frames, show_default=True,
              help="10 ms frames per patch; a multiple of 8.")
@click.option("--patch-hop", type=COUNT, help="Frames between patches (default: half a patch).")
@click.option("--batch-size", type=COUNT, default=_DEFAULTS.batch_size, show_default=True, help="Patches per step.")
@click.option("--learning-rate", type=POSITIVE, default=_DEFAULTS.learning_rate, show_default=True)
@click.option("--patience", type=COUNT_OR_ZERO, default=_DEFAULTS.patience, show_default=True, help="Epochs without improvement before stopping.")
@click.option("--val-fraction", type=FRACTION, default=_DEFAULTS.val_fraction, show_default=True,
              help="Share of the clips held out for early stopping.")
@click.option("--fold", "folds", multiple=True, type=int,
              help="Train only on clips of this manifest fold (repeat), e.g. to keep a test fold unseen.")
@click.option("--logdir", type=click.Path(file_okay=False, path_type=Path), help="TensorBoard logs (e.g. runs/esc10-ae).")
@click.option("--seed", type=SEED, default=_DEFAULTS.seed, show_default=True, help="Same seed, same model and embeddings.")
@click.option("--max-duration", type=SECONDS, help="Use at most this many seconds of each clip.")
@click.option("--examples-per-class", type=COUNT, default=2, show_default=True, help="Clips per class in the reconstruction figure.")
@click.option("--group-column", help="Manifest column that groups clips (default: 'group' when present).")
@click.option("--strict", is_flag=True, help="Stop at the first unreadable file instead of skipping it.")
@precision_option("bfloat16: the encoder and decoder train in Keras mixed precision (bfloat16 compute; weights, "
                  "standardization and loss float32), faster on CPUs with AVX512-BF16 / AMX (see tfaudio info "
                  "--system). The saved model is float32 either way; embed in bfloat16 with tfaudio embed --precision.")
@friendly_errors
def train(data, out, latent, epochs, patch_frames, patch_hop, batch_size, learning_rate, patience, val_fraction,
          folds, logdir, seed, max_duration, examples_per_class, group_column, strict, precision):
    """Train the autoencoder on DATA's clips; save it and its figures in OUT.

    Writes OUT/autoencoder.weights.h5, OUT/autoencoder.json (config, weights digest, history,
    errors per class) and OUT/figures/ (reconstructions, error per class and loss curves as PNG,
    all three in autoencoder.html)."""
    check_writable(out)  # before any clip is decoded or epoch trained
    if logdir is not None:
        check_writable(logdir)
    config = AutoencoderConfig(
        latent=latent, epochs=epochs, patch_frames=patch_frames, patch_hop_frames=patch_hop, batch_size=batch_size,
        learning_rate=learning_rate, patience=patience, val_fraction=val_fraction, seed=seed, max_duration=max_duration,
        precision=precision,
    )
    echo_precision_warning(precision, training=True)
    from tfaudio.data.dataset import load_dataset

    dataset = load_dataset(data, group_column=group_column)
    indices = _fold_clips(dataset, data, folds)
    from tfaudio.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    from tfaudio.models.autoencoder import plots as autoencoder_plots
    from tfaudio.models.autoencoder.train import save

    result = _train_with_progress(dataset, indices, config, logdir, strict)
    figures = autoencoder_plots.write_figures(result, dataset, out / "figures", examples_per_class,
                                              title=f"Autoencoder on {dataset.root.name}")
    facts = {
        "data": str(dataset.root if dataset.source == "folders" else dataset.source),
        "folds": list(folds) or None,
        "skipped": [[p.shown, p.reason] for p in result.skipped],
        "figures": figures,
    }
    save(result, out, facts)
    _echo_summary(result, out, logdir, precision)


def _fold_clips(dataset, data: Path, folds: tuple[int, ...]):
    """The dataset indices of the clips in `folds` (None: every clip); BadParameter when the
    dataset has no folds or none of its clips is in them."""
    if not folds:
        return None
    if dataset.folds is None:
        raise click.BadParameter(f"{data} has no fold column, so --fold cannot pick clips", param_hint="--fold")
    import numpy as np

    indices = np.flatnonzero(np.isin(dataset.folds, folds))
    if not len(indices):
        raise click.BadParameter(f"no clip is in fold(s) {list(folds)}; folds are {sorted(set(dataset.folds))}",
                                 param_hint="--fold")
    return indices


def _train_with_progress(dataset, indices, config: AutoencoderConfig, logdir, strict: bool):
    """`tfaudio.models.autoencoder.train.train` with a bar for the decoding, then one for the
    epochs showing each epoch's training and validation error."""
    from tqdm import tqdm

    from tfaudio.models.autoencoder.train import train as train_autoencoder

    total = len(dataset) if indices is None else len(indices)
    with progress(total, "log-mel patches") as bar:
        epochs_bar = None

        def on_epoch(epoch, logs):
            nonlocal epochs_bar
            if epoch == 0:  # decoding is done, training starts
                bar.close()
                epochs_bar = tqdm(total=config.epochs, desc="training", unit="epoch", file=sys.stderr, dynamic_ncols=True)
                return
            # The epoch's losses first, then the count: update() redraws the bar, and drawn the
            # other way round each epoch's count showed beside the previous epoch's losses.
            epochs_bar.set_postfix(mse=f"{logs.get('masked_mse', 0):.4f}", val=f"{logs.get('val_masked_mse', 0):.4f}",
                                   refresh=False)
            epochs_bar.update(1)

        try:
            return train_autoencoder(dataset, indices, config, logdir=logdir, progress=bar.update, on_epoch=on_epoch,
                                     strict=strict)
        finally:
            if epochs_bar is not None:
                epochs_bar.close()


def _echo_summary(result, out: Path, logdir, precision: str) -> None:
    """What was trained, how far the validation error fell, and where everything went."""
    val = result.history["val_masked_mse"]
    for problem in result.skipped:
        click.echo(f"skipped {problem.shown}: {problem.reason}", err=True)
    click.echo(
        f"trained on {len(result.train_clips)} clips ({len(result.val_clips)} held out for validation), "
        f"{len(result.history['loss'])} epochs; kept epoch {result.best_epoch}"
        + ("" if precision == "float32" else f" ({precision} compute, float32 weights)")
    )
    click.echo(
        f"validation masked MSE {val[0]:.4f} after epoch 1 -> {val[result.best_epoch - 1]:.4f} "
        f"({100 * result.val_drop:.0f} % lower)"
    )
    click.echo(f"model    {out}  (use it as --model autoencoder:{out})")
    click.echo(f"figures  {out / 'figures' / 'autoencoder.html'} and PNGs beside it")
    if logdir is not None:
        click.echo(f"logs     tensorboard --logdir {logdir}")


@autoencoder.command()
@click.argument("model_dir", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="SavedModel folder to write.")
@friendly_errors
def export(model_dir, out):
    """Export the encoder as a SavedModel: waveform in, embedding out.

    The encoder of MODEL_DIR (a folder written by `train`) with its log-mel front end:
    waveform float32 [batch, samples] at 16 kHz in, embedding [batch, 2 * latent] out (mean
    and standard deviation over the clip's patches, as `autoencoder:PATH` embeds), plus
    embedding_mean [batch, latent]. The export is reloaded and checked against the model."""
    check_writable(out)
    from tfaudio.quiet import import_tensorflow_quietly

    import_tensorflow_quietly()
    from tfaudio.models.autoencoder.config import DEFAULT_POOLING
    from tfaudio.models.autoencoder.export import check_export, export_encoder
    from tfaudio.models.autoencoder.model import load_representation

    representation = load_representation(model_dir)
    export_encoder(representation.model, out)
    difference = check_export(representation, out)
    click.echo(
        f"exported {model_dir} -> {out} (signatures serving_default(waveform), with_lengths(waveform, lengths); "
        f"outputs embedding [batch, {representation.pooled_dim(DEFAULT_POOLING)}] ({DEFAULT_POOLING} over "
        f"patches), embedding_mean [batch, {representation.dim}], frames, patch_mask); "
        f"reloaded: largest difference from the in-process encoder {difference:.1e}"
    )
