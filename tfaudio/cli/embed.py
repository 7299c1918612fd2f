"""`tfaudio models`, `tfaudio embed` and `tfaudio tag`: the representations, and running them on clips."""

from __future__ import annotations

import contextlib
from pathlib import Path

import click

from tfaudio.cli.common import (COUNT, SECONDS, ClipCounter, check_precision_runs, check_store,
                                echo_precision_warning, friendly_errors, full_disk_said, precision_option)
from tfaudio.data.windows import WINDOW_SECONDS
from tfaudio.errors import TfaudioError
from tfaudio.frontend.pooling import POOLING
from tfaudio.outputs import check_writable, writing_into
from tfaudio.pipeline.run import LOCAL, RUNNERS
from tfaudio.quiet import import_tensorflow_quietly
from tfaudio.store.formats import FORMATS


def _kinds(learned: bool) -> str:
    """The kinds of model `--model` takes, for the options' help."""
    from tfaudio.models.registry import model_kinds

    return ", ".join(spelling for spelling, _ in model_kinds(learned))


@click.command()
@friendly_errors
def models():
    """List the representations: dimension, sample rate, weights, and whether each can run
    on this machine right now without network access; then the other kinds of model --model takes."""
    from tfaudio.models.registry import describe, model_kinds

    rows = describe()
    width = max(len(r.info.name) for r in rows)
    click.echo(f"{'name':<{width}}  {'dim':>5}  {'rate':>6}  offline  weights")
    for row in rows:
        state = "yes" if row.available else "no"
        detail = row.detail if row.available else row.detail.splitlines()[0]
        click.echo(f"{row.info.name:<{width}}  {row.info.dim:>5}  {row.info.sample_rate:>6}  {state:<7}  {detail}")
        click.echo(f"{'':<{width}}  {row.info.description}")
    listed = {row.info.name for row in rows}
    others = [(spelling, text) for spelling, text in model_kinds() if spelling not in listed]
    click.echo("\nAlso:")
    spelled = max(len(spelling) for spelling, _ in others)
    for spelling, text in others:
        click.echo(f"  {spelling:<{spelled}}  {text}")
    click.echo("\nWeights are looked for in TFAUDIO_MODELS/<model>/<file>, then TFAUDIO_HOME (~/.cache/tfaudio, or "
               "$XDG_CACHE_HOME/tfaudio), then downloaded unless TFAUDIO_OFFLINE=1.")
    from tfaudio.runtime import precision_advice

    click.echo(precision_advice())


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("data")
@click.option("--model", "model_names", multiple=True, required=True,
              help=f"{_kinds(learned=False)}; repeat for several (tfaudio models lists them).")
@click.option("--out", required=True, help="Folder for the output: <model>.parquet, or <model>/ shards with a _manifest.json.")
@click.option("--pooling", type=click.Choice(POOLING), help="Clip pooling (default: per model).")
@click.option("--frames", is_flag=True, help="Write frame-level embeddings (one row per frame, with its start time).")
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), default="parquet", show_default=True,
              help="; ".join(f"{f.name}: {f.help}" for f in FORMATS.values()) + ".")
@click.option("--batch-size", type=COUNT, default=32, show_default=True, help="Most clips or windows per batch.")
@click.option("--batch-seconds", type=SECONDS, default=240.0, show_default=True,
              help="Most audio per batch, padding included.")
@click.option("--window-seconds", type=SECONDS, default=WINDOW_SECONDS, show_default=True,
              help="Files longer than this are embedded in windows of about this length (flat memory).")
@click.option("--max-duration", type=SECONDS, help="Use at most this many seconds of each clip.")
@click.option("--group-column", help="Manifest column that groups clips (default: 'group' when present).")
@click.option("--store", help="Embedding cache (default: $TFAUDIO_HOME/embeddings).")
@click.option("--strict", is_flag=True, help="Stop at the first unreadable file instead of skipping it (local runner).")
@click.option("--runner", type=click.Choice(RUNNERS), default=LOCAL, show_default=True,
              help="local: this process. direct: Apache Beam's FnApiRunner in --num-workers processes. dataflow, "
                   "flink, spark: Beam on a cluster; options tfaudio does not know go to Beam. Beam runners need "
                   "pip install 'tfaudio[beam]'.")
@click.option("--num-workers", type=COUNT,
              help="Beam: worker processes (direct; default CPU count), --num_workers (dataflow), --parallelism (flink).")
