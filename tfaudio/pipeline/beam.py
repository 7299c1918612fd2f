"""The extraction as an Apache Beam pipeline: the local runner's steps, spread over workers.

    clips (listed by the driver into the work folder)
      -> PlanClips: hash, skip what earlier output or the store holds, windows from the header
      -> batches planned over all windows, as the local runner forms them
      -> EmbedBatches: decode, `embed_windows` (the model built once per worker process); a
         clip of one window pooled and written at once
      -> PoolClips: a clip of several windows pooled in order, as the local runner pools them
      rows go to shards in a work folder as they come, flushed by size and by time
      -> Finalize: every clip listed is a row or a dead letter (else the run fails, naming the
         missing clips, and its work folder stays for the next run to resume from); the
         manifest names the shards written, the dead letters are listed, and the work folder
         replaces DIR/<model>

Resuming: a killed run leaves its work folder, whose shards the next run reads back. That run
plans the clips they hold again, unwanted, so its batches are the killed run's, and the clips
it computes get the vectors an uninterrupted run gives, bit for bit.

Vectors: every step calls the local runner's functions (plan_clip, read_window, embed_windows,
FramePool, rows_table), and batches are planned with the local runner's rule over the same
windows, so a run over the same clips, with the same cache state, gives the local run's vectors
bit for bit. Where compositions differ (clips cached in one run and not the other, a window
that fails to decode mid-clip) a clip's vectors may differ by float rounding of batched
arithmetic (~1e-6, measured on a pretrained CNN). Long files at another sample rate than the model's are
resampled window by window here and in one pass locally: clip vectors agree within 1e-5.

Apache Beam is an optional extra (`pip install 'tfaudio[beam]'`); it is imported only here and
only when a pipeline runs.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from tfaudio.errors import TfaudioError

#: `--runner` names -> Beam runners. "direct" is the FnApiRunner by its full name: Beam 2.77's
#: DirectRunner first downloads the Prism runner, which offline machines cannot.
RUNNERS = {
    "direct": "apache_beam.runners.portability.fn_api_runner.FnApiRunner",
    "dataflow": "DataflowRunner",
    "flink": "FlinkRunner",
    "spark": "SparkRunner",
}
#: The Beam counters a run reports (namespace "tfaudio"), with audio seconds derived from samples.
COUNTERS = ("clips", "cached", "windows", "failed_units", "audio_samples", "model_loads")


class BeamUnavailable(TfaudioError, ImportError):
    """Apache Beam is not installed (it is the optional extra tfaudio[beam])."""


@dataclass
class BeamSummary:
    """What a Beam run did: counters from Beam's metrics, and where the output went."""

    output: str
    clips: int = 0
    cached: int = 0
    computed: int = 0
    windows: int = 0
    failed: int = 0
    audio_seconds: float = 0.0
    seconds: float = 0.0
    model_loads: int = 0
    model_workers: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def import_beam():
    """apache_beam, or BeamUnavailable saying how to install it."""
    try:
        import apache_beam
    except ImportError:
        raise BeamUnavailable(
            "the Beam runners need Apache Beam: pip install 'tfaudio[beam]' (apache-beam 2.77; "
            "or use the local runner, the default)"
        ) from None
    return apache_beam


def pipeline_options(runner: str, num_workers: int | None = None, pipeline_args: Sequence[str] = ()):
    """Beam PipelineOptions for a `--runner` name: `pipeline_args` (Beam's own flags, e.g.
    --project, --region, --temp_location, --flink_master, --environment_type) pass through.

    num_workers: worker processes of the direct runner, --num_workers of Dataflow, --parallelism
    of Flink; Spark takes its parallelism from the cluster's configuration.
    """
    import_beam()
    from apache_beam.options.pipeline_options import PipelineOptions

    if runner not in RUNNERS:
        raise ValueError(f"unknown runner {runner!r}; choose one of {', '.join(RUNNERS)}")
    settings: dict = {"runner": RUNNERS[runner]}
    if runner == "direct":
        settings.update(direct_num_workers=num_workers or os.cpu_count() or 1, direct_running_mode="multi_processing")
    elif runner == "dataflow" and num_workers:
        settings["num_workers"] = num_workers
    elif runner == "flink" and num_workers:
        settings["parallelism"] = num_workers
    return PipelineOptions(list(pipeline_args), **settings)


