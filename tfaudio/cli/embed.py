"""`tfaudio models`, `tfaudio embed` and `tfaudio tag`: the representations, and running them on clips."""

from __future__ import annotations

from pathlib import Path

import click

from tfaudio.cli.common import check_precision_runs, echo_precision_warning, friendly_errors, precision_option, progress
from tfaudio.outputs import check_writable
from tfaudio.quiet import import_tensorflow_quietly


def _safe_name(model: str) -> str:
    """A file name for a model name such as hf:facebook/wav2vec2-base."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in model)


@click.command()
@friendly_errors
def models():
    """List the representations: dimension, sample rate, weights, and whether each can run
    on this machine right now without network access."""
    from tfaudio.models.registry import describe

    rows = describe()
    width = max(len(r.info.name) for r in rows)
    click.echo(f"{'name':<{width}}  {'dim':>5}  {'rate':>6}  offline  weights")
    for row in rows:
        state = "yes" if row.available else "no"
        detail = row.detail if row.available else row.detail.splitlines()[0]
        click.echo(f"{row.info.name:<{width}}  {row.info.dim:>5}  {row.info.sample_rate:>6}  {state:<7}  {detail}")
        click.echo(f"{'':<{width}}  {row.info.description}")
    click.echo("\nWeights are looked for in TFAUDIO_MODELS/<model>/<file>, then TFAUDIO_HOME (~/.cache/tfaudio, or "
               "$XDG_CACHE_HOME/tfaudio), then downloaded unless TFAUDIO_OFFLINE=1.")
    from tfaudio.runtime import precision_advice

    click.echo(precision_advice())


#: Pooled vectors of up to this many clips go to one Parquet file (80 MB for 1024-d vectors);
#: more, or frame-level rows, stream into shards so memory never holds the whole output.
SINGLE_FILE_CLIPS = 20_000
RUNNERS = ("local", "direct", "dataflow", "flink", "spark")


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("data")
@click.option(
    "--model", "model_names", multiple=True, required=True,
    help="handcrafted, yamnet, vggish, wav2vec2, hub:<handle or folder>, hf:<id or folder>; repeat for several.",
)
@click.option("--out", required=True, help="Folder for the output: <model>.parquet, or <model>/ shards with a _manifest.json.")
@click.option("--pooling", type=click.Choice(["mean", "max", "mean+std"]), help="Clip pooling (default: per model).")
@click.option("--frames", is_flag=True, help="Write frame-level embeddings (one row per frame, with its start time).")
@click.option("--format", "fmt", type=click.Choice(["parquet", "shards", "tfrecord"]), default="parquet", show_default=True,
              help=f"parquet: one <model>.parquet of pooled vectors (shards beyond {SINGLE_FILE_CLIPS:,} clips, and "
                   "always for --frames); shards: <model>/part-NNNNN.parquet written as the run goes; tfrecord: "
                   "<model>/part-NNNNN.tfrecord of tf.train.Examples.")
@click.option("--batch-size", default=32, show_default=True, help="Most clips or windows per batch.")
@click.option("--batch-seconds", default=240.0, show_default=True, help="Most audio per batch, padding included.")
@click.option("--window-seconds", default=60.0, show_default=True,
              help="Files longer than this are embedded in windows of about this length (flat memory).")
@click.option("--max-duration", type=float, help="Use at most this many seconds of each clip.")
@click.option("--group-column", help="Manifest column that groups clips (default: 'group' when present).")
@click.option("--store", help="Embedding cache (default: $TFAUDIO_HOME/embeddings).")
@click.option("--strict", is_flag=True, help="Stop at the first unreadable file instead of skipping it (local runner).")
@click.option("--runner", type=click.Choice(RUNNERS), default="local", show_default=True,
              help="local: this process. direct: Apache Beam's FnApiRunner in --num-workers processes. dataflow, "
                   "flink, spark: Beam on a cluster; options tfaudio does not know go to Beam. Beam runners need "
                   "pip install 'tfaudio[beam]'.")
@click.option("--num-workers", type=click.IntRange(min=1),
              help="Beam: worker processes (direct; default CPU count), --num_workers (dataflow), --parallelism (flink).")
@click.option("--weights", "weights_path", help="Beam: the weights file every worker loads (a path or gs://...).")
@precision_option()
@click.pass_context
@friendly_errors
def embed(ctx, data, model_names, out, pooling, frames, fmt, batch_size, batch_seconds, window_seconds, max_duration,
          group_column, store, strict, runner, num_workers, weights_path, precision):
    """Embed every clip with each model, through the embedding cache: clips already embedded
    with the same model, weights and settings are read back instead of recomputed. Long files
    are embedded in windows; with --runner the same extraction runs on Apache Beam."""
    from tfaudio.pipeline.local import EmbedConfig
    from tfaudio.store import FRAMES

    if runner == "local" and ctx.args:
        raise click.UsageError(f"unknown option(s) {' '.join(ctx.args)} (options are passed on to Beam only with --runner)")
    if runner != "local" and precision != "float32":
        raise click.UsageError("--precision bfloat16 runs on the local runner only for now")
    if runner != "local" and strict:
        raise click.UsageError("--strict applies to the local runner; Beam runners list unreadable files as dead letters")
    check_precision_runs(precision)
    if "://" not in out:
        check_writable(Path(out))  # before any clip is read: a read-only --out fails now, not after the work
    config = EmbedConfig(pooling=FRAMES if frames else pooling, batch_size=batch_size, batch_seconds=batch_seconds,
                         window_seconds=window_seconds, max_duration=max_duration, strict=strict)
    if runner != "local":
        for name in model_names:
            _embed_on_beam(data, name, out, config, fmt, runner, num_workers, ctx.args, weights_path, store,
                           group_column)
        return
    _embed_here(Path(data), model_names, Path(out), config, fmt, group_column, store, precision)


def _embed_here(data: Path, model_names, out: Path, config, fmt: str, group_column, store, precision: str) -> None:
    from tfaudio.data.audio import printable_path
    from tfaudio.data.dataset import load_dataset
    from tfaudio.models.precision import with_precision
    from tfaudio.models.registry import ModelUnavailable, get
    from tfaudio.pipeline.local import current_output, embed_dataset, embed_to_folder, expected_output, plan_embedding
    from tfaudio.store import FRAMES, EmbeddingStore

    dataset = load_dataset(data, group_column=group_column)
    cache = EmbeddingStore(store)
    out.mkdir(parents=True, exist_ok=True)
    single = fmt == "parquet" and config.pooling != FRAMES and len(dataset) <= SINGLE_FILE_CLIPS
    for name in model_names:
        try:
            model = with_precision(get(name), precision)
        except ModelUnavailable as err:
            raise click.ClickException(f"{name} is unavailable: {err}") from None
        except ValueError as err:  # a name the registry does not know
            raise click.BadParameter(str(err), param_hint="--model") from None
        plan = plan_embedding(dataset, model, config)
        target = out / f"{_safe_name(name)}.parquet" if single else expected_output(out, model, plan)
        skipped = current_output(target, plan)
        shown = printable_path(target)
        if skipped is not None:  # like make: the output already holds exactly this result
            click.echo(f"{name}: {shown} is up to date ({len(dataset) - len(skipped)} clips, {len(skipped)} skipped)")
        else:
            with progress(len(dataset), name) as bar:
                if single:
                    table = embed_dataset(dataset, model, cache, config, progress=bar.update, plan=plan)
                    table.write_parquet(target)
                    stats = table.stats
                else:
                    _, stats = embed_to_folder(dataset, model, out, cache, config, progress=bar.update, plan=plan,
                                               file_format="tfrecord" if fmt == "tfrecord" else "parquet")
            skipped = stats.skipped
            speed = f", {stats.audio_seconds / stats.seconds:.0f}x real time" if stats.computed else ""
            click.echo(
                f"{name}: {len(dataset) - len(skipped)} clips -> {shown} ({stats.cached} cached, {stats.computed} "
                f"computed, {len(skipped)} skipped; {stats.seconds:.1f} s{speed})"
            )
        for problem in skipped:
            click.echo(f"  skipped {problem.shown}: {problem.reason}", err=True)


def _embed_on_beam(data, name, out, config, fmt, runner, num_workers, pipeline_args, weights_path, store,
                   group_column) -> None:
    from tfaudio.pipeline.beam import run_beam

    summary = run_beam(data, name, out, runner=runner, num_workers=num_workers, pipeline_args=pipeline_args,
                       config=config, weights_path=weights_path, store=store, group_column=group_column,
                       file_format="tfrecord" if fmt == "tfrecord" else "parquet")
    click.echo(
        f"{name}: {summary.clips} clips -> {summary.output} on Beam ({runner}: {summary.cached} cached, "
        f"{summary.computed} computed, {len(summary.skipped)} dead letters; {summary.audio_seconds:.0f} s of audio in "
        f"{summary.seconds:.1f} s; model loaded {summary.model_loads} time(s))"
    )
    for path, reason in summary.skipped:
        click.echo(f"  dead letter {path}: {reason}", err=True)


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--top", default=3, show_default=True, help="Classes shown per time step.")
@click.option("--weights", "weights_path", type=click.Path(dir_okay=False, path_type=Path), help="yamnet.h5 to use.")
@precision_option("bfloat16: faster on CPUs with AVX512-BF16 / AMX; scores agree to about 1e-2.")
@friendly_errors
def tag(files, top, weights_path, precision):
    """Tag audio files with YAMNet's 521 AudioSet classes: the top classes every 0.48 s and
    over the whole file (files of any length, read in windows)."""
    echo_precision_warning(precision)
    import_tensorflow_quietly()
    import numpy as np

    from tfaudio import assets as weights
    from tfaudio.data.audio import printable_path
    from tfaudio.models.registry import get
    from tfaudio.models.yamnet.model import load_class_map
    from tfaudio.pipeline.tagging import score_file

    model = get("yamnet", weights_path=weights_path).loaded()
    classes = load_class_map(weights.resolve(weights.YAMNET_CLASS_MAP))
    hop = model.frame_hop_seconds
    for path in files:
        scores = score_file(path, model, precision=precision)
        click.echo(f"{printable_path(path)}  ({scores.seconds:.2f} s)")
        total, count, step = np.zeros(len(classes), np.float64), 0, 0
        for block in scores.blocks:  # one window at a time: an hour-long file needs one window's memory
            for row in block:
                best = np.argsort(row)[::-1][:top]
                labels = ", ".join(f"{classes[i]} {row[i]:.2f}" for i in best)
                click.echo(f"  {step * hop:7.2f} s  {labels}")
                step += 1
            total += block.sum(axis=0, dtype=np.float64)
            count += len(block)
        overall = total / max(count, 1)
        best = np.argsort(overall)[::-1][:top]
        click.echo("  overall    " + ", ".join(f"{classes[i]} {overall[i]:.2f}" for i in best))
