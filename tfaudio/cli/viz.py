"""`tfaudio visualize` and `tfaudio projector`: look at representations."""

from __future__ import annotations

from pathlib import Path

import click

from tfaudio.cli.common import (COUNT, POSITIVE, SECONDS, SEED, check_precision_runs, check_store, count, friendly_errors,
                                precision_option, renamed_option)
from tfaudio.frontend.pooling import POOLING
from tfaudio.models.base import ModelUnavailable
from tfaudio.models.registry import model_kinds, names
from tfaudio.outputs import check_writable
from tfaudio.viz.projection import METHODS, SCALINGS


def _model_help() -> str:
    """--model's help from the registry: every model's name, then every other kind of --model
    with what it is. Not "autoencoder": it is fitted on a split's training clips, and these
    commands fit nothing (a trained one is autoencoder:PATH)."""
    kinds = [f"{spelling}: {text}" for spelling, text in model_kinds(learned=False) if spelling not in names()]
    return f"{', '.join(names())} (see tfaudio models); {'; '.join(kinds)}. Repeat for several."


_MODEL_HELP = _model_help()
# These two commands have always said which kind of failure a missing model is.
_PREFIXES = {ModelUnavailable: "model unavailable: "}


def _common(command):
    """Options both commands share: which clips, which models, how they are embedded."""
    options = [
        click.argument("data", type=click.Path(path_type=Path)),
        click.option("--model", "models", multiple=True, required=True, help=_MODEL_HELP),
        click.option("--pooling", type=click.Choice(POOLING), help="Clip pooling (default: per model)."),
        click.option("--batch-size", type=COUNT, default=32, show_default=True, help="Clips per batch."),
        click.option("--max-duration", type=SECONDS, help="Embed at most this many seconds of each clip."),
        click.option("--group-column", help="Manifest column that groups clips (default: 'group' when present)."),
        click.option("--store", type=click.Path(file_okay=False, path_type=Path),
                     help="Embedding cache (default: $TFAUDIO_HOME/embeddings)."),
        click.option("--thumbnail-seconds", type=SECONDS, default=10.0, show_default=True,
                     help="Seconds of each clip drawn as its log-mel thumbnail (and embedded as audio)."),
        precision_option(),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.command()
@_common
@click.option("--method", type=click.Choice(METHODS), default="pca", show_default=True,
              help="Projection to 2-D (umap needs: pip install 'tfaudio[umap]').")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The page to write (.html).")
@click.option("--perplexity", type=POSITIVE, default=30.0, show_default=True, help="t-SNE perplexity (clamped to (clips - 1) / 3).")
@click.option("--iterations", type=count(250), default=1000, show_default=True, help="t-SNE iterations.")
@click.option("--neighbors", type=count(2), default=15, show_default=True, help="UMAP n_neighbors.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of t-SNE / UMAP and of generated folds.")
@click.option("--scaling", type=click.Choice(SCALINGS), default="standard", show_default=True,
              help="z-score each dimension before projecting and measuring, or use vectors as they are.")
@click.option("--knn", type=COUNT, default=5, show_default=True, help="k of the k-NN accuracy figures.")
@click.option("--link-audio", is_flag=True, help="Link the audio files relative to the page instead of embedding them.")
@click.option("--audio-rate", type=click.IntRange(8000, 48000), default=16000, show_default=True, help="Sample rate of embedded audio (8000: about a third smaller).")
@click.option("--title", help="Page title.")
@friendly_errors(prefixes=_PREFIXES)
def visualize(data, models, pooling, batch_size, max_duration, group_column, store, thumbnail_seconds, precision,
              method, out, perplexity, iterations, neighbors, seed, scaling, knn, link_audio, audio_rate, title):
    """Write an interactive page of 2-D projections (PCA, t-SNE or UMAP), one panel per model:
    points coloured and shaped by label, hover for file, label and fold, click to hear a clip
    and see its log-mel thumbnail; each panel gives the silhouette and k-NN accuracy under
    cross-validation in the original space and in 2-D."""
    from tfaudio.viz import MediaConfig, ProjectionConfig, SeparabilityConfig
    from tfaudio.viz import visualize as run

    if out.suffix.lower() not in (".html", ".htm"):
        raise click.BadParameter(f"'{out}' must end in .html", param_hint="--out")
    check_precision_runs(precision)
    check_writable(out, folder=False)  # before any clip is embedded
    check_store(store)
    projection = ProjectionConfig(method=method, perplexity=perplexity, iterations=iterations, neighbors=neighbors,
                                  seed=seed, scaling=scaling)
    result = run(
        data, models, out, projection=projection,
        separability=SeparabilityConfig(neighbors=knn, seed=seed),
        media=MediaConfig(max_seconds=thumbnail_seconds, audio_rate=audio_rate, link_audio=link_audio),
        pooling=pooling, store=store, batch_size=batch_size, max_duration=max_duration,
        group_column=group_column, title=title, precision=precision,
    )
    for problem in result.skipped:
        click.echo(f"  skipped {problem.shown}: {problem.reason}", err=True)
    click.echo(result.summary())
    click.echo(f"wrote {out} ({result.clips} clips, {result.classes} classes, {result.bytes / 1e6:.1f} MB)")


_FOLDER = click.Path(file_okay=False, path_type=Path)


@click.command()
@_common
# Not required=True at click's level: the old spelling --logdir alone must get through to renamed_option.
@click.option("--out", type=_FOLDER, help="Folder for the projector files (e.g. runs/esc10), TensorBoard's logdir.  [required]")
@renamed_option("--logdir", "--out", "out", type=_FOLDER, required=True)
@friendly_errors(prefixes=_PREFIXES)
def projector(data, models, pooling, batch_size, max_duration, group_column, store, thumbnail_seconds, precision, out):
    """Export embeddings for TensorBoard's embedding projector: one tensor per model,
    metadata.tsv (label, file, fold), a sprite of log-mel thumbnails and the projector
    config. Prints the tensorboard command that opens it."""
    from tfaudio.viz import MediaConfig, export_projector

    check_precision_runs(precision)
    check_writable(out)  # before any clip is embedded
    check_store(store)
    result = export_projector(
        data, models, out, media=MediaConfig(max_seconds=thumbnail_seconds), pooling=pooling, store=store,
        batch_size=batch_size, max_duration=max_duration, group_column=group_column, precision=precision,
    )
    for problem in result.skipped:
        click.echo(f"  skipped {problem.shown}: {problem.reason}", err=True)
    tensors = ", ".join(f"{name} {rows}x{dim}" for name, (rows, dim) in result.tensors.items())
    click.echo(f"wrote {out}: {tensors}; metadata.tsv; sprite.png ({result.sprite_cell} px thumbnails)")
    click.echo(f"open it with:\n  {result.command}\nthen the PROJECTOR tab (http://localhost:6006/#projector)")
