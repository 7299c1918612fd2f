"""The app's detector actions: train one for a label (a background job), show its cross-validated
metrics, try thresholds before committing one, export it, run it over the index; the detections
to download. Each is the Python API the CLI uses (tfaudio.detector: train_detector, Detector,
export_detector, detect).

A label's detector lives in its folder beside the label store (AppState.detector_folder), so it
outlives the server and `tfaudio detect` can use it. Detections of the app's runs go to its
detections/ folder and are offered for download by job number, never by path.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, JSONResponse

from tfaudio.app.api import answers, number, read_json, state_of, text
from tfaudio.app.errors import AppError

#: What a detect job offers for download (tfaudio.detector.detect's tables).
DOWNLOADS = ("detections.csv", "detections.selections.txt")
#: Most points of a precision-recall curve sent to the page.
CURVE_POINTS = 200


def plain(value):
    """JSON-ready: numpy numbers as Python ones, NaN as None, tuples as lists, recursively."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain(v) for v in value]
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(value) else float(value)
    return value


def needed(state, label: str):
    detector = state.detector(label)
    if detector is None:
        raise AppError(f"no detector for {label!r} yet: train one first", 404)
    return detector


def described(detector, label: str) -> dict:
    """What the train page shows of a detector: the label's report, threshold, curves, folder."""
    from tfaudio.detector.stats import pr_curve

    report = detector.report(label)
    held = detector.held_out.get(label, {})
    curve = {"precision": [], "recall": [], "thresholds": []}
    if len(held.get("y", ())):
        precision, recall, thresholds = pr_curve(held["y"], held["probability"])
        keep = np.unique(np.linspace(0, len(thresholds) - 1, min(CURVE_POINTS, len(thresholds))).astype(int))
        curve = {"precision": precision[keep], "recall": recall[keep], "thresholds": thresholds[keep]}
    position = detector.labels.index(label)
    exports = sorted((p.name for p in (Path(detector.path) / "saved_model").glob("[0-9]*") if p.is_dir()), key=int) \
        if detector.path else []
    threshold = float(detector.thresholds[position])
    described = report.to_dict()
    if report.point is not None and abs(report.point.threshold - threshold) > 1e-9:
        # The threshold in use is not the cross-validated one (chosen on the archive estimate, or
        # set by hand): show held-out precision and recall at it.
        described["point"] = detector.operating_point(label, threshold).to_dict()
    return plain({"trained": True, "label": label, "path": str(detector.path), "report": described,
                  "threshold": threshold, "curve": curve,
                  "target_precision": detector.config.target_precision, "exports": exports})


@answers
async def detector_route(request):
    """GET /api/detector?label=L -> the label's detector as the train page shows it, or {trained: false}."""
    state = state_of(request)
    label = text(dict(request.query_params), "label", required=True)
    detector = await run_in_threadpool(state.detector, label)
    return JSONResponse({"trained": False, "label": label} if detector is None else described(detector, label))


@answers
async def point_route(request):
    """GET /api/point?label=L&threshold=T -> precision and recall (95 % intervals) at T, held out."""
    state = state_of(request)
    query = dict(request.query_params)
    label = text(query, "label", required=True)
    try:
        threshold = float(query.get("threshold", ""))
    except ValueError:
        raise AppError("threshold must be a probability from 0 to 1") from None
    if not 0 <= threshold <= 1:
        raise AppError("threshold must be a probability from 0 to 1")
    detector = needed(state, label)
    point = await run_in_threadpool(detector.operating_point, label, threshold)
    return JSONResponse(plain(point.to_dict()))


@answers
async def threshold_route(request):
    """POST /api/threshold {label, threshold}: commit the threshold (the detector is saved again)."""
    from tfaudio.detector.model import Detector

    state = state_of(request)
    body = await read_json(request)
    label = text(body, "label", required=True)
    threshold = number(body, "threshold", low=0.0, high=1.0)
    if threshold is None:
        raise AppError("threshold is needed")
    detector = needed(state, label)

    def commit():
        saved = detector.with_thresholds({label: threshold}).save(detector.path)
        state.detectors[label] = Detector.load(saved)
        return described(state.detectors[label], label)

    return JSONResponse(await run_in_threadpool(commit))


@answers
async def train_route(request):
    """POST /api/train {label}: train the label's detector in the background -> {job}."""
    state = state_of(request)
    label = text(await read_json(request), "label", required=True)

    def work(job) -> dict:
        from tfaudio.detector.model import Detector
        from tfaudio.detector.train import train_detector

        trained = train_detector(state.index, state.store, labels=[label], progress=job.progress)
        state.detectors[label] = Detector.load(trained.save(state.detector_folder(label)))
        return {"path": str(state.detectors[label].path)}

    return JSONResponse(state.jobs.start("train", label, work).to_dict())


@answers
async def export_route(request):
    """POST /api/export {label}: the waveform-in SavedModel of the label's detector -> {job}."""
    state = state_of(request)
    label = text(await read_json(request), "label", required=True)
    detector = needed(state, label)

    def work(job) -> dict:
        from tfaudio.detector.export import export_detector

        job.progress("exporting", 0, 1)
        target = export_detector(detector)
        job.progress("exported", 1, 1)
        return {"path": str(target), "version": target.name}

    return JSONResponse(state.jobs.start("export", label, work).to_dict())


class _Counter:
    """tfaudio.pipeline's Progress (progress(total, label) -> context with update(n)) into a Job."""

    def __init__(self, job):
        self.job = job

    def __call__(self, total: int, step: str):
        self.job.progress(step, 0, total)
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, count: int) -> None:
        self.job.progress(self.job.step, self.job.done + int(count), self.job.total)


@answers
async def detect_route(request):
    """POST /api/detect {label}: the label's detector over every window of the index -> {job}."""
    state = state_of(request)
    label = text(await read_json(request), "label", required=True)
    detector = needed(state, label)

    def work(job) -> dict:
        from tfaudio.detector.detect import detect

        found = detect(detector, state.index, Path(detector.path) / "detections", progress=_Counter(job))
        return {"out": str(found.out), "windows": found.windows, "files": found.files,
                "detections": len(found.detections), "downloads": list(DOWNLOADS)}

    return JSONResponse(state.jobs.start("detect", label, work).to_dict())


@answers
async def job_route(request):
    """GET /api/jobs/{job} -> its state, progress and result."""
    return JSONResponse(plain(state_of(request).jobs.get(request.path_params["job"]).to_dict()))


@answers
async def download_route(request):
    """GET /download/{job}/{name}: a finished detect job's table, as an attachment."""
    job = state_of(request).jobs.get(request.path_params["job"])
    name = request.path_params["name"]
    if job.kind != "detect" or job.state != "done" or name not in DOWNLOADS:
        raise AppError("nothing to download there", 404)
    path = Path(job.result["out"]) / name
    if not path.is_file():
        raise AppError("the detections are gone (another run replaced them?)", 404)
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", job.label)[:40] or "label"
    return FileResponse(path, filename=f"{safe}-{name}", media_type="text/plain; charset=utf-8")