@click.option("--weights", "weights_path", help="Beam: the weights file every worker loads (a path or gs://...).")
@precision_option()
@click.pass_context
@friendly_errors
def embed(ctx, data, model_names, out, pooling, frames, fmt, batch_size, batch_seconds, window_seconds, max_duration,
          group_column, store, strict, runner, num_workers, weights_path, precision):
    """Embed every clip of DATA with each model, through the embedding cache: clips already
    embedded with the same model, weights and settings are read back instead of recomputed.
    Long files are embedded in windows; with --runner the same extraction runs on Apache Beam.

    DATA: a folder of recordings (any depth; labelled by folder only when every file sits in a
    sub-folder one level down), a CSV manifest (filename[,label][,fold][,group]), a list of
    files (.txt or .lst, one path a line relative to the list; - reads it from standard input)
    or one audio file."""
    from tfaudio.models.registry import UnknownModel
    from tfaudio.pipeline.local import EmbedConfig
    from tfaudio.pipeline.run import RunSettings, RunSettingsError, run_embedding
    from tfaudio.store import FRAMES, default_root

    if runner == LOCAL and ctx.args:
        raise click.UsageError(f"unknown option(s) {' '.join(ctx.args)} (options are passed on to Beam only with "
                               "--runner)")
    config = EmbedConfig(pooling=FRAMES if frames else pooling, batch_size=batch_size, batch_seconds=batch_seconds,
                         window_seconds=window_seconds, max_duration=max_duration, strict=strict)
    settings = RunSettings(file_format=fmt, runner=runner, num_workers=num_workers, pipeline_args=tuple(ctx.args),
                           weights_path=weights_path, store=store, group_column=group_column, precision=precision)
    try:
        settings.check(config)
    except RunSettingsError as err:
        raise click.UsageError(str(err)) from None
    check_precision_runs(precision)
    local_out = "://" not in out
    if local_out:
        check_writable(Path(out))  # before any clip is read: a read-only --out fails now, not after the work
    check_store(store)  # likewise the store, where the first vectors go within seconds
    counter = ClipCounter()
    places = {name: place for name, place in (("the embedding store", store or default_root()), ("--out", out))
              if "://" not in str(place)}
    try:
        # One run at a time into --out: a second one is refused, naming the first (writing_into).
        with writing_into(out) if local_out else contextlib.nullcontext(), full_disk_said(places, _kept(counter)):
            for number, summary in enumerate(run_embedding(data, model_names, out, config, settings, progress=counter)):
                _echo_summary(summary)
                for problem in summary.ignored if number == 0 else ():  # DATA's, the same for every model
                    click.echo(f"  ignored {problem.shown}: {problem.reason}", err=True)
    except UnknownModel as err:
        raise click.BadParameter(str(err), param_hint="--model") from None


def _kept(counter: ClipCounter):
    """What a full disk leaves of an `embed` run, by which place filled up (full_disk_said)."""
    def kept(which: str) -> str:
        if which == "--out":
            return (f"{counter.done()} were embedded and are kept in the embedding store, so a rerun only writes "
                    "the output (written whole or not at all: no part of it was left)")
        return (f"{counter.done()} were embedded; the vectors flushed to the store before it filled are kept and "
                "a rerun computes only the rest")

    return kept


