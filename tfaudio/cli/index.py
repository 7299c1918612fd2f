"""`tfaudio index build` and `tfaudio index info`: a search index over an archive's windows."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tfaudio.cli.common import SECONDS, check_precision_runs, friendly_errors, precision_option
from tfaudio.pipeline.run import LOCAL, RUNNERS

#: The graph quantizations (tfaudio.search.ann.QUANTIZATIONS, restated so --help costs no import).
_QUANTIZATIONS = ("f32", "f16", "bf16", "i8")


@click.group()
def index():
    """A search index over the windows of an archive: build it, look at it (then tfaudio search)."""


@index.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("data")
@click.option("--model", default="yamnet", show_default=True, help="The representation to index (tfaudio models).")
@click.option("--out", required=True, help="The index folder (created; an index there is brought up to date).")
@click.option("--hop", type=SECONDS,
              help="Seconds between indexed windows, a multiple of the model's frame hop (default: every frame; "
                   "YAMNet 0.48 s). A window is the mean of the frames in its hop.")
@click.option("--quantization", type=click.Choice(_QUANTIZATIONS), default="f16", show_default=True,
              help="How the ANN graph stores vectors (f16: half the memory of f32; i8: a quarter, lower recall). "
                   "Scores always come from the float32 vectors.")
@click.option("--store", help="Embedding cache (default: $TFAUDIO_HOME/embeddings).")
@click.option("--strict", is_flag=True, help="Stop at the first unreadable file instead of skipping it (local runner).")
@click.option("--runner", type=click.Choice(RUNNERS), default=LOCAL, show_default=True,
              help="Where the embedding runs, as for tfaudio embed: local, or an Apache Beam runner (direct, "
                   "dataflow, flink, spark; options tfaudio does not know go to Beam).")
@click.option("--num-workers", type=click.IntRange(min=1), help="Beam: worker processes (as for tfaudio embed).")
@precision_option()
@click.pass_context
@friendly_errors
def build(ctx, data, model, out, hop, quantization, store, strict, runner, num_workers, precision):
    """Index every file of DATA (class folders, a flat folder or a manifest): frame embeddings
    through the embedding cache, one vector per window, ANN graphs for large indexes. Run it
    again on a grown or changed archive: new files are added, removed ones dropped, nothing
    computed twice."""
    from tfaudio.models.registry import UnknownModel
    from tfaudio.outputs import check_writable
    from tfaudio.pipeline.run import RunSettings
    from tfaudio.search.build import IndexConfig, build_index

    if runner == LOCAL and ctx.args:
        raise click.UsageError(f"unknown option(s) {' '.join(ctx.args)} (options are passed on to Beam only with "
                               "--runner)")
    if hop is not None and hop <= 0:
        raise click.BadParameter("must be more than 0 seconds", param_hint="--hop")
    if runner != LOCAL and precision != "float32":
        raise click.UsageError("--precision bfloat16 runs on the local runner only for now")
    check_precision_runs(precision)
    check_writable(Path(out))
    config = IndexConfig(model=model, precision=precision, hop=hop, quantization=quantization, strict=strict)
    settings = RunSettings(runner=runner, num_workers=num_workers, pipeline_args=tuple(ctx.args), store=store)
    try:
        summary = build_index(data, out, config, settings, progress=_progress)
    except UnknownModel as err:
        raise click.BadParameter(str(err), param_hint="--model") from None
    _echo_build(summary)


def _progress(total: int, desc: str):
    from tqdm import tqdm

    unit = "vector" if desc == "index" else "file"
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=total < 2, dynamic_ncols=True,
                unit_scale=unit == "vector")


def _echo_build(summary) -> None:
    from tfaudio.data.audio import printable_path

    run = summary.embedding
    speed = f", {run.audio_seconds / run.seconds:.0f}x real time" if run and run.audio_seconds and run.seconds else ""
    if run is not None:
        click.echo(f"embedded: {run.clips} files ({run.cached} cached, {run.computed} computed, {len(run.skipped)} "
                   f"skipped{speed})")
    if summary.rebuilt:
        click.echo(f"rebuilt from scratch: {summary.rebuilt}")
    click.echo(f"files: {summary.added} added, {summary.changed} changed, {summary.removed} removed, "
               f"{summary.unchanged} unchanged")
    state = "up to date" if summary.up_to_date else "built"
    search = "approximate (ANN) and exact" if summary.ann else "exact only (small index)"
    click.echo(f"{printable_path(summary.index)}: {state}: {summary.files} files, {summary.vectors} vectors, "
               f"{summary.shards_kept} shard(s) kept, {summary.shards_written} written; search {search}; "
               f"{summary.seconds:.1f} s ({summary.index_seconds:.1f} s indexing)")
    for problem in summary.skipped:
        click.echo(f"  skipped {problem.shown}: {problem.reason}", err=True)


@index.command()
@click.argument("path")
@click.option("--check/--no-check", default=True, show_default=True,
              help="Look for indexed files that are gone or changed since the build.")
@friendly_errors
def info(path, check):
    """What the index at PATH holds: model, precision, hop, dimension, quantization, files,
    vectors, sizes on disk, whether it has ANN graphs, files gone or changed since the build,
    and whether a build is running."""
    from tfaudio.search.index import SearchIndex, build_running, read_header
    from tfaudio.search.info import describe

    folder = Path(path)
    header = read_header(folder)
    opened = SearchIndex.open(folder)
    missing = opened.missing_files() if check else None
    for line in describe(folder, header, missing, build_running(folder)):
        click.echo(line)