@dataclass(frozen=True)
class _Run:
    """Everything the graph needs, fixed on the driver before the pipeline is built.

    manifest: the output manifest but for its stamp, shards and skipped files (the local
    writer's fields); final / work: the output folder and this run's work folder beside it;
    stale_work: work folders of interrupted runs (read for resuming, removed at the end).
    flush_seconds: the longest a computed row waits in a worker before its shard is written.
    """

    spec: object  # beam_fns.ModelSpec
    settings: object  # beam_fns.PlanSettings
    pooling: str
    key: str
    manifest: dict
    file_format: str
    frame_hop_seconds: float
    sample_rate: int
    store_root: str | None
    max_samples: int
    max_windows: int
    final: str
    work: str
    stale_work: tuple[str, ...]
    flush_seconds: float = 30.0


def build_pipeline(pipeline, run: _Run):
    """Apply the extraction's transforms to `pipeline` (nothing runs; `run_beam` writes the clip
    listing and the earlier output's index into the work folder first); returns the final
    step's PCollection (one summary dict)."""
    import apache_beam as beam

    from tfaudio.pipeline import beam_fns as fns
    from tfaudio.pipeline.beam_finish import finalize
    from tfaudio.pipeline.beam_io import CLIPS, EARLIER, join

    clips = (
        pipeline
        | "ReadClips" >> beam.io.ReadFromText(join(run.work, CLIPS), validate=False)  # written before the run
        | "ParseClips" >> beam.Map(_parse_clip)
        | "SpreadClips" >> beam.Reshuffle()
    )
    # Files, not elements of the graph: a job graph holding an archive's listing would be too big.
    earlier_side = beam.pvalue.AsDict(
        pipeline
        | "ReadEarlier" >> beam.io.ReadFromText(join(run.work, EARLIER), validate=False)
        | "ParseEarlier" >> beam.Map(_parse_earlier)
    )
    planned = clips | "Plan" >> beam.ParDo(
        fns.PlanClips(run.spec, run.settings, run.store_root, run.key), earlier_side
    ).with_outputs(fns.DEAD, fns.CACHED, main="windows")
    # One step sees every window (small records, no audio) to batch them as the local runner does.
    batches = (
        planned.windows
        | "AllWindows" >> beam.combiners.ToList()
        | "PlanBatches" >> beam.FlatMap(_plan_batches, run.max_samples, run.max_windows)
        | "SpreadBatches" >> beam.Reshuffle()
    )
    embedded = batches | "Embed" >> beam.ParDo(fns.EmbedBatches(run.spec, run)).with_outputs(
        fns.DEAD, fns.SHARDS, main="frames")
    pooled = (
        embedded.frames
        | "JoinWindows" >> beam.GroupByKey()
        | "Pool" >> beam.ParDo(fns.PoolClips(run)).with_outputs(fns.DEAD, fns.SHARDS)
    )
    reused = (
        planned[fns.CACHED]
        | "BySource" >> beam.GroupByKey()
        | "Reuse" >> beam.ParDo(fns.ReadEarlier(run, run.store_root, run.key)).with_outputs(fns.DEAD, fns.SHARDS)
    )
    shards = (embedded[fns.SHARDS], pooled[fns.SHARDS], reused[fns.SHARDS]) | "Shards" >> beam.Flatten()
    dead = (planned[fns.DEAD], embedded[fns.DEAD], pooled[fns.DEAD], reused[fns.DEAD]) | "DeadLetters" >> beam.Flatten()
    return (
        pipeline
        | "Once" >> beam.Create([None])
        | "Finalize" >> beam.Map(finalize, beam.pvalue.AsList(shards), beam.pvalue.AsList(dead), run)
    )


def _parse_clip(line: str):
    from tfaudio.pipeline.sources import ClipRef

    position, *fields = json.loads(line)
    return position, ClipRef(*fields)


