"""`tfaudio info`, `tfaudio features` and `tfaudio datasets`: look at a dataset or this machine,
compute the hand-crafted baseline, make or fetch datasets."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tfaudio.cli.common import COUNT, SECONDS, SEED, friendly_errors, progress
from tfaudio.outputs import check_writable
from tfaudio.quiet import import_tensorflow_quietly

#: Environment settings for the thread pools of the numeric libraries: OpenMP, OpenBLAS and MKL
#: (numpy, scipy, scikit-learn) and TensorFlow's own. tfaudio's scikit-learn fits run with one
#: BLAS thread whatever they say (tfaudio.comparison.classifiers); everything else follows them.
THREAD_SETTINGS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                   "TF_NUM_INTEROP_THREADS")


@click.command()
@click.argument("data", required=False, type=click.Path(path_type=Path))
@click.option("--group-column", help="Manifest column that groups clips (default: 'group' when present).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--system", is_flag=True, help="Describe this machine instead (no DATA): CPU and its bfloat16 units, GPUs, "
                                             "thread settings, versions, TFAUDIO_HOME, the --precision advice.")
@friendly_errors
def info(data: Path | None, group_column: str | None, as_json: bool, system: bool):
    """Summarize a dataset: clips per class, durations, sample rates, channels, folds and
    the files that cannot be read. DATA may be unlabelled (any folder of recordings, a list of
    files, - for a list on standard input), as for embed. With --system, this machine instead (what to quote in a
    bug report or a benchmark), found without importing TensorFlow."""
    if system:
        if data is not None:
            raise click.UsageError("--system describes this machine, not DATA: run it without DATA")
        _system_info(as_json)
        return
    if data is None:
        raise click.UsageError("Missing argument 'DATA' (a dataset), or --system to describe this machine")
    from tfaudio.data.audio import printable_path
    from tfaudio.data.dataset import DatasetError, load_dataset, summarize

    dataset = load_dataset(data, group_column=group_column, labelled=False)
    with progress(len(dataset), "reading headers") as bar:
        summary = summarize(dataset, progress=bar.update)
    if len(dataset) == 1 and summary.unreadable:
        # One file asked about: its verdict is the answer, not a summary of zero clips.
        problem = summary.unreadable[0]
        raise DatasetError(f"{problem.shown}: {problem.reason}")
    facts = summary.to_dict()
    if as_json:
        click.echo(json.dumps(facts, indent=2))
        return
    d = facts["duration_seconds"]
    layout = {"folders": "class folders", "files": "recordings, unlabelled"}.get(dataset.source, dataset.source)
    click.echo(f"dataset    {printable_path(dataset.root)}  ({layout})")
    labelled = f"in {len(facts['classes'])} classes" if dataset.classes else "(unlabelled)"
    click.echo(f"clips      {facts['clips']} readable {labelled}")
    click.echo(
        f"duration   total {d['total'] / 60:.1f} min; per clip min {d['min']:.2f} s, "
        f"median {d['median']:.2f} s, max {d['max']:.2f} s"
    )
    rates = ", ".join(f"{rate} Hz ({n})" for rate, n in sorted(facts["sample_rates"].items()))
    channels = ", ".join(f"{ch} ({n})" for ch, n in sorted(facts["channels"].items()))
    click.echo(f"rates      {rates}")
    click.echo(f"channels   {channels}")
    folds = facts["folds"]
    if folds or dataset.classes:  # splits are for labelled clips
        click.echo(f"folds      {', '.join(map(str, folds)) if folds else 'none (stratified k-fold will be used)'}")
    if facts["groups"] is not None:
        click.echo(f"groups     {facts['groups']}")
    table = summary.per_class()
    if len(table):
        width = max(len(name) for name in table.index)
        click.echo(f"\n{'class':<{width}}  clips  seconds")
        for name, row in table.iterrows():
            click.echo(f"{name:<{width}}  {int(row['clips']):>5}  {row['seconds']:>7.1f}")
    for title, problems in (("unreadable file(s)", summary.unreadable), ("ignored file(s)", dataset.ignored),
                            ("manifest warning(s)", dataset.warnings), ("duplicate(s)", summary.duplicates),
                            ("clip(s) shorter than one analysis window", summary.short)):
        if problems:
            click.echo(f"\n{len(problems)} {title}:")
            for problem in problems:
                click.echo(f"  {problem.shown}: {problem.reason}")


def _version(*distributions: str) -> str | None:
    """The installed version of the first of `distributions` present (read, not imported), else None."""
    from importlib import metadata

    for name in distributions:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def _system_info(as_json: bool) -> None:
    """Print `info --system`. TensorFlow is imported only where an NVIDIA device node exists
    (only TensorFlow can name the GPUs; `tfaudio.runtime.detect_hardware`)."""
    import os
    import platform

    from tfaudio import __version__
    from tfaudio.assets import offline_switch, tfaudio_home
    from tfaudio.runtime import detect_hardware, precision_advice

    hardware = detect_hardware()
    environment = {name: os.environ.get(name) for name in (*THREAD_SETTINGS, "TF_ENABLE_ONEDNN_OPTS", "TFAUDIO_MODELS")}
    onednn = environment["TF_ENABLE_ONEDNN_OPTS"]
    facts = {
        "tfaudio": __version__,
        "python": platform.python_version(),
        "tensorflow": _version("tensorflow", "tensorflow-cpu"),
        "keras": _version("keras"),
        "cpu": hardware.cpu or None,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "machine_cores": os.cpu_count(),
        "amx": hardware.amx,
        "avx512_bf16": hardware.avx512_bf16,
        "gpus": list(hardware.gpus),
        # Unset: TensorFlow's default, on for x86 (None where it depends on the build). "0" also
        # turns off --precision bfloat16, whose graph rewrite is oneDNN's.
        "onednn": (onednn.strip().lower() not in ("0", "false") if onednn is not None
                   else True if platform.machine().lower() in ("x86_64", "amd64") else None),
        "environment": environment,
        "home": str(tfaudio_home()),
        "offline": offline_switch(),
        "advice": precision_advice(hardware),
    }
    if as_json:
        click.echo(json.dumps(facts, indent=2))
        return
    versions = ", ".join(f"{name} {facts[key] or 'not installed'}" for name, key in
                         (("Python", "python"), ("TensorFlow", "tensorflow"), ("Keras", "keras")))
    click.echo(f"tfaudio    {__version__}; {versions}")
    click.echo(f"cpu        {facts['cpu'] or 'unknown'}; {facts['cores']} of {facts['machine_cores']} cores available")
    click.echo(f"bfloat16   AMX {'yes' if hardware.amx else 'no'}, AVX512-BF16 {'yes' if hardware.avx512_bf16 else 'no'}")
    click.echo(f"gpus       {', '.join(hardware.gpus) or 'none'}")
    threads = [name for name in THREAD_SETTINGS if environment[name] is not None]
    unset = [name for name in THREAD_SETTINGS if environment[name] is None]
    click.echo("threads    " + "; ".join(
        ([", ".join(f"{name}={environment[name]}" for name in threads)] if threads else [])
        + ([f"not set: {', '.join(unset)}"] if unset else [])
    ) + " (scikit-learn fits use one BLAS thread whatever these say)")
    state = {True: "on", False: "off: --precision bfloat16 changes nothing (its rewrite is oneDNN's)",
             None: "TensorFlow's default for this platform"}[facts["onednn"]]
    click.echo(f"oneDNN     {state}" + (f" (TF_ENABLE_ONEDNN_OPTS={onednn})" if onednn is not None else ""))
    models = environment["TFAUDIO_MODELS"]
    click.echo(f"home       {facts['home']} (weights, datasets, embedding store)"
               + (f"; TFAUDIO_MODELS={models}" if models else "")
               + (f"; offline ({facts['offline']})" if facts["offline"] else ""))
    click.echo(f"advice     {facts['advice']}")


@click.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
    help="Output table: .parquet or .csv (one row per clip).",
)
@click.option("--batch-size", type=COUNT, default=32, show_default=True, help="Clips per TensorFlow batch.")
@click.option("--max-duration", type=SECONDS, help="Use at most this many seconds of each clip.")
@click.option("--group-column", help="Manifest column that groups clips (default: 'group' when present).")
@click.option("--strict", is_flag=True, help="Stop at the first unreadable file instead of skipping it.")
@friendly_errors
def features(data: Path, out: Path, batch_size: int, max_duration: float | None, group_column: str | None, strict: bool):
    """Compute the hand-crafted baseline (MFCC + deltas and spectral descriptors, mean and
    standard deviation over time) for every clip, in batches through tf.signal. DATA may be
    unlabelled (any folder of recordings, a list of files, - for a list on standard input)."""
    if out.suffix.lower() not in (".parquet", ".csv"):
        raise click.BadParameter(f"'{out}' must end in .parquet or .csv", param_hint="--out")
    check_writable(out, folder=False)
    import_tensorflow_quietly()
    from tfaudio.data.dataset import load_dataset
    from tfaudio.models.handcrafted.extract import ExtractConfig, extract
    from tfaudio.models.handcrafted.model import HandcraftedParams

    dataset = load_dataset(data, group_column=group_column, labelled=False)
    for problem in dataset.ignored:
        click.echo(f"ignored {problem.shown}: {problem.reason}", err=True)
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
@click.option("--clips-per-class", type=COUNT, default=20, show_default=True)
@click.option("--duration", type=SECONDS, default=1.0, show_default=True, help="Seconds per clip.")
@click.option("--seed", type=SEED, default=0, show_default=True)
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
    path = fetch_dataset(name, out=out, source=source, note=lambda line: click.echo(line, err=True))
    click.echo(str(path))