def _echo_summary(summary) -> None:
    """One line per model, then one per clip left out (on stderr)."""
    from tfaudio.data.audio import printable_path

    name, shown, skipped = summary.model, printable_path(summary.output), summary.skipped
    if summary.up_to_date:
        click.echo(f"{name}: {shown} is up to date ({summary.clips} clips, {len(skipped)} skipped)")
    elif summary.runner == LOCAL:
        speed = f", {summary.audio_seconds / summary.seconds:.0f}x real time" if summary.computed else ""
        click.echo(f"{name}: {summary.clips} clips -> {shown} ({summary.cached} cached, {summary.computed} computed, "
                   f"{len(skipped)} skipped; {summary.seconds:.1f} s{speed})")
    else:
        click.echo(
            f"{name}: {summary.clips} clips -> {shown} on Beam ({summary.runner}: {summary.cached} cached, "
            f"{summary.computed} computed, {len(skipped)} dead letters; {summary.audio_seconds:.0f} s of audio in "
            f"{summary.seconds:.1f} s; model loaded {summary.model_loads} time(s))"
        )
    what = "skipped" if summary.runner == LOCAL else "dead letter"
    for problem in skipped:
        click.echo(f"  {what} {problem.shown}: {problem.reason}", err=True)


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--top", type=COUNT, default=3, show_default=True, help="Classes shown per time step.")
@click.option("--weights", "weights_path", type=click.Path(dir_okay=False, path_type=Path), help="yamnet.h5 to use.")
@precision_option("bfloat16: faster on CPUs with AVX512-BF16 / AMX; scores agree to about 1e-2.")
@friendly_errors
def tag(files, top, weights_path, precision):
    """Tag audio files with YAMNet's 521 AudioSet classes: the top classes every 0.48 s and
    over the whole file (files of any length, read in windows). FILES may also be folders of
    recordings, lists of files (.txt or .lst; - reads one from standard input) or manifests. A
    file that cannot be read is reported and the others are tagged; the exit status is then 1."""
    echo_precision_warning(precision)
    clips, failed = _files_to_tag(files)
    listed = len(clips) + len(failed)
    import_tensorflow_quietly()
    from tfaudio import assets as weights
    from tfaudio.data.audio import AudioError
    from tfaudio.models.registry import get
    from tfaudio.models.yamnet.model import load_class_map

    model = get("yamnet", weights_path=weights_path).loaded()
    classes = load_class_map(weights.resolve(weights.YAMNET_CLASS_MAP))
    for path, shown in clips:
        try:
            _tag_file(path, shown, model, classes, top, precision)
        except AudioError as err:  # reported, and the next file tagged
            click.echo(f"  skipped {shown}: {err.problem}", err=True)
            failed.append(shown)
    if failed:
        raise TfaudioError(f"{len(failed)} of {listed} file(s) could not be tagged: {', '.join(failed[:3])}"
                           f"{', ...' if len(failed) > 3 else ''} (each is named above)")


def _files_to_tag(arguments) -> tuple[list[tuple[Path, str]], list[str]]:
    """([(path to open, name to show)], [names that failed]) for tag's FILES: a file as it is
    (never opened unless a regular file: a pipe would wait forever), anything else read as
    DATA (`load_dataset(..., labelled=False)`), its clips shown under the name given. What a
    folder, list or manifest leaves out is reported on stderr, as `embed` does."""
    from tfaudio.data.audio import printable_path
    from tfaudio.data.dataset import DatasetError, load_dataset
    from tfaudio.data.listing import STDIN, is_file_list, named_file_problem

    clips, failed = [], []
    for argument in arguments:
        text = str(argument)
        if text != STDIN and not argument.is_dir() and not is_file_list(argument) and argument.suffix.lower() != ".csv":
            problem = named_file_problem(argument)
            if problem is None:
                clips.append((argument, printable_path(argument)))
            else:
                click.echo(f"  skipped {printable_path(argument)}: {problem}", err=True)
                failed.append(printable_path(argument))
            continue
        try:
            dataset = load_dataset(text, labelled=False)
        except DatasetError as err:
            click.echo(f"  skipped {err}", err=True)
            failed.append(printable_path(argument))
            continue
        base = argument if argument.is_dir() else Path() if text == STDIN else argument.parent
        clips += [(clip.path, printable_path(base / dataset.relative(clip))) for clip in dataset.clips]
        for problem in dataset.ignored:
            click.echo(f"  ignored {problem.shown}: {problem.reason}", err=True)
    return clips, failed


def _tag_file(path: Path, shown: str, model, classes, top: int, precision: str) -> None:
    """Print one file's top classes per patch and overall (AudioError when it cannot be read)."""
    import numpy as np

    from tfaudio.models.yamnet.tagging import score_file

    scores = score_file(path, model, precision=precision)
    click.echo(f"{shown}  ({scores.seconds:.2f} s)")
    total, count, step = np.zeros(len(classes), np.float64), 0, 0
    for block in scores.blocks:  # one window at a time: an hour-long file needs one window's memory
        for row in block:
            best = np.argsort(row)[::-1][:top]
            labels = ", ".join(f"{classes[i]} {row[i]:.2f}" for i in best)
            click.echo(f"  {step * model.frame_hop_seconds:7.2f} s  {labels}")
            step += 1
        total += block.sum(axis=0, dtype=np.float64)
        count += len(block)
    overall = total / max(count, 1)
    best = np.argsort(overall)[::-1][:top]
    click.echo("  overall    " + ", ".join(f"{classes[i]} {overall[i]:.2f}" for i in best))
