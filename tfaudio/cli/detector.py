"""`tfaudio detector train|export|info` and `tfaudio detect`: calibrated detectors on a search
index's embeddings, shipped as one waveform-in SavedModel and run over an archive."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tfaudio.cli.common import COUNT, COUNT_OR_ZERO, FRACTION, NON_NEGATIVE, SEED, check_precision_runs, \
    check_store, count, friendly_errors
from tfaudio.pipeline.run import LOCAL, RUNNERS

#: The head kinds (tfaudio.detector.config, restated so --help costs no import).
_CLASSIFIERS = ("linear", "mlp")


class _Threshold(click.ParamType):
    """LABEL=P with P a probability in [0, 1]: (label, p). The label is checked against the
    detector once it is loaded."""

    name = "LABEL=P"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        label, equals, number = str(value).rpartition("=")
        if not equals or not label:
            self.fail(f"{value!r} is not LABEL=P (e.g. owl=0.8)", param, ctx)
        try:
            p = float(number)
        except ValueError:
            self.fail(f"{value!r}: {number!r} is not a number", param, ctx)
        if not 0 <= p <= 1:
            self.fail(f"{value!r}: a threshold is a probability, 0 to 1", param, ctx)
        return label, p


@click.group()
def detector():
    """Detectors on a search index's labelled windows: train (cross-validated, calibrated), export, look."""


@detector.command()
@click.argument("index_path", metavar="INDEX")
@click.option("--labels", "database", required=True, metavar="DB", help="The label store (tfaudio labels import).")
@click.option("--out", required=True, metavar="DET",
              help="The detector folder (created; a detector there is replaced whole).")
@click.option("--label", "only", multiple=True, metavar="LABEL",
              help="Train this label (repeat for several; default: every label with a positive).")
@click.option("--classifier", type=click.Choice(_CLASSIFIERS), default="linear", show_default=True,
              help="linear: logistic regression on the index's unit vectors; mlp: one hidden layer.")
@click.option("--target-precision", type=FRACTION, default=0.9, show_default=True,
              help="Each label's threshold: the lowest whose precision reaches this, estimated on the whole "
              "archive where stratified rounds were labelled, else cross-validated on labelled windows.")
@click.option("--weak-negative-weight", type=NON_NEGATIVE, default=0.1, show_default=True,
              help="Weight of each unlabelled window used as a negative (0: labelled windows only).")
@click.option("--weak-negatives", type=COUNT_OR_ZERO, default=2000, show_default=True,
              help="At most this many unlabelled windows per label as weak negatives (a seeded sample).")
@click.option("--folds", type=count(2), default=5, show_default=True,
              help="Cross-validation folds, grouped by recording (fewer when fewer recordings hold a label).")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Folds, samples and fits are seeded.")
@click.option("--export/--no-export", "export_model", default=True, show_default=True,
              help="Also write the waveform-in SavedModel (DET/saved_model/<version>).")
@click.option("--tflite", is_flag=True, help="With the export, a TFLite file beside it (model.tflite).")
@friendly_errors
def train(index_path, database, out, only, classifier, target_precision, weak_negative_weight, weak_negatives, folds,
          seed, export_model, tflite):
    """Train a detector for labels of the label store DB on the windows of INDEX: heads on the
    embeddings (unlabelled windows as weak negatives), cross-validated by recording, calibrated
    (Platt), a threshold per label at --target-precision with intervals; saves DET, its
    report.html and (unless --no-export) the waveform-in SavedModel."""
    from tfaudio.outputs import check_writable
    from tfaudio.search.index import read_header

    if tflite and not export_model:
        raise click.UsageError("--tflite needs the export (drop --no-export)")
    read_header(Path(index_path))  # not an index: one line now, before anything is loaded
    _check_store(database)
    check_writable(Path(out))
    _check_not_foreign(Path(out))

    from tfaudio.detector.config import DetectorConfig
    from tfaudio.detector.report import write_report
    from tfaudio.detector.train import train_detector

    config = DetectorConfig(classifier=classifier, target_precision=target_precision,
                            weak_negative_weight=weak_negative_weight, weak_negatives=weak_negatives, folds=folds,
                            seed=seed)
    with _Steps() as steps:
        trained = train_detector(index_path, database, labels=list(only) or None, config=config, progress=steps)
    saved = trained.save(out)
    trained = type(trained).load(saved)  # what was written is what is reported and exported
    report = write_report(trained)
    _echo_reports(trained)
    click.echo(f"detector: {saved}")
    click.echo(f"report: {report}")
    if export_model:
        _echo_export(trained, tflite, required=False)
    else:
        click.echo("not exported (--no-export); later: tfaudio detector export " + str(saved))


