"""The `tfaudio` command line."""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path

import click

from tfaudio import __version__
from tfaudio.audio import AudioError
from tfaudio.data import DatasetError


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow and initialise its devices with C-level stderr silenced.

    TF 2.21 prints oneDNN, CUDA-stub and cuInit notices from C++ before its logging is set
    up, so TF_CPP_MIN_LOG_LEVEL cannot hide them. Python exceptions still surface, and
    TFAUDIO_VERBOSE=1 shows everything.
    """
    if os.environ.get("TFAUDIO_VERBOSE") or "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow as tf

            tf.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _friendly_errors(command):
    """Turn the errors a user can cause into one-line messages instead of stack traces."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (AudioError, DatasetError, FileNotFoundError) as err:
            raise click.ClickException(str(err)) from None

    return wrapper


def _progress(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="clip", file=sys.stderr, disable=total < 2, dynamic_ncols=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tfaudio")
def main():
    """Which audio representation works for your labeled sounds? tfaudio loads a folder of
    audio (one sub-folder per class, or a CSV manifest filename,label[,fold][,group]) and
    computes hand-crafted features in TensorFlow.

    DATA is a class-folder tree, a CSV manifest, or a folder holding meta.csv / manifest.csv.
    """


@main.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--group-column", help="Manifest column that groups clips (default: 'group' when present).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@_friendly_errors
def info(data: Path, group_column: str | None, as_json: bool):
    """Summarize a dataset: clips per class, durations, sample rates, channels, folds and
    the files that cannot be read."""
    from tfaudio.data import load_dataset, summarize

    dataset = load_dataset(data, group_column=group_column)
    with _progress(len(dataset), "reading headers") as bar:
        summary = summarize(dataset, progress=bar.update)
    facts = summary.to_dict()
    if as_json:
        click.echo(json.dumps(facts, indent=2))
        return
    d = facts["duration_seconds"]
    click.echo(f"dataset    {dataset.root}  ({'class folders' if dataset.source == 'folders' else dataset.source})")
    click.echo(f"clips      {facts['clips']} readable in {len(facts['classes'])} classes")
    click.echo(
        f"duration   total {d['total'] / 60:.1f} min; per clip min {d['min']:.2f} s, "
        f"median {d['median']:.2f} s, max {d['max']:.2f} s"
    )
    rates = ", ".join(f"{rate} Hz ({n})" for rate, n in sorted(facts["sample_rates"].items()))
    channels = ", ".join(f"{ch} ({n})" for ch, n in sorted(facts["channels"].items()))
    click.echo(f"rates      {rates}")
    click.echo(f"channels   {channels}")
    folds = facts["folds"]
    click.echo(f"folds      {', '.join(map(str, folds)) if folds else 'none (stratified k-fold will be used)'}")
    if facts["groups"] is not None:
        click.echo(f"groups     {facts['groups']}")
    click.echo("")
    table = summary.per_class()
    width = max(len(name) for name in table.index)
    click.echo(f"{'class':<{width}}  clips  seconds")
    for name, row in table.iterrows():
        click.echo(f"{name:<{width}}  {int(row['clips']):>5}  {row['seconds']:>7.1f}")
    for title, problems in (("unreadable", summary.unreadable), ("ignored", dataset.ignored)):
        if problems:
            click.echo(f"\n{len(problems)} {title} file(s):")
            for problem in problems:
                click.echo(f"  {problem.path}: {problem.reason}")


@main.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
    help="Output table: .parquet or .csv (one row per clip).",
)
@click.option("--batch-size", default=32, show_default=True, help="Clips per TensorFlow batch.")
@click.option("--max-duration", type=float, help="Use at most this many seconds of each clip.")
@click.option("--group-column", help="Manifest column that groups clips (default: 'group' when present).")
@click.option("--strict", is_flag=True, help="Stop at the first unreadable file instead of skipping it.")
@_friendly_errors
def features(data: Path, out: Path, batch_size: int, max_duration: float | None, group_column: str | None, strict: bool):
    """Compute the hand-crafted baseline (MFCC + deltas and spectral descriptors, mean and
    standard deviation over time) for every clip, in batches through tf.signal."""
    _import_tensorflow_quietly()
    from tfaudio.data import load_dataset
    from tfaudio.handcrafted import ExtractConfig, HandcraftedParams, extract

    if out.suffix.lower() not in (".parquet", ".csv"):
        raise click.BadParameter(f"'{out}' must end in .parquet or .csv", param_hint="--out")
    dataset = load_dataset(data, group_column=group_column)
    config = ExtractConfig(batch_size=batch_size, max_duration=max_duration, strict=strict)
    with _progress(len(dataset), "features") as bar:
        table = extract(dataset, HandcraftedParams(), config, progress=bar.update)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".parquet":
        table.frame.to_parquet(out, index=False)
    else:
        table.frame.to_csv(out, index=False)
    for problem in table.skipped:
        click.echo(f"skipped {problem.path}: {problem.reason}", err=True)
    click.echo(
        f"wrote {len(table.frame)} clips x {len(table.feature_columns)} features to {out}"
        + (f" ({len(table.skipped)} skipped)" if table.skipped else "")
    )


@main.group()
def datasets():
    """Make or fetch datasets."""


@datasets.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--clips-per-class", default=20, show_default=True)
@click.option("--duration", default=1.0, show_default=True, help="Seconds per clip.")
@click.option("--seed", default=0, show_default=True)
def synth(out: Path, clips_per_class: int, duration: float, seed: int):
    """Write a small synthetic dataset (tone, chirp, noise, clicks) with a 5-fold manifest."""
    from tfaudio.synth import CLASSES, SynthConfig, make_dataset

    make_dataset(out, SynthConfig(clips_per_class=clips_per_class, duration=duration, seed=seed))
    click.echo(f"wrote {clips_per_class * len(CLASSES)} clips in {len(CLASSES)} classes to {out}")


if __name__ == "__main__":
    main()
