"""`tfaudio detect`: a detector run over every window of an archive.

    OUT/scores/part-NNNNN.parquet   one row per window: file, sha256, start, end (seconds), then per
                                    label `score/<label>` (raw, float32) and `probability/<label>`
                                    (calibrated, float32); at most `shard_rows` rows a part
    OUT/detections.csv              merged detections (tfaudio.detector.detections)
    OUT/detections.selections.txt   the same as a Raven selection table
    OUT/detect.json                 what was run over what, counts, thresholds, time
    OUT/embeddings/                 frame embeddings of DATA (a run over audio only)

Two sources. A search index whose embeddings are the detector's own (same model, precision,
embedding identity and windows) is scored from its stored vectors, chunk by chunk: nothing is
decoded and memory stays flat however many windows it holds. Anything else is DATA: its frames
come from `tfaudio.pipeline.run.run_embedding` (this machine or Beam; what an earlier run
computed is in the embedding store and is not computed again), and each file's windows are
cut from them by `tfaudio.search.windows.file_windows` with the detector's window spec, as an
index build does, so both sources give the same vectors for the same files. An index that
does not match is refused, naming what differs: its vectors mean something else to the heads.

OUT is checked before any work and held while the run writes (a second run there is refused);
the scores go to a hidden folder that replaces OUT/scores when the run ends, every table is
written under a temporary name and renamed, and detect.json comes last: a re-run replaces the
outputs whole and an interrupted one leaves the previous run's outputs as they were.
"""

from __future__ import annotations

import contextlib
import html
import json
import math
import os
import secrets
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tfaudio.detector.detections import detections_csv, merge_windows, raven_table
from tfaudio.detector.model import Detector, DetectorError
from tfaudio.errors import TfaudioError
from tfaudio.pipeline.run import Progress, RunSettings

if TYPE_CHECKING:
    import pandas as pd

SCORES = "scores"
DETECTIONS = "detections.csv"
SELECTIONS = "detections.selections.txt"
SUMMARY = "detect.json"
EMBEDDINGS = "embeddings"
FORMAT = "tfaudio-detect/1"
#: Rows of a scores part: bounded so that memory stays flat over any archive.
SHARD_ROWS = 262_144
#: Vectors scored at a time: the heads' temporaries (a standardised copy of the chunk) stay
#: near 64 MB for 1024-d embeddings, whatever the part size.
CHUNK_ROWS = 16_384


@dataclass(frozen=True)
class DetectResult:
    """What a run of `detect` wrote and found.

    out: the output folder; windows: windows scored; files: recordings scored; detections:
    pandas DataFrame (file, label, start, end, probability, windows), as detections.csv;
    from_index: scored from an index's stored vectors (nothing decoded); skipped: the files
    of DATA that could not be read (tfaudio.data.dataset.Problem: path, reason).
    """

    out: Path
    windows: int
    files: int
    detections: pd.DataFrame
    from_index: bool
    skipped: list = field(default_factory=list)

    def _repr_html_(self) -> str:
        counts = self.detections["label"].value_counts().to_dict() if len(self.detections) else {}
        rows = "".join(f"<tr><td>{html.escape(str(label))}</td><td>{count}</td></tr>"
                       for label, count in sorted(counts.items()))
        source = "the index's stored vectors" if self.from_index else "audio"
        skipped = f", {len(self.skipped)} skipped" if self.skipped else ""
        return (f"<p>{self.windows} windows of {self.files} files scored from {source}{skipped}; outputs in "
                f"<code>{html.escape(str(self.out))}</code></p>"
                f"<table><tr><th>label</th><th>detections</th></tr>{rows}</table>")


