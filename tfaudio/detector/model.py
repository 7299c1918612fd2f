"""A trained detector: heads, calibration and thresholds per label, what it was trained on and
how well it did on held-out labels; saved as a folder and loaded back.

    DET/detector.json   format "tfaudio-detector/1": labels, Platt parameters, thresholds, the
                        settings, the index it came from, the reports, digests of the .npz files
    DET/heads.npz       the heads' arrays (tfaudio.detector.heads.Heads)
    DET/held_out.npz    per label its out-of-fold labels, calibrated probabilities, recordings
    DET/report.html     tfaudio.detector.report
    DET/saved_model/    tfaudio.detector.export

Each file is written under a temporary name and renamed into place, detector.json last: it
names the digests of the .npz files it goes with, so a folder left half-rewritten by a crash is
refused as damaged rather than served with another detector's heads. Saving over a detector
first removes its report and export: they describe the detector replaced (its heads, its
thresholds), and `predict DET` would otherwise serve the old one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfaudio.detector.config import DetectorConfig
from tfaudio.detector.heads import Heads
from tfaudio.errors import TfaudioError

FORMAT = "tfaudio-detector/1"
HEADER = "detector.json"
HEADS = "heads.npz"
HELD_OUT = "held_out.npz"
#: What is made from a saved detector, in its folder (tfaudio.detector.report, .export).
REPORT = "report.html"
EXPORTS = "saved_model"
#: What held_out.npz keeps per label.
HELD_OUT_KEYS = ("y", "probability", "groups")


class DetectorError(TfaudioError):
    """A detector that cannot be trained, loaded or used as asked; the message names the folder
    (or label) and what to do."""


def shown(path) -> str:
    return os.fsencode(path).decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class LabelReport:
    """How one label's detector did on held-out labels (cross-validated by recording).

    positives, negatives, unsure: labelled windows of the label; weak_negatives: unlabelled
    windows trained on as negatives; recordings: recordings holding labelled windows.
    average_precision (+ 95 % interval over recordings) of the held-out calibrated
    probabilities; roc_auc (None without both classes held out); calibration: their
    reliability (tfaudio.comparison.calibration.Calibration, kind "binary"); platt: (a, b);
    point: the operating point at the chosen threshold (tfaudio.detector.stats.OperatingPoint).
    calibration and point are None and the AP NaN when there was no cross-validation, and
    `note` says why. archive: precision and recall over the whole index at the detector's
    threshold (tfaudio.detector.archive.ArchiveEstimate), estimated from stratified or random
    rounds; None without such labels, the threshold then being the cross-validated one.
    """

    label: str
    positives: int
    negatives: int
    unsure: int
    weak_negatives: int
    recordings: int
    average_precision: float = float("nan")
    average_precision_ci: tuple[float, float] = (float("nan"), float("nan"))
    roc_auc: float | None = None
    calibration: object | None = None
    platt: tuple[float, float] = (1.0, 0.0)
    point: object | None = None
    note: str = ""
    archive: object | None = None

    def to_dict(self) -> dict:
        """JSON-ready, for people and metrics files (NaN becomes None)."""
        return {
            "label": self.label, "positives": self.positives, "negatives": self.negatives, "unsure": self.unsure,
            "weak_negatives": self.weak_negatives, "recordings": self.recordings,
            "average_precision": _plain(self.average_precision),
            "average_precision_ci95": _plain(list(self.average_precision_ci)), "roc_auc": _plain(self.roc_auc),
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
            "platt": {"a": self.platt[0], "b": self.platt[1]},
            "point": None if self.point is None else self.point.to_dict(), "note": self.note,
            "archive": None if self.archive is None else self.archive.to_dict(),
        }

    def state(self) -> dict:
        """Everything, JSON-ready, for `from_state` (what detector.json keeps)."""
        state = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in ("calibration", "point"):
            if state[name] is not None:
                state[name] = {f.name: getattr(state[name], f.name) for f in dataclasses.fields(state[name])}
        if state["archive"] is not None:
            state["archive"] = self.archive.to_dict()
        return _plain(state)

    @classmethod
    def from_state(cls, state: dict) -> LabelReport:
        from tfaudio.comparison.calibration import Calibration
        from tfaudio.detector.stats import OperatingPoint

        state = dict(state)
        state["average_precision"] = _number(state["average_precision"])
        state["average_precision_ci"] = tuple(_number(v) for v in state["average_precision_ci"])
        state["platt"] = tuple(float(v) for v in state["platt"])
        if state["calibration"] is not None:
            c = dict(state["calibration"])
            for name in ("edges", "confidence", "bin_accuracy"):
                c[name] = np.array([_number(v) for v in c[name]], np.float64)
            c["counts"] = np.asarray(c["counts"], np.int64)
            c["ece"], c["ece_ci"] = _number(c["ece"]), tuple(_number(v) for v in c["ece_ci"])
            c["mean_confidence"], c["accuracy"] = _number(c["mean_confidence"]), _number(c["accuracy"])
            state["calibration"] = Calibration(**c)
        if state["point"] is not None:
            p = {name: _number(value) if name in ("threshold", "precision", "recall") else value
                 for name, value in state["point"].items()}
            p["precision_ci"] = tuple(_number(v) for v in p["precision_ci"])
            p["recall_ci"] = tuple(_number(v) for v in p["recall_ci"])
            state["point"] = OperatingPoint(**p)
        if state.get("archive") is not None:
            from tfaudio.detector.archive import ArchiveEstimate

            state["archive"] = ArchiveEstimate.from_dict(state["archive"])
        return cls(**state)


def _plain(value):
    """`value` with numpy scalars, arrays and tuples as JSON's own types, NaN and inf as None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    return value