@detector.command()
@click.argument("det", metavar="DET")
@click.option("--tflite", is_flag=True, help="A TFLite file beside the SavedModel (model.tflite).")
@friendly_errors
def export(det, tflite):
    """Write DET's waveform-in SavedModel (front end, backbone, windows, heads, calibration and
    thresholds in one graph) as DET/saved_model/<next version>."""
    from tfaudio.detector.model import Detector

    _echo_export(Detector.load(det), tflite, required=True)


@detector.command()
@click.argument("det", metavar="DET")
@friendly_errors
def info(det):
    """What DET holds: its labels with their counts, metrics and thresholds, the index it was
    trained on, its settings and the exports present."""
    from tfaudio.detector.model import Detector

    loaded = Detector.load(det)
    source = loaded.source
    click.echo(f"{loaded.path}: {len(loaded.labels)} label(s), {loaded.heads.kind} heads")
    click.echo(f"trained on: {source.get('index')} ({source.get('model')}, {source.get('precision')}, "
               f"windows of {_seconds(loaded.window_spec().length)} every {_seconds(source.get('hop'))}, "
               f"{source.get('dim')}-d, {source.get('sample_rate')} Hz)")
    config = loaded.config
    click.echo(f"settings: target precision {config.target_precision}, weak negatives {config.weak_negatives} at "
               f"weight {config.weak_negative_weight}, {config.folds} folds, seed {config.seed}")
    _echo_reports(loaded)
    exports = _exports(Path(loaded.path))
    if exports:
        for version, tflite in exports:
            click.echo(f"export: {version}" + (f" (+ {tflite.name})" if tflite else ""))
    else:
        click.echo(f"export: none (tfaudio detector export {loaded.path})")


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("source")
@click.option("--detector", "det", required=True, metavar="DET", help="The detector (tfaudio detector train --out).")
@click.option("--out", required=True, metavar="DIR",
              help="Where scores/, detections.csv, detections.selections.txt and detect.json go.")
@click.option("--threshold", "thresholds", multiple=True, metavar="LABEL=P", type=_Threshold(),
              help="Decide LABEL at probability P (0-1) instead of its trained threshold (repeat for several).")
@click.option("--store", help="Embedding cache, for audio (default: $TFAUDIO_HOME/embeddings).")
@click.option("--runner", type=click.Choice(RUNNERS), default=LOCAL, show_default=True,
              help="Where audio is embedded, as for tfaudio embed: local, or an Apache Beam runner (direct, "
                   "dataflow, flink, spark; options tfaudio does not know go to Beam).")