def detect(detector, source, out, *, settings: RunSettings = RunSettings(), thresholds: dict | None = None,
           progress: Progress | None = None, shard_rows: int = SHARD_ROWS) -> DetectResult:
    """Score every window of `source` with `detector` into `out` (see the module for the layout).

    detector: a Detector or the folder of a saved one. source: a SearchIndex (or its folder)
    built with the detector's model, precision and windows, or DATA (anything `run_embedding`
    reads). settings: where the embedding of DATA runs (its precision is the detector's).
    thresholds: label -> probability overriding the detector's thresholds. progress:
    progress(total, label) -> a context manager with update(count), e.g. tqdm (the pipeline's
    Progress: the embedding of DATA reports through it too, then scoring as "detect").
    shard_rows: most rows of a scores part.
    Raises DetectorError (an index that does not match, unknown labels or thresholds), OutputError
    (out not writable, checked before any work), SearchIndexError (a damaged index).
    """
    from tfaudio.outputs import OutputError, check_writable, writing_into

    started = time.perf_counter()
    if not isinstance(detector, Detector):
        detector = Detector.load(detector)
    if shard_rows < 1:
        raise ValueError(f"shard_rows must be 1 or more, got {shard_rows}")
    limits = _thresholds(detector, thresholds)
    out = check_writable(Path(out))
    index = _index_of(source)
    if index is not None:
        _check_index(index, detector)
    with writing_into(out):
        _remove_leftovers(out)
        scores = out / f".{SCORES}.partial-{secrets.token_hex(4)}"
        scores.mkdir()
        try:
            writer = _ScoreWriter(scores, detector.labels, limits, shard_rows)
            if index is not None:
                _score_index(index, detector, writer, progress)
                skipped = []
            else:
                skipped = _score_audio(source, detector, out, settings, writer, progress)
            writer.close()
            detections = merge_windows(writer.above())
            result = DetectResult(out, writer.windows, len(writer.files), detections, index is not None, skipped)
            _publish(result, detector, source, limits, scores, time.perf_counter() - started)
        except OSError as err:
            if isinstance(err, TfaudioError):  # said in one line already (OutputError, an unreadable DATA)
                raise
            raise OutputError(f"{_shown(out)}: the outputs could not be written ({err.strerror or err}); free some "
                              "space or choose another folder, then run detect again") from None
        finally:
            shutil.rmtree(scores, ignore_errors=True)  # gone already when published
    return result


def _thresholds(detector: Detector, overrides: dict | None) -> np.ndarray:
    """float [C]: the detector's thresholds with `overrides` (label -> probability) applied."""
    limits = np.array(detector.thresholds, dtype=np.float64).reshape(-1)
    for label, value in (overrides or {}).items():
        if label not in detector.labels:
            raise DetectorError(f"threshold for {label!r}: the detector has no such label (its labels: "
                                f"{', '.join(detector.labels)})")
        try:
            value = float(value)
        except (TypeError, ValueError):
            value = math.nan
        if not 0.0 <= value <= 1.0:
            raise DetectorError(f"threshold for {label!r}: {value!r} is not a probability; give one from 0 to 1")
        limits[detector.labels.index(label)] = value
    return limits


def _index_of(source):
    """The SearchIndex `source` is (an open one, or a folder holding index.json), else None (DATA)."""
    from tfaudio.search.index import HEADER, SearchIndex

    if isinstance(source, SearchIndex):
        return source
    if "://" not in str(source) and str(source) != "-" and os.path.isdir(source) and \
            os.path.exists(os.path.join(source, HEADER)):
        return SearchIndex.open(source)  # a damaged index: SearchIndexError naming it
    return None


