"""`tfaudio info`, `tfaudio features` and `tfaudio datasets`: look at a dataset, compute the
hand-crafted baseline, make or fetch datasets."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tfaudio.cli.common import friendly_errors, progress
from tfaudio.outputs import check_writable
from tfaudio.quiet import import_tensorflow_quietly


@click.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--group-column", help="Manifest column that groups clips (default: 'group' when present).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@friendly_errors
def info(data: Path, group_column: str | None, as_json: bool):
    """Summarize a dataset: clips per class, durations, sample rates, channels, folds and
    the files that cannot be read."""
    from tfaudio.data.audio import printable_path
    from tfaudio.data.dataset import load_dataset, summarize

    dataset = load_dataset(data, group_column=group_column)
    with progress(len(dataset), "reading headers") as bar:
        summary = summarize(dataset, progress=bar.update)
    facts = summary.to_dict()
    if as_json:
        click.echo(json.dumps(facts, indent=2))
        return
    d = facts["duration_seconds"]
    click.echo(f"dataset    {printable_path(dataset.root)}  ({'class folders' if dataset.source == 'folders' else dataset.source})")
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
    for title, problems in (("unreadable file(s)", summary.unreadable), ("ignored file(s)", dataset.ignored),
                            ("manifest warning(s)", dataset.warnings), ("duplicate(s)", summary.duplicates),
                            ("clip(s) shorter than one analysis window", summary.short)):
        if problems:
            click.echo(f"\n{len(problems)} {title}:")
            for problem in problems:
                click.echo(f"  {problem.shown}: {problem.reason}")


@click.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
    help="Output table: .parquet or .csv (one row per clip).",
)
@click.option("--batch-size", default=32, show_default=True, help="Clips per TensorFlow batch.")
@click.option("--max-duration", type=float, help="Use at most this many seconds of each clip.")
@click.option("--group-column", help="Manifest column that groups clips (default: 'group' when present).")
@click.option("--strict", is_flag=True, help="Stop at the first unreadable file instead of skipping it.")
@friendly_errors
def features(data: Path, out: Path, batch_size: int, max_duration: float | None, group_column: str | None, strict: bool):
    """Compute the hand-crafted baseline (MFCC + deltas and spectral descriptors, mean and
    standard deviation over time) for every clip, in batches through tf.signal."""
    if out.suffix.lower() not in (".parquet", ".csv"):
        raise click.BadParameter(f"'{out}' must end in .parquet or .csv", param_hint="--out")
    check_writable(out, folder=False)
    import_tensorflow_quietly()
    from tfaudio.data.dataset import load_dataset
    from tfaudio.models.handcrafted.extract import ExtractConfig, extract
    from tfaudio.models.handcrafted.model import HandcraftedParams

    dataset = load_dataset(data, group_column=group_column)
    config = ExtractConfig(batch_size=batch_size, max_duration=max_duration, strict=strict)
    with progress(len(dataset), "features") as bar:
        table = extract(dataset, HandcraftedParams(), config, progress=bar.update)
    table.write(out)
    for problem in table.skipped:
        click.echo(f"skipped {problem.shown}: {problem.reason}", err=True)
    click.echo(
        f"wrote {len(table.frame)} clips x {len(table.feature_columns)} features to {out}"
        + (f" ({len(table.skipped)} skipped)" if table.skipped else "")
    )


@click.group()
def datasets():
    """Make or fetch datasets."""


@datasets.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--clips-per-class", default=20, show_default=True)
@click.option("--duration", default=1.0, show_default=True, help="Seconds per clip.")
@click.option("--seed", default=0, show_default=True)
@friendly_errors
def synth(out: Path, clips_per_class: int, duration: float, seed: int):
    """Write a small synthetic dataset (tone, chirp, noise, clicks) with a 5-fold manifest."""
    check_writable(out)
    from tfaudio.data.synth import CLASSES, SynthConfig, make_dataset

    make_dataset(out, SynthConfig(clips_per_class=clips_per_class, duration=duration, seed=seed))
    click.echo(f"wrote {clips_per_class * len(CLASSES)} clips in {len(CLASSES)} classes to {out}")


@datasets.command()
@click.argument("name", type=click.Choice(["esc10", "esc50", "speech-commands"]))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Folder (default: $TFAUDIO_HOME/datasets/NAME).")
@click.option("--url", help="Download from this mirror instead of the official URL.")
@click.option("--sha256", help="Expected digest of the mirror's archive (with --url).")
@friendly_errors
def fetch(name, out, url, sha256):
    """Download a public dataset (checksum verified) and write its manifest: ESC's official
    folds, or speaker-disjoint folds for Speech Commands; prints the folder to pass as DATA."""
    from tfaudio.data.fetch import SOURCES, with_url
    from tfaudio.data.fetch import fetch as fetch_dataset

    if sha256 and not url:
        raise click.BadParameter("--sha256 goes with --url (the built-in sources carry their own digests)",
                                 param_hint="--sha256")
    if out is not None:
        check_writable(out)
    source = with_url(SOURCES[name], url, sha256) if url else None
    path = fetch_dataset(name, out=out, source=source)
    click.echo(str(path))