@click.option("--num-workers", type=COUNT, help="Beam: worker processes (as for tfaudio embed).")
@click.pass_context
@friendly_errors
def detect(ctx, source, det, out, thresholds, store, runner, num_workers):
    """Score every window of SOURCE with the detector DET and list what it detects. SOURCE is a
    search index built like DET's (its stored vectors are scored: nothing is decoded) or audio
    (DATA as tfaudio embed takes it: embedded through the cache, cut into DET's windows)."""
    from tfaudio.outputs import check_writable

    if runner == LOCAL and ctx.args:
        raise click.UsageError(f"unknown option(s) {' '.join(ctx.args)} (options are passed on to Beam only with "
                               "--runner)")
    check_writable(Path(out))
    if store is not None:
        check_store(store)

    from tfaudio.detector.model import Detector

    loaded = Detector.load(det)
    chosen = dict(thresholds)
    unknown = sorted(set(chosen) - set(loaded.labels))
    if unknown:
        raise click.BadParameter(f"{', '.join(map(repr, unknown))}: not a label of {loaded.path} (its labels: "
                                 f"{', '.join(loaded.labels)})", param_hint="--threshold")
    # Audio is embedded in the precision of the detector's index: the vectors its heads learned from.
    precision = loaded.source.get("precision") or "float32"
    if runner != LOCAL and precision != "float32" and not _is_index(source):
        raise click.UsageError(f"{loaded.path} was trained on {precision} embeddings, which only the local runner "
                               "computes for now: leave out --runner")

    from tfaudio.detector.detect import detect as run_detect
    from tfaudio.pipeline.run import RunSettings

    settings = RunSettings(runner=runner, num_workers=num_workers, pipeline_args=tuple(ctx.args), store=store,
                           precision=precision)
    if not _is_index(source):
        check_precision_runs(precision)
    result = run_detect(loaded, source, out, settings=settings, thresholds=chosen or None, progress=_progress)
    _echo_detections(result, loaded, chosen)


# -------------------------------------------------------------------------------------- helpers


def _check_store(database) -> None:
    """The label store opens (one line when it is missing, foreign or damaged), before work."""
    from tfaudio.labels.store import LabelStore

    with LabelStore(database, create=False):
        pass


def _check_not_foreign(out: Path) -> None:
    """Refuse, before training, a --out folder that holds files but no detector: saving there
    would mix a detector into someone else's folder."""
    from tfaudio.detector.model import DetectorError

    if out.is_dir() and not (out / "detector.json").exists() and any(out.iterdir()):
        raise DetectorError(f"{out}: a folder that holds no detector and is not empty; give a new or empty folder "
                            "for --out")


def _is_index(source) -> bool:
    """Whether SOURCE is a search index folder (scored from its vectors: no network runs)."""
    from tfaudio.search.index import HEADER

    return "://" not in str(source) and (Path(source) / HEADER).is_file()


class _Steps:
    """train_detector's progress(step, done, total) as one tqdm bar on stderr, captioned with
    the step (`dog: fold 2/5`)."""

    def __init__(self):
        self.bar = None

    def __enter__(self) -> _Steps:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()

    def __call__(self, step: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total, desc="train", unit="fit", file=sys.stderr, disable=total < 2,
                            dynamic_ncols=True)
        self.bar.set_postfix_str(step, refresh=False)
        self.bar.update(max(0, done - self.bar.n))


def _progress(total: int, desc: str):
    """A tqdm bar on stderr: files while audio is embedded, vectors while they are scored."""
    from tqdm import tqdm

    unit = "vector" if desc == "detect" else "file"
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=total < 2, dynamic_ncols=True)


def _seconds(value) -> str:
    return "?" if value is None else f"{float(value):g} s"


def _interval(value, ci, digits: int = 2) -> str:
    """`0.93 [0.88-0.97]`, or `-` for a missing value."""
    if value is None or value != value:  # NaN: no positive held out
        return "-"
    low, high = ci if ci is not None else (float("nan"), float("nan"))
    if low != low or high != high:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{low:.{digits}f}-{high:.{digits}f}]"