def _check_index(index, detector: Detector) -> None:
    """DetectorError naming what differs when the index's vectors are not the detector's."""
    ours, theirs = detector.source, index.header
    spec = detector.window_spec()
    differences = []
    if theirs.get("model") != ours.get("model"):
        differences.append(f"model {theirs.get('model')} (the detector's: {ours.get('model')})")
    if theirs.get("precision") != ours.get("precision"):
        differences.append(f"precision {theirs.get('precision')} (the detector's: {ours.get('precision')})")
    if not differences and theirs.get("key") != ours.get("key"):
        differences.append("embedding identity (other weights or tfaudio version than the detector's)")
    windows = (theirs.get("frame_hop"), theirs.get("frame_span"), theirs.get("frames_per_window"))
    if any(value is None for value in windows) or not (
            math.isclose(windows[0], spec.frame_hop, rel_tol=1e-9) and
            math.isclose(windows[1], spec.frame_span, rel_tol=1e-9) and int(windows[2]) == spec.frames):
        differences.append(f"windows every {theirs.get('hop')} s (the detector's: every {spec.hop:g} s of "
                           f"{spec.length:g} s)")
    if differences:
        raise DetectorError(f"{_shown(index.path)}: not the detector's embeddings: {'; '.join(differences)}; pass "
                            "the audio folder instead (its windows are then embedded the detector's way)")


def _score_index(index, detector: Detector, writer: _ScoreWriter, progress: Progress | None) -> None:
    """Every window of `index`, chunk by chunk (vectors memory-mapped; nothing decoded)."""
    table = index.windows
    with progress(len(index), "detect") if progress else contextlib.nullcontext() as bar:
        for first, vectors in index.chunks(min(writer.rows, CHUNK_ROWS)):
            rows = table.iloc[first : first + len(vectors)]
            writer.add(rows["file"].to_numpy(object), rows["sha256"].to_numpy(object),
                       rows["start"].to_numpy(np.float64), rows["end"].to_numpy(np.float64),
                       *_scored(detector, vectors))
            if bar is not None:
                bar.update(len(vectors))


def _score_audio(data, detector: Detector, out: Path, settings: RunSettings, writer: _ScoreWriter,
                 progress: Progress | None) -> list:
    """DATA's frames (run_embedding into OUT/embeddings) cut into the detector's windows and
    scored; returns the files that could not be read."""
    import pyarrow.parquet as pq

    from tfaudio.pipeline.local import EmbedConfig
    from tfaudio.pipeline.run import run_embedding
    from tfaudio.store import FRAMES, MANIFEST

    source = detector.source
    _check_model(detector)
    settings = replace(settings, file_format="parquet", precision=source["precision"])
    run = next(iter(run_embedding(data, [source["model"]], out / EMBEDDINGS, EmbedConfig(pooling=FRAMES), settings,
                                  progress)))
    folder = Path(run.output)
    manifest = json.loads((folder / MANIFEST).read_text())
    if manifest.get("key") != source["key"]:  # the check above makes this a race: weights replaced meanwhile
        raise DetectorError(f"{_shown(folder)}: embeddings of another {source['model']} than the detector's")
    paths = _paths(data, settings)
    spec = detector.window_spec()
    total = sum(shard.get("rows", 0) for shard in manifest["shards"])
    with progress(total, "detect") if progress else contextlib.nullcontext() as bar:
        for shard in manifest["shards"]:
            table = pq.read_table(folder / shard["name"])
            for name, digest, frames in _files_of(table):
                path = paths.get(name, name)
                vectors, starts, ends = _windows(frames, spec, path)
                count = len(vectors)
                writer.add(np.full(count, path, object), np.full(count, digest, object), starts, ends,
                           *_scored(detector, vectors))
                if bar is not None:
                    bar.update(len(frames))
    return list(run.skipped)


def _scored(detector: Detector, vectors) -> tuple[np.ndarray, np.ndarray]:
    """(raw scores, calibrated probabilities) float32 [n, C] of float32 [n, dim] vectors: what
    detector.scores and detector.probabilities give, the heads run once."""
    from tfaudio.detector.stats import platt

    scores = detector.scores(vectors)
    return scores, platt(scores, detector.platt_a, detector.platt_b)