def _parse_earlier(line: str) -> tuple[str, tuple[str, bool]]:
    """A line of the earlier output's index -> (digest, (shard, resumed))."""
    digest, shard, resumed = json.loads(line)
    return digest, (shard, resumed)


def _plan_batches(entries: list, max_samples: int, max_windows: int):
    """Every planned (window, clip key, wanted) -> (number, [(window, keys, wanted)]): the local
    runner's batches, numbered in its order, over the windows in its order (by clip, then window;
    a clip whose audio an earlier clip has, a copy under another name, is computed once, and the
    keys of every clip with that audio travel with its first window). A batch holding only
    unwanted windows (clips a resumed run reads back) is left out."""
    from tfaudio.data.batches import group_windows

    entries = sorted(entries, key=lambda entry: (entry[0].position, entry[0].index))
    keys: dict[str, list] = {}
    first: dict[str, int] = {}
    windows, wanted = [], {}
    for window, key, want in entries:
        if window.index == 0:
            keys.setdefault(window.digest, []).append(key)
        if first.setdefault(window.digest, window.position) == window.position:
            windows.append(window)
            wanted[window.digest] = want
    for number, batch in enumerate(group_windows(windows, max_samples=max_samples, max_windows=max_windows)):
        if any(wanted[w.digest] for w in batch):
            yield number, [(w, tuple(keys[w.digest]) if w.index == 0 else (), wanted[w.digest]) for w in batch]


def run_beam(
    data: str | os.PathLike,
    model: str,
    out: str | os.PathLike,
    *,
    runner: str = "direct",
    num_workers: int | None = None,
    pipeline_args: Sequence[str] = (),
    config=None,
    weights_path: str | None = None,
    store: str | os.PathLike | None = None,
    group_column: str | None = None,
    file_format: str = "parquet",
) -> BeamSummary:
    """Embed `data` with `model` on a Beam runner into OUT/<model>/ (the local runner's layout,
    plus `_dead_letter.jsonl`).

    data: a local dataset (class folders or CSV manifest) or one on a Beam filesystem (gs://...).
    config: the local runner's EmbedConfig (pooling, max_duration, window and batch limits).
    weights_path: the weights file every worker loads (local, or on a Beam filesystem: copied).
    store: an embedding store the workers can read, whose vectors are reused (not written).
    Clips whose content hash is in an earlier output of the same model and settings, or in the
    store, are read back instead of computed. Returns Beam's counters as a summary.
    """
    beam = import_beam()
    from tfaudio.pipeline import beam_io
    from tfaudio.pipeline.beam_finish import check_accounted, refused
    from tfaudio.store import MANIFEST

    start = time.perf_counter()
    options = pipeline_options(runner, num_workers, pipeline_args)
    run, clips, ignored = prepare_run(data, model, out, config=config, weights_path=weights_path, store=store,
                                      group_column=group_column, file_format=file_format)
    listed = [[i, c.path, c.file, c.label, c.fold, c.group] for i, c in enumerate(clips)]
    letters = {item[0]: letter for item in listed if (letter := refused(*item)) is not None}
    _write_lines(beam_io.join(run.work, beam_io.CLIPS), [item for item in listed if item[0] not in letters])
    _write_lines(beam_io.join(run.work, beam_io.REFUSED), list(letters.values()))
    beam_io.write_bytes(beam_io.join(run.work, beam_io.KEY_FILE), run.key.encode())
    # The shards of interrupted runs' work folders are resumed (planned again), the final output's reused.
    ours = beam_io.join(run.final, "")
    earlier = beam_io.earlier_sources(run.final, list(run.stale_work), run.key)
    _write_lines(beam_io.join(run.work, beam_io.EARLIER),
                 [[digest, shard, not shard.startswith(ours)] for digest, shard in earlier.items()])
    _quiet_beam_logs()
    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, run)
    result = pipeline.run()
    result.wait_until_finish()
    check_accounted(run.work)
    summary = _summary(result, run)
    manifest = json.loads(beam_io.read_bytes(beam_io.join(run.final, MANIFEST)))
    summary.skipped = [tuple(item) for item in manifest["skipped"]]
    summary.failed += len(letters)
    summary.ignored = [(p.path, p.reason) for p in ignored]
    summary.seconds = time.perf_counter() - start
    return summary