def _echo_reports(trained) -> None:
    """One row per label: labelled counts, held-out AP and ECE, the threshold and what it gives;
    then the notes of labels without cross-validation."""
    width = max([5, *(len(label) for label in trained.labels)])
    click.echo(f"{'label':<{width}}  {'pos':>5} {'neg':>5} {'weak':>5} {'rec':>4}  {'AP [95 % CI]':<17}  "
               f"{'ECE':>5}  {'thresh':>6}  {'precision [CI]':<17}  recall [CI]")
    notes = []
    for label, report, threshold in zip(trained.labels, trained.reports, trained.thresholds):
        ece = "-" if report.calibration is None else f"{report.calibration.ece:.3f}"
        point, estimate = report.point, report.archive
        if point is not None and abs(point.threshold - float(threshold)) > 1e-9:
            point = trained.operating_point(label, float(threshold))  # the threshold in use (archive, or set)
        if estimate is not None and abs(estimate.threshold - float(threshold)) > 1e-9:
            estimate = None
        precision = "-" if point is None else _interval(point.precision, point.precision_ci)
        recall = "-" if point is None else _interval(point.recall, point.recall_ci)
        if point is not None and estimate is None and not point.precision >= trained.config.target_precision:
            precision += " (below target)"
        click.echo(f"{label:<{width}}  {report.positives:>5} {report.negatives:>5} {report.weak_negatives:>5} "
                   f"{report.recordings:>4}  {_interval(report.average_precision, report.average_precision_ci):<17}"
                   f"  {ece:>5}  {float(threshold):>6.3f}  {precision:<17}  {recall:<17}".rstrip())
        if estimate is not None:
            below = "" if estimate.reached else " (below target)"
            notes.append(f"  {label}: on the whole archive ({estimate.picks} stratified labels): precision "
                         f"{_interval(estimate.precision, estimate.precision_ci)}{below}, recall "
                         f"{_interval(estimate.recall, estimate.recall_ci)}, {estimate.predicted} windows at or above "
                         "the threshold (chosen on this estimate)")
        elif point is not None:
            notes.append(f"  {label}: precision is of labelled windows; label a stratified round (labels next "
                         "--strategy stratified) to estimate it on the whole archive")
        if report.note:
            notes.append(f"  {label}: {report.note}")
    for note in notes:
        click.echo(note)


def _echo_export(trained, tflite: bool, *, required: bool) -> None:
    """Export `trained`; a model that cannot be one graph is a note after training (required
    False) and the error itself for `detector export`."""
    from tfaudio.detector.export import export_detector
    from tfaudio.detector.model import DetectorError

    try:
        written = export_detector(trained, tflite=tflite)
    except DetectorError as err:
        if required or "cannot be exported" not in str(err):
            raise
        click.echo(f"not exported: {err}")
        return
    click.echo(f"exported: {written}" + (f" (+ {written / 'model.tflite'})" if tflite else ""))


def _exports(det: Path) -> list[tuple[Path, Path | None]]:
    """(version folder, its model.tflite or None) of each export in DET/saved_model, oldest first."""
    root = det / "saved_model"
    if not root.is_dir():
        return []
    versions = sorted((p for p in root.iterdir() if p.name.isdigit() and (p / "saved_model.pb").exists()),
                      key=lambda p: int(p.name))
    return [(v, v / "model.tflite" if (v / "model.tflite").exists() else None) for v in versions]


def _echo_detections(result, loaded, chosen: dict) -> None:
    """What detect did: where it read from, how much, what it found per label, where it wrote."""
    how = "the index's stored vectors (nothing decoded)" if result.from_index else "audio (embedded through the cache)"
    click.echo(f"scored {result.windows} windows of {result.files} files from {how}")
    detections = result.detections
    counts = detections["label"].value_counts() if len(detections) else {}
    for label, threshold in zip(loaded.labels, loaded.thresholds):
        at = chosen.get(label, float(threshold))
        mark = " (--threshold)" if label in chosen else ""
        click.echo(f"  {label}: {int(counts.get(label, 0))} detections at probability >= {at:.3f}{mark}")
    for problem in result.skipped:
        shown = getattr(problem, "shown", None) or getattr(problem, "file", None) or str(problem)
        reason = getattr(problem, "reason", "")
        click.echo(f"  skipped {shown}" + (f": {reason}" if reason else ""), err=True)
    out = Path(result.out)
    click.echo(f"wrote {out / 'detections.csv'}, {out / 'detections.selections.txt'}, {out / 'scores'}/, "
               f"{out / 'detect.json'}")