def _check_model(detector: Detector) -> None:
    """DetectorError, before any audio is decoded, when the registry's model here is not the
    one whose embeddings the detector was trained on (other weights, another tfaudio)."""
    from tfaudio.models.precision import with_precision
    from tfaudio.models.registry import get
    from tfaudio.pipeline.local import EmbedConfig, embedding_identity
    from tfaudio.store import FRAMES

    source = detector.source
    model = with_precision(get(source["model"]), source["precision"], warn=False)
    _, _, key = embedding_identity(model, EmbedConfig(pooling=FRAMES))
    if key != source["key"]:
        where = _shown(detector.path) if detector.path is not None else "the detector"
        raise DetectorError(f"{where}: trained on embeddings of another {source['model']} (other weights or tfaudio "
                            f"version) than the one here now; train it again on an index built here")


def _paths(data, settings: RunSettings) -> dict[str, str]:
    """The frame output's file names (relative to the dataset) -> the files' paths, as an index
    build records them (so scores from audio and from an index name files alike)."""
    from tfaudio.data.dataset import load_dataset

    if "://" in str(data) or str(data) == "-":  # remote names are paths already; standard input is read once
        return {}
    dataset = load_dataset(data, group_column=settings.group_column, labelled=False)
    return {dataset.relative(clip): str(clip.path) for clip in dataset.clips}


def _files_of(table):
    """(file name, sha256, frames float32 [n, dim] in time order) of each file in a frame shard
    (a file's frames are all in one shard)."""
    columns = [c for c in table.column_names if c[:1] == "e" and c[1:].isdigit()]
    if not table.num_rows:
        return
    matrix = np.stack([table.column(c).to_numpy() for c in columns], axis=1).astype(np.float32)
    files = table.column("file").to_numpy(zero_copy_only=False)
    digests = table.column("audio_sha256").to_numpy(zero_copy_only=False)
    order = np.lexsort((table.column("frame").to_numpy(), files))
    files, digests, matrix = files[order], digests[order], matrix[order]
    bounds = np.flatnonzero(np.r_[True, files[1:] != files[:-1], True])
    for begin, end in zip(bounds[:-1], bounds[1:]):
        yield files[begin], digests[begin], matrix[begin:end]


def _windows(frames: np.ndarray, spec, path: str):
    """file_windows of one file, its last window cut at the file's end (as an index build cuts it)."""
    from tfaudio.data.audio import AudioError, info
    from tfaudio.search.windows import file_windows

    try:
        duration = info(path).duration if "://" not in path else None
    except AudioError:
        duration = None
    return file_windows(frames, spec, duration)