def _write_lines(path: str, items: list) -> None:
    """One JSON value per line (ASCII: names that are not UTF-8 are escaped, not refused)."""
    from tfaudio.pipeline import beam_io

    beam_io.write_bytes(path, "".join(json.dumps(item) + "\n" for item in items).encode())


def prepare_run(data, model, out, *, config=None, weights_path=None, store=None, group_column=None,
                file_format="parquet") -> tuple[_Run, list, list]:
    """List the clips and fix the run's settings on the driver: nothing is written, no network
    is used, and the model is not built (its weights are hashed for the representation key)."""
    from tfaudio.pipeline import beam_fns as fns
    from tfaudio.pipeline import beam_io
    from tfaudio.pipeline.local import EmbedConfig, decoding, embedding_identity
    from tfaudio.pipeline.sources import LocalCopies, is_remote, list_clips
    from tfaudio.pipeline.writer import folder_name
    from tfaudio.store import FRAMES
    from tfaudio.store.formats import output_format

    config = config or EmbedConfig()
    output_format(file_format)  # a ValueError naming the formats, before anything is listed or written
    if weights_path is not None and is_remote(weights_path):
        weights_path = LocalCopies().path(str(weights_path))  # hashed here; each worker copies its own
    spec = fns.ModelSpec(model, None if weights_path is None else str(weights_path))
    representation = spec.build()
    pooling, identity, key = embedding_identity(representation, config)
    clips, ignored = list_clips(data, group_column)
    final = beam_io.output_folder(str(out), representation.name, pooling)
    name = folder_name(representation.name, pooling)
    stale = tuple(beam_io.listing(str(out), f".{name}.work-*")) if beam_io.exists(str(out)) else ()
    dim = representation.dim if pooling == FRAMES else representation.pooled_dim(pooling)
    manifest = dict(  # writer.manifest_for's fields but for stamp, shards and skipped, as the local runner's
        model=representation.name, pooling=pooling, dim=dim, key=key, identity=identity, file_format=file_format,
        decode=decoding(representation, config), frame_hop_seconds=representation.frame_hop_seconds,
    )
    run = _Run(
        spec=spec,
        settings=fns.PlanSettings(config.window_seconds, config.max_duration),
        pooling=pooling,
        key=key,
        manifest=manifest,
        file_format=file_format,
        frame_hop_seconds=representation.frame_hop_seconds,
        sample_rate=representation.sample_rate,
        store_root=None if store is None else str(store),
        max_samples=int(config.batch_seconds * representation.sample_rate),
        max_windows=config.batch_size,
        final=final,
        work=beam_io.join(str(out), f".{name}.work-{uuid.uuid4().hex[:8]}"),
        stale_work=stale,
        flush_seconds=config.flush_seconds,
    )
    return run, clips, ignored


def _summary(result, run: _Run) -> BeamSummary:
    from apache_beam.metrics.metric import MetricsFilter

    from tfaudio.pipeline.beam_fns import LOADED_BY, NAMESPACE

    metrics = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))
    counts = dict.fromkeys(COUNTERS, 0)
    workers = []
    for item in metrics["counters"]:
        name = item.key.metric.name
        if name.startswith(LOADED_BY):
            workers.append(name[len(LOADED_BY) :])
        else:
            counts[name] += item.committed or 0
    return BeamSummary(
        output=run.final,
        clips=counts["clips"],
        cached=counts["cached"],
        computed=counts["clips"] - counts["cached"],
        windows=counts["windows"],
        failed=counts["failed_units"],
        audio_seconds=counts["audio_samples"] / run.sample_rate,
        model_loads=counts["model_loads"],
        model_workers=sorted(workers),
    )


def _quiet_beam_logs() -> None:
    """Beam's workers log every bundle at INFO; a user wants tfaudio's summary, and warnings."""
    for name in ("apache_beam", "root"):
        logging.getLogger(name).setLevel(logging.WARNING)