def _number(value) -> float:
    return float("nan") if value is None else float(value)


@dataclass(frozen=True, eq=False)
class Detector:
    """Calibrated one-vs-rest detectors of `labels` on a search index's window embeddings.

    heads: raw scores (logits) [n, C]; platt_a, platt_b: float64 [C], probability =
    1 / (1 + exp(-(a * score + b))); thresholds: float64 [C] on that probability; source: the
    index it was trained on (path, model, precision, hop, frame_hop, frame_span,
    frames_per_window, key, dim, sample_rate): windows to score must be embedded the same way.
    reports: one LabelReport per label; held_out: per label "y" int8 [m], "probability" float32
    [m], "groups" str [m] (recordings) of the out-of-fold labelled windows (empty without
    cross-validation). path: where it was saved or loaded from (None: not on disk).
    """

    labels: tuple[str, ...]
    heads: Heads
    platt_a: np.ndarray
    platt_b: np.ndarray
    thresholds: np.ndarray
    config: DetectorConfig
    source: dict
    reports: tuple[LabelReport, ...]
    held_out: dict
    path: Path | None = None

    def __repr__(self) -> str:
        where = f", {shown(self.path)}" if self.path else ""
        return f"Detector({len(self.labels)} labels: {', '.join(self.labels)}; {self.heads.kind} heads on " \
               f"{self.source.get('model')}{where})"

    def _repr_html_(self) -> str:
        from tfaudio.detector.report import summary_html

        return summary_html(self)

    def scores(self, vectors) -> np.ndarray:
        """vectors: float32 [n, dim] unit-norm window embeddings -> raw scores float32 [n, C]."""
        return self.heads.scores(vectors)

    def probabilities(self, vectors) -> np.ndarray:
        """vectors: float32 [n, dim] -> calibrated probabilities float32 [n, C]."""
        from tfaudio.detector.stats import platt

        return platt(self.scores(vectors), self.platt_a, self.platt_b)

    def decisions(self, probabilities) -> np.ndarray:
        """probabilities float [n, C] -> bool [n, C]: at or above each label's threshold."""
        return np.asarray(probabilities) >= self.thresholds

    def _position(self, label: str) -> int:
        if label not in self.labels:
            raise DetectorError(f"{self._name()}: no label {label!r}; it detects {', '.join(self.labels)}")
        return self.labels.index(label)

    def _name(self) -> str:
        return shown(self.path) if self.path else "the detector"

    def operating_point(self, label: str, threshold: float):
        """Precision and recall (with intervals) of `probability >= threshold` for `label` on
        its held-out labels: a tfaudio.detector.stats.OperatingPoint."""
        from tfaudio.detector.stats import operating_point

        self._position(label)
        held = self.held_out.get(label, {})
        if not len(held.get("y", ())):
            note = next((r.note for r in self.reports if r.label == label), "")
            raise DetectorError(f"{self._name()}: no held-out labels of {label!r} to measure a threshold on"
                                f"{' (' + note + ')' if note else ''}; label more and train again")
        return operating_point(held["y"], held["probability"], float(threshold), held["groups"],
                               resamples=self.config.resamples, seed=self.config.seed)

    def with_thresholds(self, thresholds: dict[str, float]) -> Detector:
        """This detector with other thresholds for some labels ({label: probability}); their
        reports' operating points are measured again at the new thresholds. Not on disk (path None)."""
        values = np.array(self.thresholds, np.float64)
        reports = list(self.reports)
        for label, threshold in thresholds.items():
            position = self._position(label)
            if not 0 <= float(threshold) <= 1:
                raise DetectorError(f"threshold of {label!r} must be a probability in [0, 1], got {threshold}")
            values[position] = float(threshold)
            if reports[position].point is not None:
                point = self.operating_point(label, threshold)
                reports[position] = dataclasses.replace(reports[position], point=point)
        return dataclasses.replace(self, thresholds=values, reports=tuple(reports), path=None)

    def window_spec(self):
        """The windows the detector scores (tfaudio.search.windows.WindowSpec), as its index cut them."""
        from tfaudio.search.windows import WindowSpec

        s = self.source
        return WindowSpec(float(s["frame_hop"]), float(s["frame_span"]), int(s["frames_per_window"]))

    def report(self, label: str) -> LabelReport:
        return self.reports[self._position(label)]

    # -- on disk ----------------------------------------------------------------------------------

    def save(self, out: str | os.PathLike | None = None) -> Path:
        """Write the detector to the folder `out` (default: where it was loaded from) and
        return it; `path` is set to it. A folder that exists must be a detector (it is
        replaced, its report and export removed) or empty. OutputError when it cannot be
        written, DetectorError for a folder that is something else."""
        from tfaudio.outputs import check_writable, write_bytes, write_text

        if out is None and self.path is None:
            raise DetectorError("the detector has no folder yet: give save() one")
        out = check_writable(self.path if out is None else out, folder=True)
        if out.is_dir() and any(out.iterdir()) and not (out / HEADER).is_file():
            raise DetectorError(f"{shown(out)}: exists and is not a tfaudio detector (no {HEADER}); choose another "
                                "folder or empty this one")
        out.mkdir(parents=True, exist_ok=True)
        if (out / HEADER).is_file():  # a replacement: what was made from the old detector goes
            import shutil

            shutil.rmtree(out / EXPORTS, ignore_errors=True)
            (out / REPORT).unlink(missing_ok=True)
        digests = {}
        held = {f"{key}_{i}": self._held(label, key) for i, label in enumerate(self.labels) for key in HELD_OUT_KEYS}
        for name, arrays in ((HEADS, self.heads.arrays), (HELD_OUT, held)):
            data = _npz(arrays)
            digests[name] = hashlib.sha256(data).hexdigest()
            write_bytes(out / name, data)
        from tfaudio import __version__

        header = {
            "format": FORMAT, "tfaudio": __version__, "labels": list(self.labels), "classifier": self.heads.kind,
            "platt": {"a": self.platt_a, "b": self.platt_b}, "thresholds": self.thresholds,
            "config": dataclasses.asdict(self.config), "source": self.source,
            "reports": [r.state() for r in self.reports], "files": digests,
        }
        write_text(out / HEADER, json.dumps(_plain(header), indent=1))
        object.__setattr__(self, "path", out)  # frozen, but where it lives is not what it is
        return out

    def _held(self, label: str, key: str) -> np.ndarray:
        value = self.held_out.get(label, {}).get(key)
        if key == "groups":
            return np.asarray([] if value is None else value, dtype=str)
        dtype = np.int8 if key == "y" else np.float32
        return np.asarray([] if value is None else value, dtype=dtype)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Detector:
        """The detector saved in the folder `path`; DetectorError (one line naming it) when it
        is missing, not a detector, of another format, or damaged."""
        path = Path(path)
        if not path.is_dir():
            raise DetectorError(f"{shown(path)}: no such detector (train one with tfaudio detector train)")
        try:
            text = (path / HEADER).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DetectorError(f"{shown(path)}: not a tfaudio detector (no {HEADER}); give the folder that "
                                "tfaudio detector train wrote") from None
        except (OSError, UnicodeDecodeError) as err:
            raise DetectorError(f"{shown(path / HEADER)}: cannot be read ({err}); train the detector again") from None
        try:
            header = json.loads(text)
            fmt = header["format"]
        except (ValueError, KeyError, TypeError):
            raise DetectorError(f"{shown(path / HEADER)}: damaged (not the JSON a detector is saved as); train the "
                                "detector again") from None
        if fmt != FORMAT:
            what = "detector format" if str(fmt).startswith("tfaudio-detector/") else "not a tfaudio detector: format"
            raise DetectorError(f"{shown(path)}: {what} {fmt!r}, this tfaudio reads {FORMAT!r}; train the detector "
                                "again with this tfaudio")
        try:
            return cls._from(path, header)
        except DetectorError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
            raise DetectorError(f"{shown(path / HEADER)}: damaged ({type(err).__name__}: {err}); train the detector "
                                "again") from None

    @classmethod
    def _from(cls, path: Path, header: dict) -> Detector:
        labels = tuple(header["labels"])
        heads_arrays = _read_npz(path / HEADS, header["files"][HEADS])
        held_arrays = _read_npz(path / HELD_OUT, header["files"][HELD_OUT])
        try:
            heads = Heads(header["classifier"], labels, heads_arrays)
            held = {label: {key: held_arrays[f"{key}_{i}"] for key in HELD_OUT_KEYS} for i, label in enumerate(labels)}
        except (ValueError, KeyError) as err:
            raise DetectorError(f"{shown(path / HEADS)}: damaged ({err}); train the detector again") from None
        count = len(labels)
        platt_a, platt_b = (np.asarray(header["platt"][k], np.float64) for k in ("a", "b"))
        thresholds = np.asarray(header["thresholds"], np.float64)
        if not platt_a.shape == platt_b.shape == thresholds.shape == (count,):
            raise ValueError(f"{count} labels but {len(platt_a)} Platt parameters and {len(thresholds)} thresholds")
        return cls(labels=labels, heads=heads, platt_a=platt_a, platt_b=platt_b, thresholds=thresholds,
                   config=DetectorConfig(**header["config"]), source=dict(header["source"]),
                   reports=tuple(LabelReport.from_state(r) for r in header["reports"]), held_out=held, path=path)


def _npz(arrays: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **{name: np.asarray(value) for name, value in arrays.items()})
    return buffer.getvalue()


def _read_npz(path: Path, digest: str) -> dict[str, np.ndarray]:
    """The arrays of `path`, checked against the digest detector.json names."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DetectorError(f"{shown(path)}: cannot be read ({err.strerror}); train the detector again") from None
    if hashlib.sha256(data).hexdigest() != digest:
        raise DetectorError(f"{shown(path)}: damaged or from another training (its digest is not the one "
                            f"{HEADER} names); train the detector again")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError) as err:
        raise DetectorError(f"{shown(path)}: damaged ({err}); train the detector again") from None