class _ScoreWriter:
    """Scored windows into Parquet parts of at most `rows` rows under `folder`, written as they
    fill; keeps the (window, label) pairs at or above threshold for the detections."""

    def __init__(self, folder: Path, labels, limits: np.ndarray, rows: int):
        self.folder, self.labels, self.limits, self.rows = folder, tuple(labels), limits, rows
        self.windows, self.parts, self.files = 0, [], set()
        self._pending: list[tuple] = []
        self._count = 0
        self._above: list = []

    def add(self, files, digests, starts, ends, scores, probabilities) -> None:
        """One batch of windows: files, digests object [n]; starts, ends float64 [n]; scores,
        probabilities float32 [n, C]."""
        import pandas as pd

        if not len(starts):
            return
        scores = np.asarray(scores, np.float32).reshape(len(starts), len(self.labels))
        probabilities = np.asarray(probabilities, np.float32).reshape(len(starts), len(self.labels))
        self.windows += len(starts)
        self.files.update(np.unique(files).tolist())
        rows, labels = np.nonzero(probabilities >= self.limits[None, :])
        if len(rows):
            self._above.append(pd.DataFrame({
                "file": files[rows], "label": np.asarray(self.labels, object)[labels], "start": starts[rows],
                "end": ends[rows], "probability": probabilities[rows, labels]}))
        self._pending.append((files, digests, starts, ends, scores, probabilities))
        self._count += len(starts)
        while self._count >= self.rows:
            self._flush(self.rows)

    def _flush(self, limit: int) -> None:
        """Write the first `limit` pending rows (fewer when fewer wait) as the next part."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        taken, rest, count = [], [], 0
        for batch in self._pending:
            room = limit - count
            if room <= 0:
                rest.append(batch)
            elif len(batch[2]) <= room:
                taken.append(batch)
                count += len(batch[2])
            else:
                taken.append(tuple(column[:room] for column in batch))
                rest.append(tuple(column[room:] for column in batch))
                count += room
        self._pending, self._count = rest, self._count - count
        if not count:
            return
        files, digests, starts, ends, scores, probabilities = (np.concatenate(parts) for parts in zip(*taken))
        columns = {"file": pa.array(files, pa.string()), "sha256": pa.array(digests, pa.string()),
                   "start": pa.array(starts, pa.float64()), "end": pa.array(ends, pa.float64())}
        for number, label in enumerate(self.labels):
            columns[f"score/{label}"] = pa.array(scores[:, number], pa.float32())
        for number, label in enumerate(self.labels):
            columns[f"probability/{label}"] = pa.array(probabilities[:, number], pa.float32())
        name = f"part-{len(self.parts):05d}.parquet"
        pq.write_table(pa.table(columns), self.folder / name)
        self.parts.append({"name": name, "rows": count})

    def close(self) -> None:
        while self._count:
            self._flush(self.rows)

    def above(self):
        """pandas DataFrame file, label, start, end, probability: every (window, label) at or
        above threshold."""
        import pandas as pd

        if not self._above:
            return pd.DataFrame({"file": [], "label": [], "start": [], "end": [], "probability": []})
        return pd.concat(self._above, ignore_index=True)


def _publish(result: DetectResult, detector: Detector, source, limits: np.ndarray, scores: Path,
             seconds: float) -> None:
    """Put the run's outputs in place: the tables, the scores folder (swapped for the previous
    one), then detect.json, the sign of a finished run."""
    from tfaudio import __version__
    from tfaudio.labels.store import now
    from tfaudio.outputs import write_text

    out = result.out
    write_text(out / DETECTIONS, detections_csv(result.detections))
    write_text(out / SELECTIONS, raven_table(result.detections, detector.source.get("sample_rate")))
    parts = sorted(path.name for path in scores.iterdir())
    old = out / f".{SCORES}.old-{secrets.token_hex(4)}"
    final = out / SCORES
    if final.exists():
        os.replace(final, old)
    os.replace(scores, final)
    shutil.rmtree(old, ignore_errors=True)
    counts = result.detections["label"].value_counts().to_dict() if len(result.detections) else {}
    summary = {
        "format": FORMAT, "tfaudio": __version__, "time": now(), "seconds": round(seconds, 3),
        "detector": None if detector.path is None else str(detector.path),
        "source": str(getattr(source, "path", source)), "from_index": result.from_index,
        "model": detector.source.get("model"), "precision": detector.source.get("precision"),
        "windows": result.windows, "files": result.files, "labels": list(detector.labels),
        "thresholds": {label: _number(limit) for label, limit in zip(detector.labels, limits)},
        "detections": {label: int(counts.get(label, 0)) for label in detector.labels},
        "scores": [f"{SCORES}/{name}" for name in parts],
        "skipped": [[problem.shown, problem.reason] for problem in result.skipped],
    }
    write_text(out / SUMMARY, json.dumps(summary, indent=1))


def _number(value: float) -> float | None:
    return None if not math.isfinite(value) else float(value)


def _remove_leftovers(out: Path) -> None:
    """The hidden folders of a run that was killed (this run holds OUT, so none is in use)."""
    for path in out.glob(f".{SCORES}.*"):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


def _shown(path) -> str:
    return os.fsencode(path).decode("utf-8", "backslashreplace")


__all__ = ["DetectResult", "SHARD_ROWS", "detect"]
